"""Primus provider: the ``websockets`` transformer with the primus-emitter plugin, on simple-websocket.

``api.configure(primus({'transformer': 'websockets'}, setup_primus))`` serves a WebSocket endpoint at
``pathname`` (default ``/primus``) and the project's own browser client at ``<pathname>/primus.js``.
Authorization runs on the upgrade request (``@primus.authorize``, ``fn(req, done)``): a refusal
answers HTTP 401 with ``{"error": "..."}``. Wire facts: PROTOCOL.md section 7.

Per connection: the request thread reads frames and keeps the heartbeat; one writer thread sends
from a bounded queue (a client that stops reading is dropped instead of growing memory), so a slow
client never blocks the dispatcher or other clients.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence

from flask import Response, request

from ..connections import Connection
from ..events import EventEmitter
from ..extension import FeathersState
from ..service import invoke
from . import _primus_protocol as proto
from . import _realtime

log = logging.getLogger(__name__)

PROVIDER = 'primus'
SUPPORTED_TRANSFORMERS = ('websockets',)
DEFAULT_PATHNAME = '/primus'
DEFAULT_PING_INTERVAL = 30.0  # seconds
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024  # bytes, checked by simple-websocket while receiving
DEFAULT_MAX_QUEUE = 1024  # frames waiting for a slow client before it is dropped
#: Config keys accepted by ``primus(config)`` (Primus's own names where it has them).
CONFIG_KEYS = ('transformer', 'pathname', 'pingInterval', 'maxLength', 'maxQueue', 'compression',
               'origins')

_CLIENT_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            'static', 'primus.js')
PATHNAME_TOKEN = '__PRIMUS_PATHNAME__'
_PATHNAME = re.compile(r'^/[A-Za-z0-9._~/-]*$')
PING_INTERVAL_TOKEN = '__PRIMUS_PING_INTERVAL__'


class PrimusRequest:
    """What an ``authorize(req, done)`` hook sees of the upgrade request.

    :ivar headers: request headers. :ivar args: the query string. :ivar cookies: cookies.
    :ivar feathers: the connection's params; starts as ``{'provider': 'primus'}``.
    """

    def __init__(self, flask_request: Any) -> None:
        self.headers = flask_request.headers
        self.args = flask_request.args
        self.query = flask_request.args
        self.cookies = flask_request.cookies
        self.remote_addr = flask_request.remote_addr
        self.environ = flask_request.environ
        self.feathers: Dict[str, Any] = {'provider': PROVIDER}


class Spark(EventEmitter):
    """One Primus connection, as ``primus.on('connection', fn(spark))`` sees it."""

    def __init__(self, server: 'PrimusServer', req: PrimusRequest) -> None:
        super().__init__()
        self.id = secrets.token_hex(10)
        self.server = server
        self.request = req
        self.headers = req.headers
        self.query = req.args
        self.feathers = req.feathers
        self._ws: Any = None
        #: frames are written by the sending thread while nothing is queued (see write_frame)
        self._direct = False
        #: the writer thread is writing a frame it took off the queue
        self._writing = False
        self._queue: Deque[Any] = collections.deque()  # frames, Rest tails, None to stop
        self._queue_event = threading.Condition()
        self._acks: Dict[int, Callable[..., Any]] = {}
        self._ack_ids = iter(range(1, proto.MAX_ACK_ID))
        self._ack_lock = threading.Lock()
        self.open = True
        self.last_seen = time.monotonic()
        self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                        name=f'primus-writer-{self.id}')

    def _start(self, ws: Any) -> None:
        # Frames queued between registration and the handshake go out first, in order.
        with self._queue_event:
            self._ws = ws
            self._direct = _realtime.can_write_now(ws)
        self._writer.start()

    def __repr__(self) -> str:
        return f'<Spark {self.id}>'

    # -- sending --------------------------------------------------------------------------------
    def write_frame(self, frame: str, prebuilt: Optional[_realtime.Rest] = None) -> None:
        """Queue one encoded frame; drops the connection when its queue is full.

        ``prebuilt``: the same frame as websocket wire bytes, built once for every client of a
        broadcast (:func:`_realtime.prebuilt_frame`; the server has compression off).
        """
        with self._queue_event:
            if not self.open:
                return
            if len(self._queue) >= self.server.max_queue:
                log.warning('Primus client %s stopped reading (%d frames queued); dropped',
                            self.id, len(self._queue))
                self.open = False
                self._queue.clear()
                self._queue.append(None)
                self._queue_event.notify()
                # The writer may be stuck in a blocking send and the reader waiting for a frame
                # (forever with pingInterval 0): shutting the socket down wakes both.
                _realtime.shutdown_socket(getattr(self._ws, 'sock', None))
                return
            # The writer thread writes a Rest (wire bytes) raw, and frames a str itself.
            item: Any = prebuilt if self._direct and prebuilt is not None else frame
            if self._direct and not self._queue and not self._writing:
                # Nothing queued or being written: write it now, without blocking, and save
                # waking the writer thread (what a fan-out to hundreds of clients costs). What
                # the socket's buffer does not take goes to the writer thread, first in line.
                try:
                    rest = (_realtime.send_now(self._ws, prebuilt) if prebuilt is not None
                            else _realtime.write_now(self._ws, frame))
                except Exception:  # closing: the writer thread meets the same state
                    rest = frame
                if not rest:
                    return
                item = rest
            self._queue.append(item)
            self._queue_event.notify()

    def write(self, data: Any) -> None:
        """Send a plain Primus data frame (``primus.on('data')`` on the client)."""
        self.write_frame(proto.encode_data(data))

    def send(self, event: str, *args: Any) -> None:
        """Send an emitter event; a callable last argument receives the client's ack."""
        ack_id = None
        if args and callable(args[-1]):
            with self._ack_lock:
                ack_id = next(self._ack_ids)
                self._acks[ack_id] = args[-1]
            args = args[:-1]
        self.write_frame(proto.encode_event(event, list(args), ack_id))

    def end(self) -> None:
        """Close deliberately: the client is told not to reconnect."""
        self.write_frame(proto.SERVER_CLOSE_FRAME)
        with self._queue_event:
            self.open = False
            self._queue.append(None)
            self._queue_event.notify()

    def _write_loop(self) -> None:
        ws = self._ws
        while True:
            with self._queue_event:
                while not self._queue:
                    self._queue_event.wait()
                frame = self._queue.popleft()
                self._writing = frame is not None
            if frame is None:
                break
            try:
                # Blocking, and without the lock: no direct write happens while _writing.
                if isinstance(frame, _realtime.Rest):
                    _realtime.send_all(ws, frame)
                else:
                    ws.send(frame)
            except Exception:
                self.open = False
                break
            finally:
                with self._queue_event:
                    self._writing = False
        try:
            ws.close()
        except Exception:
            pass

    def _close_writer(self) -> None:
        with self._queue_event:
            self.open = False
            self._queue.append(None)
            self._queue_event.notify()

    # -- receiving ------------------------------------------------------------------------------
    def _handle(self, frame: Any, connection: Connection) -> None:
        decoded = proto.decode(frame)
        if isinstance(decoded, proto.Ping):
            self.write_frame(proto.encode_pong(decoded.value))
        elif isinstance(decoded, proto.Pong):
            pass
        elif isinstance(decoded, proto.Id):
            if decoded.is_request:
                self.write_frame(proto.encode_id(self.id))
        elif isinstance(decoded, proto.Event):
            self.server._run_async(self._handle_event, decoded, connection)
        elif isinstance(decoded, proto.Ack):
            with self._ack_lock:
                callback = self._acks.pop(decoded.ack_id, None)
            if callback is not None:
                self.server._run_async(callback, *decoded.args)
        elif isinstance(decoded, proto.Data):
            self.server._run_async(self._emit_local, 'data', decoded.value)
        elif isinstance(decoded, proto.Invalid):
            log.info('Primus client %s sent an unusable frame (%s); ignored', self.id,
                     decoded.reason)
            # A call that asked for an ack still gets one, or its client waits forever.
            raw_id = proto.unusable_event_id(frame)
            if raw_id is not None:
                error = _realtime.errors.BadRequest(f'Malformed Primus packet: {decoded.reason}')
                try:
                    self.write_frame(proto.encode_error_ack(raw_id, error.to_dict()))
                except (TypeError, ValueError, RecursionError):
                    pass

    def _handle_event(self, event: Any, connection: Connection) -> None:
        name, args = event.name, list(event.args)
        if proto.is_reserved_event(name):
            ack = None
        elif _realtime.is_call(name, args):
            ack = _realtime.run_call(self.server.application, connection, name, args)
        elif self.listeners(name):
            if event.ack_id is not None:
                done = threading.Event()

                def respond(*values: Any) -> None:
                    if not done.is_set():
                        done.set()
                        self.write_frame(proto.encode_ack(event.ack_id, list(values)))
                self._run_listeners(name, *args, respond)
            else:
                self._run_listeners(name, *args)
            return
        else:
            ack = _realtime.unknown_event_error(name)
        if event.ack_id is not None and ack is not None:
            try:
                frame = proto.encode_ack(event.ack_id, ack)
            except (TypeError, ValueError) as exc:
                log.error('ack for %r could not be encoded: %s', name, exc)
                frame = proto.encode_ack(event.ack_id, [_realtime.errors.GeneralError(
                    'The service returned a result that cannot be sent as JSON').to_dict()])
            self.write_frame(frame)


