"""Primus provider: the ``websockets`` transformer with the primus-emitter plugin, on simple-websocket.

``api.configure(primus({'transformer': 'websockets'}, setup_primus))`` serves a WebSocket endpoint at
``pathname`` (default ``/primus``) and the project's own browser client at ``<pathname>/primus.js``.
Authorization runs on the upgrade request (``@primus.authorize``, ``fn(req, done)``): a refusal
answers HTTP 401 with ``{"error": "..."}``. Wire facts: docs/protocol.rst, "Primus".

Per connection: no thread. The request thread answers the upgrade and hands the socket to the
connection layer (``transport/``): the hub reads it and keeps its heartbeat, senders write to it
directly, a bounded backlog waits for a slow reader and a client that stops reading is dropped,
so a slow client never blocks the dispatcher or other clients.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from flask import Response, current_app, request
from werkzeug.datastructures import ImmutableMultiDict

from ..connections import Connection
from ..events import EventEmitter
from ..extension import FeathersState
from ..service import invoke
from .. import transport
from ..transport import Message, WebSocket, admission
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
        self._request = flask_request
        self.headers = flask_request.headers
        self.args = _QueryArgs(flask_request.args)
        self.query = self.args
        self.remote_addr = flask_request.remote_addr
        self.environ = flask_request.environ
        self.feathers: Dict[str, Any] = {'provider': PROVIDER}

    @property
    def cookies(self) -> Any:
        """The request's cookies (parsed when first read)."""
        return self._request.cookies


class _QueryArgs(ImmutableMultiDict):  # type: ignore[type-arg]
    """The query string as Werkzeug's MultiDict, whose ``get`` of a missing key answers the
    default without raising (and catching) a BadRequestKeyError first: that cost a reconnect
    storm about 7% of its time in an ``authorize`` hook reading ``req.args.get(...)``."""

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:  # noqa: A002
        if key not in self:
            return default
        return super().get(key, default, type)


