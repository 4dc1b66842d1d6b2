"""What ``api.run`` does for the connection layer around Werkzeug's server: room for many
sockets, a listen queue that survives a reconnect storm, requests served by the worker pool
instead of a thread each, and a graceful stop on SIGTERM."""
from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
from typing import Any, Callable, Iterator

from .._waits import blocking

log = logging.getLogger(__name__)

#: Connections the kernel may hold for ``accept`` (Werkzeug's own is 128: in a reconnect storm
#: of thousands the rest of the SYNs are dropped and those clients retry only a second later).
LISTEN_QUEUE = 4096
#: Seconds an accepted connection may stay silent before its first request starts (Node's HTTP
#: server waits 60 s for a request's headers).
REQUEST_START_TIMEOUT = 60.0


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


class _FirstRequest:
    """An accepted connection the hub watches until its first request arrives; then the request
    is served on the worker pool (see :func:`pooled_werkzeug_requests`)."""

    __slots__ = ('sock', 'fd', 'paused', 'watching', 'interest', 'hub', 'serve', 'timer')

    def __init__(self, sock: Any, hub: Any, serve: Callable[[], Any]) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.paused = self.watching = False
        self.interest = 0
        self.hub = hub
        self.serve = serve
        self.timer: Any = None

    def watch(self) -> None:  # hub thread
        self.hub.add(self)
        self.timer = self.hub.call_later(REQUEST_START_TIMEOUT, self.give_up)

    def on_readable(self) -> None:  # hub thread: the request (or the client's hang-up) is here
        self.hub.remove(self)
        self.timer.cancel()
        self.hub.workers.submit(self.serve)

    def on_writable(self) -> None:  # never asked for
        pass

    def give_up(self) -> None:  # hub thread
        self.hub.remove(self)
        log.info('closed a connection that sent no request within %g s', REQUEST_START_TIMEOUT)
        try:
            self.sock.close()
        except OSError:
            pass


@contextlib.contextmanager
def pooled_werkzeug_requests() -> Iterator[None]:
    """Werkzeug's threaded servers made meanwhile serve requests on the connection layer's worker
    pool instead of a new thread per connection.

    The hub watches each accepted connection until its request arrives (a connection that sends
    nothing costs no thread, and is closed after :data:`REQUEST_START_TIMEOUT`); the request then
    runs on :class:`Workers`, whose runnable threads are bounded. Idle keep-alive connections
    and engine.io long-polls wait inside :func:`blocking`, so they never hold the pool up.
    Measured in a reconnect storm of 2,000 clients: a thread per connection made 1,600 threads
    fight over the GIL (70% of the CPU in the kernel), and the last client was back after 7.7 s.
    """
    from werkzeug import serving

    from .hub import get_hub

    def process_request(server: Any, request: Any, client_address: Any) -> None:
        def serve() -> None:
            server.process_request_thread(request, client_address)
        hub = get_hub()
        if server.ssl_context is not None:  # a TLS socket may hold decrypted bytes already
            hub.workers.submit(serve)
        else:
            hub.call_soon(_FirstRequest(request, hub, serve).watch)

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