class PrimusServer(EventEmitter):
    """The Primus server of one app (``api.primus``)."""

    def __init__(self, state: FeathersState, config: Dict[str, Any]) -> None:
        super().__init__()
        self.state = state
        self.application = state.application
        self.pathname = '/' + str(config.get('pathname', DEFAULT_PATHNAME)).strip('/')
        if not _PATHNAME.match(self.pathname):
            raise ValueError(f'Primus pathname {self.pathname!r} may only hold letters, digits and '
                             f'._~/- (it is compiled into primus.js)')
        interval = config.get('pingInterval', DEFAULT_PING_INTERVAL * 1000)
        # Primus takes milliseconds; False/0 turns the heartbeat off.
        self.ping_interval = float(interval) / 1000.0 if interval else 0.0
        self.max_message_size = int(config.get('maxLength', DEFAULT_MAX_MESSAGE_SIZE))
        self.max_queue = int(config.get('maxQueue', DEFAULT_MAX_QUEUE))
        self.compression = bool(config.get('compression', False))
        self.origins = check_origins(config.get('origins'))
        self.authorizers: List[Callable[..., Any]] = []
        self.sparks: Dict[str, Spark] = {}
        self._client_cache: Optional[tuple] = None

    def authorize(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add an authorization hook ``fn(req, done)``; usable as a decorator."""
        if not callable(fn):
            raise TypeError(f'primus.authorize() takes a function (req, done), got {fn!r}')
        self.authorizers.append(fn)
        return fn

    def send(self, event: str, *args: Any) -> None:
        """Send an emitter event to every spark, in every process sharing the message queue."""
        self.state.broadcast(PROVIDER, 'send', {'event': event, 'args': list(args)})

    def write(self, data: Any) -> None:
        """Write plain data to every spark, in every process sharing the message queue."""
        self.state.broadcast(PROVIDER, 'write', {'data': data})

    def _local_broadcast(self, kind: str, message: Any) -> None:
        if kind == 'send':
            frame = proto.encode_event(message['event'], list(message['args']))
        else:
            frame = proto.encode_data(message['data'])
        for spark in list(self.sparks.values()):
            spark.write_frame(frame)

    def forEach(self, fn: Callable[[Spark], Any]) -> None:  # noqa: N802 (Primus's name)
        for spark in list(self.sparks.values()):
            fn(spark)

    for_each = forEach

    def spark(self, id: str) -> Optional[Spark]:
        return self.sparks.get(id)

    def _run_async(self, fn: Callable[..., Any], *args: Any) -> None:
        # Each inbound event runs in its own thread, like Flask-SocketIO's async handlers: a slow
        # call never holds back the next one from the same client.
        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception('Primus handler %r raised', fn)
        threading.Thread(target=run, daemon=True).start()

    # -- client library ---------------------------------------------------------------------------
    def client_library(self) -> tuple:
        if self._client_cache is None:
            with open(_CLIENT_FILE, encoding='utf-8') as fh:
                text = fh.read()
            text = text.replace(PATHNAME_TOKEN, self.pathname).replace(
                PING_INTERVAL_TOKEN, str(int(self.ping_interval * 1000)))
            body = text.encode('utf-8')
            self._client_cache = (body, hashlib.sha1(body).hexdigest())
        return self._client_cache

    def serve_library(self) -> Response:
        body, etag = self.client_library()
        response = Response(body, mimetype='application/javascript')
        response.set_etag(etag)
        response.headers['Cache-Control'] = 'no-cache'
        return response.make_conditional(request)

    # -- the WebSocket endpoint -------------------------------------------------------------------
    def endpoint(self) -> Response:
        if request.headers.get('Upgrade', '').lower() != 'websocket':
            return Response(json.dumps({'error': 'This endpoint only speaks WebSocket (Primus)'}),
                            status=426, mimetype='application/json',
                            headers={'Upgrade': 'websocket', 'Connection': 'Upgrade'})
        if not origin_allowed(self.origins, request.environ):
            log.info('Primus connection from origin %r refused', request.headers.get('Origin'))
            return Response(json.dumps({'error': 'Origin not allowed'}), status=403,
                            mimetype='application/json')
        too_many = _realtime.over_connect_rate(self.state.connect_rate, request.remote_addr)
        if too_many is not None:
            return Response(json.dumps({'error': too_many.message}), status=too_many.code,
                            mimetype='application/json')
        req = PrimusRequest(request)
        try:
            for fn in self.authorizers:
                invoke(fn, (req,), self.application.callback_timeout,
                       label='primus.authorize hook')
        except Exception as exc:
            message = _realtime.refusal_message(exc, self.application.debug)
            log.info('Primus connection refused: %r', exc)
            return Response(json.dumps({'error': message}), status=401,
                            mimetype='application/json')
        return self._serve_socket(req)

    def _serve_socket(self, req: PrimusRequest) -> Response:
        from simple_websocket import ConnectionClosed, Server
        environ = _realtime.websocket_environ(request.environ, self.compression)
        # Register before the handshake: a client may send its first call the moment it sees the
        # upgrade answer, and events from that call must already find this connection.
        spark = Spark(self, req)
        connection = Connection(spark.id, PROVIDER, req.feathers, _spark_sender(spark))
        connection.extra['spark'] = spark
        self.sparks[spark.id] = spark
        self.state.connections.add(connection)
        try:
            ws = Server(environ, max_message_size=self.max_message_size)
        except Exception as exc:
            log.info('Primus WebSocket handshake failed: %r', exc)
            self.sparks.pop(spark.id, None)
            self.state.connections.remove(spark.id)
            return Response(status=400)
        spark._start(ws)
        self._run_listeners('connection', spark)
        try:
            self._read_loop(spark, ws, connection, ConnectionClosed)
        finally:
            self.sparks.pop(spark.id, None)
            self.state.connections.remove(spark.id)
            spark._close_writer()
            spark._writer.join(5)
            _release_socket(environ)
            spark._run_listeners('end')
            self._run_listeners('disconnection', spark)
        return _WebSocketDone(ws.mode)

    def _read_loop(self, spark: Spark, ws: Any, connection: Connection, closed: type) -> None:
        # Any frame counts as life. A ping goes out every interval; a client that sent nothing
        # since the previous ping (a whole interval) is dropped.
        interval = self.ping_interval
        next_ping = time.monotonic() + interval if interval else None
        ping_sent: Optional[float] = None
        while spark.open:
            timeout = max(0.0, next_ping - time.monotonic()) if next_ping else None
            try:
                frame = ws.receive(timeout=timeout)
            except closed:
                return
            now = time.monotonic()
            if frame is not None:
                spark.last_seen = now
                try:
                    spark._handle(frame, connection)
                except Exception:  # one bad frame must not end the connection
                    log.exception('Primus client %s: a frame could not be handled', spark.id)
            elif not ws.connected:
                return
            if next_ping is not None and now >= next_ping:
                if ping_sent is not None and spark.last_seen < ping_sent:
                    log.info('Primus client %s silent for %.1f s; dropped', spark.id,
                             now - spark.last_seen)
                    return
                ping_sent = now
                spark.write_frame(proto.encode_ping(int(time.time() * 1000)))
                next_ping = now + interval


def _spark_sender(spark: Spark) -> Callable[[str, Any], None]:
    def send(event: str, data: Any) -> None:
        spark.write_frame(proto.encode_event(event, [data]))
    return send


def _release_socket(environ: Dict[str, Any]) -> None:
    # The HTTP server still holds a reader on this socket and would parse the client's last
    # WebSocket bytes as a new request; shutting the socket down gives it a clean EOF.
    _realtime.shutdown_socket(environ.get('werkzeug.socket') or environ.get('gunicorn.socket'))


def check_origins(origins: Any) -> Any:
    """Validate the ``origins`` option: None (same origin), ``'*'``, an origin, a list of them, or
    a function ``origin -> bool``."""
    if origins is None or callable(origins) or isinstance(origins, str):
        return origins
    if isinstance(origins, (list, tuple, set, frozenset)) and \
            all(isinstance(o, str) for o in origins):
        return frozenset(origins)
    raise TypeError(f"Primus 'origins' takes None (same origin only), '*', an origin, a list of "
                    f"origins or a function of the origin, not {origins!r}")


def origin_allowed(origins: Any, environ: Dict[str, Any]) -> bool:
    """Whether the upgrade's ``Origin`` may connect, with Flask-SocketIO's
    ``cors_allowed_origins`` semantics: no Origin header (not a browser) always may; by default
    only the server's own ``scheme://host`` (or the X-Forwarded-Proto/Host one behind a proxy).
    Browsers send Origin on every WebSocket and WebSockets are not subject to CORS, so without
    this check any web page could open a socket with the visitor's cookies."""
    origin = environ.get('HTTP_ORIGIN')
    if origin is None or origins == '*':
        return True
    if callable(origins):
        try:
            return bool(origins(origin))
        except Exception:
            log.exception('Primus origins function raised for %r; refused', origin)
            return False
    if isinstance(origins, str):
        return origin == origins
    if origins is not None:
        return origin in origins
    scheme, host = environ.get('wsgi.url_scheme', 'http'), environ.get('HTTP_HOST')
    allowed = {f'{scheme}://{host}'}
    if 'HTTP_X_FORWARDED_PROTO' in environ or 'HTTP_X_FORWARDED_HOST' in environ:
        fwd_scheme = environ.get('HTTP_X_FORWARDED_PROTO', scheme).split(',')[0].strip()
        fwd_host = environ.get('HTTP_X_FORWARDED_HOST', host or '').split(',')[0].strip()
        allowed.add(f'{fwd_scheme}://{fwd_host}')
    return origin in allowed


class _WebSocketDone(Response):
    """What the view returns once the WebSocket ended.

    The socket was taken over, so no HTTP response may be written: Werkzeug's server drops a
    request quietly on ConnectionError, gunicorn on StopIteration (what python-engineio does too).
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if self.mode == 'werkzeug':
            raise ConnectionError()
        if self.mode == 'gunicorn':
            raise StopIteration()
        return []


class PrimusProvider:
    """Attaches Primus to each app; see :func:`primus`."""

    name = PROVIDER

    def __init__(self, config: Dict[str, Any], fn: Optional[Callable[[PrimusServer], Any]]):
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f'unknown Primus option(s) {", ".join(unknown)}; supported: '
                             f'{", ".join(CONFIG_KEYS)}')
        transformer = config.get('transformer', 'websockets')
        if transformer not in SUPPORTED_TRANSFORMERS:
            raise ValueError(f'Primus transformer {transformer!r} is not supported; supported: '
                             f'{", ".join(SUPPORTED_TRANSFORMERS)}')
        check_origins(config.get('origins'))
        self.config = config
        self.fn = fn

    def attach(self, api: Any, state: FeathersState) -> None:
        if state.primus is not None:
            raise RuntimeError('Primus is configured twice on this app')
        server = PrimusServer(state, self.config)
        state.primus = server
        state.providers[PROVIDER] = self
        state.on_broadcast(PROVIDER, server._local_broadcast)
        app = state.app
        # Werkzeug routes WebSocket upgrades only to rules marked websocket=True; the plain rule
        # answers 426 to ordinary GETs.
        app.add_url_rule(server.pathname, 'feathers_primus_ws', server.endpoint, methods=['GET'],
                         websocket=True)
        app.add_url_rule(server.pathname, 'feathers_primus', server.endpoint, methods=['GET'])
        app.add_url_rule(f'{server.pathname}/primus.js', 'feathers_primus_js',
                         server.serve_library, methods=['GET'])

        def broadcast(event: str, data: Any, conns: Sequence[Connection]) -> None:
            frame = proto.encode_event(event, [data])
            # One websocket frame for everybody (server frames are not masked), unless
            # permessage-deflate makes each connection's frames its own.
            prebuilt = None if server.compression else _realtime.prebuilt_frame(frame)
            for conn in conns:
                conn.extra['spark'].write_frame(frame, prebuilt)
        state.dispatcher.add_transport(PROVIDER, broadcast)
        if self.fn is not None:
            self.fn(server)


def primus(config: Optional[Dict[str, Any]] = None,
           fn: Optional[Callable[[PrimusServer], Any]] = None) -> Callable[[Any], None]:
    """``api.configure(primus({'transformer': 'websockets'}, setup_primus))``.

    :param config: ``transformer`` (only ``'websockets'``), ``pathname`` (``/primus``),
        ``pingInterval`` (ms, default 30000; 0 turns pings off), ``maxLength`` (largest inbound
        message in bytes, default 1 MiB), ``maxQueue`` (frames queued for a client that does not
        read before it is dropped, default 1024), ``compression`` (permessage-deflate, default off),
        ``origins`` (browser origins allowed to connect: None, the default, admits the same origin
        only; ``'*'`` any; an origin or a list of them; a function ``origin -> bool``).
    :param fn: called with each app's :class:`PrimusServer` (``authorize``, ``on('connection')``).
    """
    if config is not None and not isinstance(config, dict):
        raise TypeError(f'primus(config) takes a dict, got {type(config).__name__}')
    if fn is not None and not callable(fn):
        raise TypeError(f'primus(config, fn) takes a function of the Primus server, got {fn!r}')
    provider = PrimusProvider(dict(config or {}), fn)

    def configure(api: Any) -> None:
        api.add_provider(provider)
    return configure