class Spark(EventEmitter):
    """One Primus connection, as ``primus.on('connection', fn(spark))`` sees it.

    Its WebSocket lives on the connection layer (``transport/``): frames are written directly
    by the sending thread, a client that stops reading is dropped when ``maxQueue`` frames wait,
    the heartbeat is a hub timer, and inbound frames are handled in order on a pooled worker.
    """

    label = 'Primus'

    def __init__(self, server: 'PrimusServer', req: PrimusRequest) -> None:
        super().__init__()
        self.id = secrets.token_hex(10)
        self.server = server
        self.request = req
        self.headers = req.headers
        self.query = req.args
        self.feathers = req.feathers
        self._ws: Optional[WebSocket] = None
        #: frames sent between registration and the handshake, written first once it is done
        self._early: Optional[List[Any]] = []
        self._lock = threading.Lock()
        self._acks: Dict[int, Callable[..., Any]] = {}
        self._ack_ids = iter(range(1, proto.MAX_ACK_ID))
        self._closed = False
        self.connection: Optional[Connection] = None

    def _start(self, ws: WebSocket) -> None:
        with self._lock:
            self._ws = ws
            early, self._early = self._early or [], None
        for item in early:
            self._write(ws, item)

    def __repr__(self) -> str:
        return f'<Spark {self.id}>'

    @property
    def open(self) -> bool:
        ws = self._ws
        return not self._closed and (ws is None or ws.open)

    # -- sending --------------------------------------------------------------------------------
    def write_frame(self, frame: Union[str, Message]) -> None:
        """Send one encoded frame (a :class:`~flask_feathers.transport.Message` when it is the
        same for many clients); a client that stopped reading is dropped."""
        self.write_frames([frame])

    def write_frames(self, frames: List[Union[str, Message]]) -> None:
        """Send several frames in order, with one system call when the socket takes them."""
        ws = self._ws
        if ws is None:
            with self._lock:
                if self._early is not None:
                    self._early.extend(frames)
                    return
                ws = self._ws
        if ws is None:
            return
        if len(frames) == 1:
            self._write(ws, frames[0])
        else:
            ws.send_messages([f if isinstance(f, Message) else Message(f) for f in frames])

    @staticmethod
    def _write(ws: WebSocket, frame: Union[str, Message]) -> None:
        if isinstance(frame, Message):
            ws.send_message(frame)
        else:
            ws.send(frame)

    def write(self, data: Any) -> None:
        """Send a plain Primus data frame (``primus.on('data')`` on the client)."""
        self.write_frame(proto.encode_data(data))

    def send(self, event: str, *args: Any) -> None:
        """Send an emitter event; a callable last argument receives the client's ack."""
        ack_id = None
        if args and callable(args[-1]):
            with self._lock:
                ack_id = next(self._ack_ids)
                self._acks[ack_id] = args[-1]
            args = args[:-1]
        self.write_frame(proto.encode_event(event, list(args), ack_id))

    def end(self) -> None:
        """Close deliberately: the client is told not to reconnect."""
        self.write_frame(proto.SERVER_CLOSE_FRAME)
        self._closed = True
        ws = self._ws
        if ws is not None:
            ws.close()

    # -- receiving (the connection layer calls these) ---------------------------------------------
    def on_message(self, ws: WebSocket, frame: Any) -> None:  # hub thread
        ws.deliver(self._handle, frame)

    def on_close(self, ws: WebSocket) -> None:  # a worker, after every frame
        self._closed = True
        with self.server.state.app_context():
            self.server._forget(self)

    def _handle(self, ws: WebSocket, frame: Any) -> None:
        with self.server.state.app_context():  # listeners see current_app, g, ...
            self._handle_frame(frame)

    def _handle_frame(self, frame: Any) -> None:
        decoded = proto.decode(frame)
        run = self.server.workers.submit
        if isinstance(decoded, proto.Ping):
            self.write_frame(proto.encode_pong(decoded.value))
        elif isinstance(decoded, proto.Pong):
            pass
        elif isinstance(decoded, proto.Id):
            if decoded.is_request:
                self.write_frame(proto.encode_id(self.id))
        elif isinstance(decoded, proto.Event):
            # Each call runs on its own worker, like Flask-SocketIO's async handlers: a slow
            # call never holds back the next one from the same client.
            run(self._handle_event, decoded)
        elif isinstance(decoded, proto.Ack):
            with self._lock:
                callback = self._acks.pop(decoded.ack_id, None)
            if callback is not None:
                run(callback, *decoded.args)
        elif isinstance(decoded, proto.Data):
            self._run_listeners('data', decoded.value)  # on the serial lane: in order
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

    def _handle_event(self, event: Any) -> None:
        with self.server.state.app_context():  # the service call and its hooks, like Socket.IO's
            self._run_event(event)

    def _run_event(self, event: Any) -> None:
        connection = self.connection
        name, args = event.name, list(event.args)
        if proto.is_reserved_event(name):
            ack = None
        elif _realtime.is_call(name, args, self.server.application) and connection is not None:
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
        self.workers = transport.get_hub().workers
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
        message = Message(frame)
        for spark in list(self.sparks.values()):
            spark.write_frame(message)

    def forEach(self, fn: Callable[[Spark], Any]) -> None:  # noqa: N802 (Primus's name)
        for spark in list(self.sparks.values()):
            fn(spark)

    for_each = forEach

    def spark(self, id: str) -> Optional[Spark]:
        return self.sparks.get(id)

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
        too_many = admission.over_connect_rate(self.state.connect_rate, request.remote_addr) or \
            admission.over_connection_caps(self.state, request.remote_addr)
        if too_many is not None:
            return Response(json.dumps({'error': too_many.message}), status=too_many.code,
                            mimetype='application/json')
        req = PrimusRequest(request)
        try:
            for fn in self.authorizers:
                invoke(fn, (req,), self.application.callback_timeout,
                       label='primus.authorize hook')
        except Exception as exc:
            message = admission.refusal_message(exc, self.application.debug)
            log.info('Primus connection refused: %r', exc)
            return Response(json.dumps({'error': message}), status=401,
                            mimetype='application/json')
        return self._serve_socket(req)

    def _serve_socket(self, req: PrimusRequest) -> Any:
        environ = request.environ
        if not transport.can_hand_over(environ):
            log.warning('Primus needs a plain TCP socket from Werkzeug or gunicorn (not TLS, '
                        'eventlet or gevent: terminate TLS in a proxy); connection refused')
            return Response(json.dumps({'error': 'This server cannot serve Primus on this '
                                                 'socket'}), status=501,
                            mimetype='application/json')
        # Register before the handshake: a client may send its first call the moment it sees the
        # upgrade answer, and events from that call must already find this connection.
        spark = Spark(self, req)
        connection = Connection(spark.id, PROVIDER, req.feathers, _spark_sender(spark))
        connection.extra['spark'] = spark
        connection.extra['environ'] = req.environ  # the upgrade request: params['headers']
        connection.extra['address'] = req.remote_addr
        connection.extra['disconnect'] = spark.end
        try:  # Authorization: Bearer <token> on the upgrade request signs the connection in
            admission.authenticate_handshake(self.application, connection,
                                             lambda: _realtime.headers_of(req.environ))
        except Exception as exc:
            log.info('Primus connection refused: %r', exc)
            return Response(json.dumps({'error': admission.refusal_message(
                exc, self.application.debug)}), status=401, mimetype='application/json')
        spark.connection = connection
        self.sparks[spark.id] = spark
        self.state.connections.add(connection)
        try:
            accepted = transport.accept(environ, spark, max_message_size=self.max_message_size,
                                        max_backlog=self.max_queue, owner=self.state,
                                        compression=self.compression)
        except Exception as exc:
            log.info('Primus WebSocket handshake failed: %r', exc)
            self._forget(spark, notify=False)
            return Response(status=400)
        assert accepted is not None  # can_hand_over said yes
        ws, mode = accepted
        spark._start(ws)
        ws.heartbeat(self.ping_interval, _send_ping)
        # Like Node's Primus: the 'connection' listeners attach their spark.on(...) handlers
        # before the first frame is read (what they write goes out at once).
        self._run_listeners('connection', spark)
        ws.start()
        return transport.done(mode, current_app.response_class)

    def _forget(self, spark: Spark, notify: bool = True) -> None:
        """The spark's connection ended: it leaves the registry and channels, then its listeners
        and the server's 'disconnection' listeners run."""
        self.sparks.pop(spark.id, None)
        self.state.connections.remove(spark.id)
        if notify:
            spark._run_listeners('end')
            self._run_listeners('disconnection', spark)
        # Spark and Connection point at each other (and the connection's send and disconnect at
        # the spark): cut that, so both go when the last reference does instead of waiting for
        # a full garbage collection (a reconnect storm left thousands of them for it).
        connection, spark.connection = spark.connection, None
        if connection is not None:
            connection.extra.pop('spark', None)
            connection.extra.pop('disconnect', None)


def _send_ping(ws: WebSocket) -> None:
    ws.send(proto.encode_ping(int(time.time() * 1000)))


def _spark_sender(spark: Spark) -> Callable[[str, Any], None]:
    def send(event: str, data: Any) -> None:
        spark.write_frame(proto.encode_event(event, [data]))
    return send


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
            # One websocket frame for every client without permessage-deflate.
            message = Message(proto.encode_event(event, [data]))
            for conn in conns:
                conn.extra['spark'].write_frame(message)
        def write(conn: Connection, items: List[Tuple[str, Any, Optional[Dict[str, Any]]]]
                  ) -> None:
            # What a filter worker delivers to one client at once: one write on its websocket.
            messages: List[Message] = []
            for name, data, shared in items:
                message = shared.get(PROVIDER) if shared is not None else None
                if message is None:
                    message = Message(proto.encode_event(name, [data]))
                    if shared is not None:
                        shared[PROVIDER] = message
                messages.append(message)
            conn.extra['spark'].write_frames(messages)

        state.dispatcher.add_transport(PROVIDER, broadcast, write)
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
