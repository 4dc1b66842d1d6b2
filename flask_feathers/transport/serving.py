"""What ``api.run`` does for the connection layer around Werkzeug's server: room for many
sockets, a listen queue that survives a reconnect storm, requests served by the worker pool
instead of a thread each, and a graceful stop on SIGTERM."""
from __future__ import annotations

import contextlib
import gc
import io
import logging
import signal
import socket
import sys
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from .._waits import blocking
from .handover import OWN_SOCKET, SocketClaim

log = logging.getLogger(__name__)

#: Connections the kernel may hold for ``accept`` (Werkzeug's own is 128: in a reconnect storm
#: of thousands the rest of the SYNs are dropped and those clients retry only a second later).
LISTEN_QUEUE = 4096
#: Seconds an accepted connection has to send its first request head, line and headers (Node's
#: HTTP server waits 60 s for a request's headers); then it is closed.
REQUEST_START_TIMEOUT = 60.0
#: Bytes of a request head the hub waits for; a longer one goes to Werkzeug (which refuses it).
REQUEST_HEAD_MAX = 65536


def raise_open_files_limit() -> int:
    """Raise this process's open-files limit to its hard limit (one descriptor per client);
    returns the limit now in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning('could not raise the open-files limit from %d to %d: %s', soft, hard, exc)
            return soft
        log.info('open-files limit raised from %d to %d (one per connected client)', soft, hard)
        return hard
    log.info('open-files limit: %d (one per connected client)', soft)
    return soft


#: Collections of the middle generation between two full ones under ``api.run`` (CPython's
#: default is 10): see :func:`defer_full_collections`.
FULL_COLLECTION_EVERY = 100


@contextlib.contextmanager
def defer_full_collections() -> Iterator[None]:
    """Meanwhile, CPython's full garbage collections run ten times less often, unless the app
    set its own thresholds (or the interpreter collects incrementally, 3.14 and later).

    A server's connections are long-lived objects, and a full collection walks every one of
    them: measured in a reconnect storm of 2,000 clients, one took 60 to 110 ms, ran once per
    round, and freed nothing (closed connections leave no reference cycles; their objects go as
    soon as they are closed). Cycles made elsewhere are still collected, later.
    """
    before = gc.get_threshold()
    tune = sys.version_info < (3, 14) and before == (700, 10, 10)
    if tune:
        gc.set_threshold(before[0], before[1], FULL_COLLECTION_EVERY)
        log.info('full garbage collections after %d younger ones (was %d)',
                 FULL_COLLECTION_EVERY, before[2])
    try:
        yield
    finally:
        if tune and gc.get_threshold()[2] == FULL_COLLECTION_EVERY:
            gc.set_threshold(*before)


@contextlib.contextmanager
def werkzeug_listen_queue(size: int = LISTEN_QUEUE) -> Iterator[None]:
    """Werkzeug's servers made meanwhile listen with a queue of ``size``."""
    from werkzeug import serving
    before = serving.BaseWSGIServer.request_queue_size
    serving.BaseWSGIServer.request_queue_size = max(before, size)
    try:
        yield
    finally:
        serving.BaseWSGIServer.request_queue_size = before


