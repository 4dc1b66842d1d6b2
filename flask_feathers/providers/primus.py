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
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from flask import Response, current_app, request
from werkzeug.wrappers import Response as BaseResponse

from ..connections import Connection
from ..events import EventEmitter
from ..extension import FeathersState
from ..service import invoke
from .. import transport
from ..transport import Message, admission
from . import _primus_protocol as proto
from ._primus_spark import PROVIDER, PrimusRequest, Spark, send_ping, spark_sender
from . import _calls

log = logging.getLogger(__name__)


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
        self._client_cache: Optional[Tuple[bytes, str]] = None

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
    def client_library(self) -> Tuple[bytes, str]:
        if self._client_cache is None:
            with open(_CLIENT_FILE, encoding='utf-8') as fh:
                text = fh.read()
            text = text.replace(PATHNAME_TOKEN, self.pathname).replace(
                PING_INTERVAL_TOKEN, str(int(self.ping_interval * 1000)))
            body = text.encode('utf-8')
            self._client_cache = (body, hashlib.sha1(body).hexdigest())
        return self._client_cache

    def serve_library(self) -> BaseResponse:
        body, etag = self.client_library()
        response = Response(body, mimetype='application/javascript')
        response.set_etag(etag)
        response.headers['Cache-Control'] = 'no-cache'
        return response.make_conditional(request)

    # -- the WebSocket endpoint -------------------------------------------------------------------
    def endpoint(self) -> BaseResponse:
        """The Flask view at ``pathname``: what :meth:`upgrades` left to Flask (a plain GET: 426;
        an upgrade on a socket that cannot be handed over)."""
        answer = self.answer(request._get_current_object())  # type: ignore[attr-defined]
        return transport.done(answer, current_app.response_class) if isinstance(answer, str) \
            else answer

    def upgrades(self, wsgi_app: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap the app's WSGI callable: a WebSocket upgrade at ``pathname`` is answered here,
        in the app context, without Flask's routing and request context (like Node's Primus,
        which takes the HTTP server's 'upgrade' event before any Express middleware). Profiled
        in a reconnect storm: Flask's dispatch was a third of a Primus connect's CPU."""
        pathname = self.pathname
        app = self.state.app
        assert app is not None

        def primus_upgrades(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if not transport.hand_over_upgrade(environ, pathname):
                return wsgi_app(environ, start_response)
            with app.app_context():
                try:
                    # not stored in the environ: the two would make a reference cycle that
                    # outlives the connection until a full garbage collection
                    response = self.answer(app.request_class(environ, populate_request=False))
                except Exception:
                    log.exception('error on a Primus upgrade request')
                    response = Response(json.dumps({'error': 'Internal Server Error'}),
                                        status=500, mimetype='application/json')
            if isinstance(response, str):  # handed over
                return transport.finish(response)
            return response(environ, start_response)
        primus_upgrades.__wrapped__ = wsgi_app  # type: ignore[attr-defined]
        return primus_upgrades

    def answer(self, request: Any) -> Union[BaseResponse, str]:
        """Answer the upgrade ``request``: a refusal, or the hand-over of its WebSocket (then the
        WSGI server's mode, for :func:`..transport.finish`)."""
        if request.headers.get('Upgrade', '').lower() != 'websocket':
            return Response(json.dumps({'error': 'This endpoint only speaks WebSocket (Primus)'}),
                            status=426, mimetype='application/json',
                            headers={'Upgrade': 'websocket', 'Connection': 'Upgrade'})
        environ = request.environ
        if not origin_allowed(self.origins, environ):
            log.info('Primus connection from origin %r refused', environ.get('HTTP_ORIGIN'))
            return Response(json.dumps({'error': 'Origin not allowed'}), status=403,
                            mimetype='application/json')
        address = request.remote_addr
        too_many = admission.over_connect_rate(self.state.connect_rate, address) or \
            admission.over_connection_caps(self.state, address)
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

    def _serve_socket(self, req: PrimusRequest) -> Union[BaseResponse, str]:
        environ = req.environ
        if not transport.can_hand_over(environ):
            log.warning('Primus needs a plain TCP socket from Werkzeug or gunicorn (not TLS, '
                        'eventlet or gevent: terminate TLS in a proxy); connection refused')
            return Response(json.dumps({'error': 'This server cannot serve Primus on this '
                                                 'socket'}), status=501,
                            mimetype='application/json')
        # Register before the handshake: a client may send its first call the moment it sees the
        # upgrade answer, and events from that call must already find this connection.
        spark = Spark(self, req)
        connection = Connection(spark.id, PROVIDER, req.feathers, spark_sender(spark))
        connection.extra['spark'] = spark
        connection.extra['environ'] = environ  # the upgrade request: params['headers']
        connection.extra['address'] = req.remote_addr
        connection.extra['disconnect'] = spark.end
        try:  # Authorization: Bearer <token> on the upgrade request signs the connection in
            admission.authenticate_handshake(self.application, connection,
                                             lambda: _calls.headers_of(environ))
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
        ws.heartbeat(self.ping_interval, send_ping)
        # Like Node's Primus: the 'connection' listeners attach their spark.on(...) handlers
        # before the first frame is read (what they write goes out at once).
        self._run_listeners('connection', spark)
        ws.start()
        return mode

    def _forget(self, spark: Spark, notify: bool = True) -> None:
        """The spark's connection ended: it leaves the registry and channels, then its listeners
        and the server's 'disconnection' listeners run."""
        self.sparks.pop(spark.id, None)
        self.state.connections.remove(spark.id)
        # a request made in Flask's context (the view's way) sits in its environ: a cycle
        spark.request.environ.pop('werkzeug.request', None)
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
    origin: Optional[str] = environ.get('HTTP_ORIGIN')
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
        return bool(origin in origins)
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
        assert app is not None, 'a provider is attached to the state of one Flask app'
        # Werkzeug routes WebSocket upgrades only to rules marked websocket=True; the plain rule
        # answers 426 to ordinary GETs.
        app.add_url_rule(server.pathname, 'feathers_primus_ws', server.endpoint, methods=['GET'],
                         websocket=True)
        app.add_url_rule(server.pathname, 'feathers_primus', server.endpoint, methods=['GET'])
        app.add_url_rule(f'{server.pathname}/primus.js', 'feathers_primus_js',
                         server.serve_library, methods=['GET'])
        app.wsgi_app = server.upgrades(app.wsgi_app)  # type: ignore[method-assign]

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