@contextlib.contextmanager
def stop_on_sigterm(on_stop: Callable[[], Any]) -> Iterator[None]:
    """SIGTERM ends the server like Ctrl-C does (Werkzeug's server otherwise dies at once,
    dropping every socket without a close frame); ``on_stop`` runs as it ends, either way."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        def stop(signum: int, frame: Any) -> None:
            raise SystemExit(0)
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        try:
            on_stop()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            # The process is about to end: the collections of interpreter shutdown would walk
            # every object of thousands of connections (seconds on a busy machine) for nothing.
            gc.freeze()


#: The one line ``api.run`` prints about the server it starts, in place of Werkzeug's red warning
#: and Flask-SocketIO's second one.
DEVELOPMENT_SERVER_LINE = (" * Development server (Werkzeug, api.run); in production use "
                           "gunicorn -k gthread (docs: deployment)")


class _OneStartupLine(logging.Filter):
    """Werkzeug's start-up banner with :data:`DEVELOPMENT_SERVER_LINE` as its first line, and
    Flask-SocketIO's "Werkzeug appears to be used in a production deployment" left out: both say
    what that line says (a third came from api.run itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith('Werkzeug appears to be used in a production deployment'):
            return False
        if 'This is a development server' in message.split('\n', 1)[0]:
            rest = message.split('\n', 1)[1:]
            record.msg = '\n'.join([DEVELOPMENT_SERVER_LINE] + rest)
            record.args = ()
        return True


@contextlib.contextmanager
def one_startup_line() -> Iterator[None]:
    """Meanwhile, a server started here says once, in one line, that it is a development server."""
    werkzeug_log = logging.getLogger('werkzeug')
    only_line = _OneStartupLine()
    werkzeug_log.addFilter(only_line)
    try:
        yield
    finally:
        werkzeug_log.removeFilter(only_line)


class _FirstRequest:
    """An accepted connection the hub watches until its first request head has arrived; then the
    request is served on the worker pool (see :func:`pooled_werkzeug_requests`). A head that
    trickles in (slowloris) is looked at again with a growing pause (up to a second) instead of
    taking a thread, and the connection is closed when it is not complete within
    :data:`REQUEST_START_TIMEOUT`."""

    __slots__ = ('sock', 'fd', 'paused', 'watching', 'interest', 'hub', 'serve', 'timer',
                 'backoff', 'seen', 'ended', 'timeout')

    def __init__(self, sock: Any, hub: Any, serve: Callable[[], Any],
                 timeout: Optional[float] = None) -> None:
        self.timeout = REQUEST_START_TIMEOUT if timeout is None else timeout
        self.sock = sock
        self.fd = sock.fileno()
        self.paused = self.watching = False
        self.interest = 0
        self.hub = hub
        self.serve = serve
        self.timer: Any = None
        self.backoff = 0.02
        #: bytes of the head seen so far
        self.seen = 0
        self.ended = False

    def watch(self) -> None:  # hub thread
        self.hub.add(self)
        self.timer = self.hub.call_later(self.timeout, self.give_up)

    def on_readable(self) -> None:  # hub thread: (part of) the request, or the client's hang-up
        try:
            head = self.sock.recv(REQUEST_HEAD_MAX, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            head = b''
        if head and b'\r\n\r\n' not in head and len(head) < REQUEST_HEAD_MAX:
            # Still arriving: look again later rather than block a worker in its readline.
            self.seen = len(head)
            self.paused = True
            self.hub.update(self)
            self.hub.call_later(self.backoff, self.resume)
            self.backoff = min(self.backoff * 2, 1.0)
            return
        self.ended = True
        self.hub.remove(self)
        self.timer.cancel()
        self.hub.workers.submit(self.serve)

    def resume(self) -> None:  # hub thread
        if not self.ended:
            self.paused = False
            self.hub.update(self)

    def on_writable(self) -> None:  # never asked for
        pass

    def give_up(self) -> None:  # hub thread
        self.ended = True
        self.hub.remove(self)
        if self.seen:
            log.info('closed a connection whose request head (%d bytes so far) was not complete '
                     'within %g s', self.seen, self.timeout)
        else:
            log.info('closed a connection that sent no request within %g s', self.timeout)
        try:
            self.sock.close()
        except OSError:
            pass


def _head_arrived(sock: Any) -> bool:
    """Whether the whole request head is already waiting on a just-accepted socket (a client
    sends its request right after connecting, so in a reconnect storm it usually is)."""
    try:
        head = sock.recv(REQUEST_HEAD_MAX, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # nothing yet (BlockingIOError), or gone: let the hub watch it
        return False
    return b'\r\n\r\n' in head


@contextlib.contextmanager
def pooled_werkzeug_requests(timeout: Optional[float] = None) -> Iterator[None]:
    """Werkzeug's threaded servers made meanwhile serve requests on the connection layer's worker
    pool instead of a new thread per connection.

    The hub watches each accepted connection until its request arrives (a connection that sends
    nothing costs no thread, and is closed after :data:`REQUEST_START_TIMEOUT`); the request then
    runs on :class:`Workers`, whose runnable threads are bounded (a WebSocket upgrade through
    :func:`serve_upgrade`, anything else through Werkzeug's own request handler). Idle keep-alive connections
    and engine.io long-polls wait inside :func:`blocking`, so they never hold the pool up.
    Measured in a reconnect storm of 2,000 clients: a thread per connection made 1,600 threads
    fight over the GIL (70% of the CPU in the kernel), and the last client was back after 7.7 s.
    """
    from werkzeug import serving

    from .hub import get_hub

    def process_request(server: Any, request: Any, client_address: Any) -> None:
        def serve() -> None:
            if not serve_upgrade(server, request, client_address):
                server.process_request_thread(request, client_address)
        hub = get_hub()
        if server.ssl_context is not None:  # a TLS socket may hold decrypted bytes already
            hub.workers.submit(server.process_request_thread, request, client_address)
        elif _head_arrived(request):  # usual in a storm: no need for the hub to watch it first
            hub.workers.submit(serve)
        else:
            hub.call_soon(_FirstRequest(request, hub, serve, timeout).watch)

    def handle_one_request(handler: Any) -> Any:
        if getattr(handler, '_feathers_served', False):
            # keep-alive: wait for the client's next request outside the pool's bound
            with blocking():
                try:
                    handler.rfile.peek(1)
                except (OSError, ValueError):
                    pass  # the next read says what happened
        handler._feathers_served = True
        return before_handle(handler)

    patches = [(serving.ThreadedWSGIServer, 'process_request', process_request),
               (serving.WSGIRequestHandler, 'handle_one_request', handle_one_request)]
    before_handle = serving.WSGIRequestHandler.handle_one_request
    saved = [(cls, name, cls.__dict__.get(name)) for cls, name, _ in patches]
    for cls, name, fn in patches:
        setattr(cls, name, fn)
    try:
        yield
    finally:
        for cls, name, before in saved:
            if before is None:
                delattr(cls, name)
            else:
                setattr(cls, name, before)


#: Bytes of a request head :func:`serve_upgrade` looks at (a WebSocket upgrade is a few hundred).
UPGRADE_HEAD_MAX = 8192
_STATUS_LINE = 'HTTP/1.1 {}\r\n'


def serve_upgrade(server: Any, sock: Any, client_address: Any) -> bool:
    """Serve a WebSocket upgrade request without Werkzeug's request handler; False (nothing read)
    for any other request, which Werkzeug then serves as usual.

    Werkzeug's handler parses the head with ``email.parser``, builds its buffered files, writes
    its answer through them and logs it: about a fifth of a reconnect storm's CPU for a request
    whose socket is handed over a moment later. The environ built here has what Werkzeug's
    ``make_environ`` puts in one (same keys, same decoding), so the app, Flask routing and
    engine.io see no difference; a refusal (400, 401, 403, 426, 429, ...) is written as a plain
    HTTP/1.1 answer and the connection closed.
    """
    if type(sock) is not socket.socket:
        return False
    try:
        head = sock.recv(UPGRADE_HEAD_MAX, socket.MSG_PEEK)
    except OSError:
        return False
    end = head.find(b'\r\n\r\n')
    if end < 0 or not head.startswith(b'GET '):
        return False
    lines = head[:end].decode('latin-1').split('\r\n')
    parts = lines[0].split(' ')
    if len(parts) != 3 or not parts[2].startswith('HTTP/1.'):
        return False
    headers: Dict[str, str] = {}
    keys = _HEADER_KEYS
    for line in lines[1:]:
        name, sep, value = line.partition(':')
        key = keys.get(name) if sep else None
        if key is None:
            if not sep or not name or name != name.strip() or '_' in name:
                return False  # unusual: leave it to Werkzeug
            key = 'HTTP_' + name.upper().replace('-', '_')
            if len(keys) < 512:  # the names clients send are few
                keys[name] = key
        if key in _BODY_KEYS:
            return False  # an upgrade has no body
        value = value.strip()
        headers[key] = f'{headers[key]},{value}' if key in headers else value
    if headers.get('HTTP_UPGRADE', '').lower() != 'websocket':
        return False
    target = parts[1]
    url = urlsplit(target)
    if url.scheme or url.netloc or not target.startswith('/'):
        return False
    try:
        sock.recv(end + 4)  # the head, which is all there is so far
    except OSError:
        return True
    address = client_address[0] if isinstance(client_address, tuple) else client_address
    claim = SocketClaim(sock)
    environ: Dict[str, Any] = {
        'wsgi.version': (1, 0), 'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(),
        'wsgi.errors': sys.stderr, 'wsgi.multithread': server.multithread,
        'wsgi.multiprocess': server.multiprocess, 'wsgi.run_once': False,
        'werkzeug.socket': sock, OWN_SOCKET: claim, 'SERVER_SOFTWARE': 'flask-feathers',
        'REQUEST_METHOD': 'GET',
        'SCRIPT_NAME': '', 'PATH_INFO': _wsgi_str(unquote(url.path)),
        'QUERY_STRING': _wsgi_str(url.query), 'REQUEST_URI': _wsgi_str(target),
        'RAW_URI': _wsgi_str(target), 'REMOTE_ADDR': address,
        'REMOTE_PORT': client_address[1] if isinstance(client_address, tuple) else 0,
        'SERVER_NAME': server.server_address[0], 'SERVER_PORT': str(server.server_address[1]),
        'SERVER_PROTOCOL': parts[2],
    }
    environ.update(headers)
    answer: List[Any] = []

    def start_response(status: str, response_headers: List[Tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        answer[:] = [status, response_headers]
        return lambda data: None  # the write() callable of old apps: not used by ours
    try:
        try:
            body = server.app(environ, start_response)
            try:
                chunks = [bytes(chunk) for chunk in body]
            finally:
                close = getattr(body, 'close', None)
                if close is not None:
                    close()
        except (ConnectionError, StopIteration):
            return True  # handed over, or engine.io's own websocket ended
        except Exception:
            log.exception('error on a WebSocket upgrade request for %s', environ['PATH_INFO'])
            answer[:] = ['500 INTERNAL SERVER ERROR', [('Content-Type', 'text/plain')]]
            chunks = [b'Internal Server Error']
        if answer:
            status, response_headers = answer
            lines_out = [_STATUS_LINE.format(status)]
            for name, value in response_headers:
                if name.lower() not in ('connection', 'transfer-encoding'):
                    lines_out.append(f'{name}: {value}\r\n')
            if not any(name.lower() == 'content-length' for name, _ in response_headers):
                lines_out.append(f'Content-Length: {sum(len(c) for c in chunks)}\r\n')
            lines_out.append('Connection: close\r\n\r\n')
            try:
                sock.sendall(''.join(lines_out).encode('latin-1') + b''.join(chunks))
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            log.info('%s "GET %s" %s', address, target, status.split(' ', 1)[0])
        return True
    finally:
        if not claim.taken:  # else the connection layer has it now
            try:
                sock.close()
            except OSError:
                pass


def _wsgi_str(value: str) -> str:
    """A WSGI environ string: the UTF-8 bytes of ``value`` as Latin-1 (Werkzeug does the same)."""
    return value if value.isascii() else value.encode('utf-8').decode('latin-1')


#: header name as sent -> its environ key (``Sec-WebSocket-Key`` -> ``HTTP_SEC_WEBSOCKET_KEY``)
_HEADER_KEYS: Dict[str, str] = {}
_BODY_KEYS = frozenset(('HTTP_CONTENT_TYPE', 'HTTP_CONTENT_LENGTH', 'HTTP_TRANSFER_ENCODING'))
