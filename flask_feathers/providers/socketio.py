"""Socket.IO provider on Flask-SocketIO: both call dialects, ``io.use`` authorization, events.

``api.configure(socketio(setup_io, **options))`` creates a :class:`FeathersSocketIO` (a real
``flask_socketio.SocketIO``) per app, calls ``setup_io(io)`` and serves every service on the
default namespace. Middleware registered with ``@io.use`` runs in order on every connect;
``socket.feathers`` becomes that connection's params.
"""
from __future__ import annotations

import functools
import inspect
import logging
import re
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import flask
from flask_socketio import ConnectionRefusedError, SocketIO
from socketio import packet as socketio_packet

from .. import errors
from ..connections import Connection
from ..extension import FeathersState
from ..service import invoke
from ..transport import Message, admission
from . import _eio_websocket, _realtime

log = logging.getLogger(__name__)

PROVIDER = 'socketio'
NAMESPACE = '/'
#: Packets engine.io may queue for one client before it is dropped as not reading.
DEFAULT_MAX_QUEUE = 1024
#: What a refused client sees when a middleware failed with something else than a FeathersError.
REFUSED_MESSAGE = admission.REFUSED_MESSAGE


class SocketContext:
    """What a ``(socket, next)`` middleware sees of a connecting client.

    :ivar sid: the Socket.IO session id.
    :ivar auth: the client's auth payload (``io({auth: ...})``) or None.
    :ivar request: the handshake request (``headers``, ``args``, ``cookies``, ``remote_addr``).
    :ivar feathers: the connection's params; starts as ``{'provider': 'socketio'}``.
    """

    __slots__ = ('sid', 'auth', 'request', 'feathers')

    def __init__(self, sid: str, auth: Any, request: Any, feathers: Dict[str, Any]) -> None:
        self.sid = sid
        self.auth = auth
        self.request = request
        self.feathers = feathers

    def __repr__(self) -> str:
        return f'<SocketContext {self.sid}>'


class FeathersSocketIO(SocketIO):
    """``flask_socketio.SocketIO`` with the seed's ``io.use(fn(socket, next))`` middleware.

    Your own ``@io.on('connect')`` / ``'disconnect'`` / ``'*'`` handlers on the default namespace
    still run: connect after the middleware chain, ``'*'`` for events that are not service calls.
    """

    def __init__(self, app: Any = None, **kwargs: Any) -> None:
        self.middleware: List[Callable[..., Any]] = []
        self._user_handlers: Dict[str, List[Callable[..., Any]]] = {
            'connect': [], 'disconnect': [], '*': []}
        self._feathers_owned = False
        super().__init__(app, **kwargs)

    def use(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add an authorization middleware ``fn(socket, next)``; usable as a decorator."""
        if not callable(fn):
            raise TypeError(f'io.use() takes a function (socket, next), got {fn!r}')
        self.middleware.append(fn)
        return fn

    def on(self, message: str, namespace: Optional[str] = None) -> Callable[..., Any]:
        if self._feathers_owned and (namespace or NAMESPACE) == NAMESPACE \
                and message in self._user_handlers:
            def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
                self._user_handlers[message].append(handler)
                return handler
            return decorator
        return super().on(message, namespace)


def _route_for_handlers(app: flask.Flask, io: Any) -> None:
    """A Flask rule for the Socket.IO path, which HTTP requests never reach (the Socket.IO
    middleware answers them first). Flask-SocketIO runs every event handler in a request context
    of the connection's environ; without a rule for its path, each one raised and kept a NotFound
    while matching the URL (profiled: about 5% of a reconnect storm's CPU, and of every call)."""
    path = getattr(getattr(io, 'sockio_mw', None), 'engineio_path', None)
    if not path:
        return
    path = '/' + path.strip('/') + '/'

    def socketio_path() -> Any:  # pragma: no cover - the middleware answers first
        flask.abort(404)
    app.add_url_rule(path, 'feathers_socketio_path', socketio_path,
                     methods=['GET', 'OPTIONS'], websocket=True, strict_slashes=False)
    app.add_url_rule(path, 'feathers_socketio_path_http', socketio_path,
                     methods=['GET', 'POST', 'OPTIONS'], strict_slashes=False)


def _close_after_websocket(wsgi_app: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the app's WSGI callable so a finished websocket ends Werkzeug's connection.

    engine.io raises ConnectionError after a websocket ends under Werkzeug, meaning "drop the
    connection"; Werkzeug 3 logs it and then reads the client's close frame as a new HTTP request
    and answers a 400, so the client never completes its close handshake (python-socketio waits
    3 s on every disconnect). Shutting the socket down ends Werkzeug's request loop at once.
    """
    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return wsgi_app(environ, start_response)
        except ConnectionError:
            sock = environ.get('werkzeug.socket')
            if sock is not None and environ.get('HTTP_UPGRADE', '').lower() == 'websocket':
                _realtime.shutdown_socket(sock)
            raise
    app.__wrapped__ = wsgi_app  # type: ignore[attr-defined]
    return app


def _store_on_session(feathers: Dict[str, Any]) -> None:
    try:
        flask.session['feathers'] = feathers
    except Exception:  # sessions are optional; the connection registry is what counts
        pass


def _accepts_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in params)


def _share_message_queue(state: FeathersState, options: Dict[str, Any]) -> None:
    """With FEATHERS_MESSAGE_QUEUE set, let Flask-SocketIO use it too (on its own channel), so that
    custom ``api.io.emit(...)`` calls reach other processes' clients. Service events do not travel
    there: each process delivers them to its own clients (``ignore_queue=True`` below)."""
    url = state.message_queue
    if not url or 'message_queue' in options or 'client_manager' in options:
        return
    channel = options.pop('channel', f'{state.message_queue_channel}-socketio')
    if state.write_only:
        import socketio as python_socketio  # Flask-SocketIO only makes it write-only without app
        options['client_manager'] = python_socketio.RedisManager(url, channel=channel,
                                                                 write_only=True)
    else:
        options['message_queue'] = url
        options['channel'] = channel


_EVENT_HEADER = re.compile(r'(?:2|5\d{1,10}-)(?:(/[^,\[{"]*),)?(\d{1,16})')


def _guard_messages(io: SocketIO) -> None:
    """Answer every malformed Socket.IO call that asked for an ack, and bound binary attachments.

    python-socketio drops an EVENT packet whose JSON does not parse (broken, nested too deeply)
    or whose data is not a non-empty list, logging it: the client's ack never comes and a
    Feathers client waits forever. The ack id sits in the packet header before the JSON, so it
    can still be answered with BadRequest. A BINARY_EVENT may announce up to 10**10 attachments
    and python-socketio keeps every binary frame until they all came: their total is held to
    ``max_http_buffer_size`` here, past it the client is disconnected.
    """
    server = io.server
    eio = server.eio
    original = eio.handlers['message']
    limit = eio.max_http_buffer_size

    def on_message(eio_sid: str, data: Any) -> Any:
        if isinstance(data, (bytes, bytearray)):
            pending = server._binary_packet.get(eio_sid)
            if pending is not None and \
                    sum(map(len, pending.attachments)) + len(data) > limit:
                server._binary_packet.pop(eio_sid, None)
                log.warning('Socket.IO client %s sent more than %d bytes of binary attachments; '
                            'disconnected', eio_sid, limit)
                eio.disconnect(eio_sid)
                return None
            return original(eio_sid, data)
        try:
            return original(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            match = _EVENT_HEADER.match(data) if isinstance(data, str) else None
            if match is None:
                log.info('Socket.IO client %s sent an unusable packet: %s', eio_sid,
                         str(exc)[:100])
                return None
            namespace = match.group(1) or NAMESPACE
            sid = server.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is None or not server.manager.is_connected(sid, namespace):
                return None
            error = errors.BadRequest('Malformed Socket.IO packet: the event must be a JSON '
                                      'array starting with the event name')
            server._send_packet(eio_sid, server.packet_class(
                socketio_packet.ACK, namespace=namespace, id=int(match.group(2)),
                data=[error.to_dict()]))
            return None
    eio.handlers['message'] = on_message


class SocketIOProvider:
    """Attaches Socket.IO to each app; see :func:`socketio`."""

    name = PROVIDER

    def __init__(self, fn: Optional[Callable[[FeathersSocketIO], Any]], options: Dict[str, Any]):
        self.fn = fn
        self.options = options

    def attach(self, api: Any, state: FeathersState) -> None:
        if state.io is not None:
            raise RuntimeError('Socket.IO is configured twice on this app')
        options = dict(self.options)
        options.setdefault('async_mode', 'threading')
        _share_message_queue(state, options)
        compression = bool(options.pop('websocket_compression', False))
        max_queue = int(options.pop('max_queue', DEFAULT_MAX_QUEUE))
        io = FeathersSocketIO(state.app, **options)
        _route_for_handlers(state.app, io)
        state.app.wsgi_app = _close_after_websocket(state.app.wsgi_app)
        _eio_websocket.tune(io, compression, max_queue, owner=state)
        _guard_messages(io)
        state.io = io
        state.providers[PROVIDER] = self
        server = io.server
        application = state.application
        connections = state.connections

        # The sid exists while its connect handler runs, before the client got CONNECT: nothing
        # may be sent to it until then. python-socketio marks it connected only after sending
        # CONNECT, and a direct write delivers CONNECT at once, so a client could act on it (a
        # create whose event it should get) before the server thinks it connected. A connection
        # is ready once its CONNECT went out; a delivery that races with that waits for it.
        ready_lock = threading.Lock()
        send_packet = server._send_packet

        def send_marking_ready(eio_sid: str, pkt: Any) -> None:
            conn = None
            if pkt.packet_type == socketio_packet.CONNECT and isinstance(pkt.data, dict):
                conn = connections.get(pkt.data.get('sid'))
            if conn is None:
                return send_packet(eio_sid, pkt)
            with ready_lock:
                send_packet(eio_sid, pkt)
                conn.extra['ready'] = True

        # (Flask-SocketIO's test client replaces _send_packet with its own; is_connected serves.)
        server._send_packet = send_marking_ready

        def is_ready(conn: Connection) -> bool:
            if conn.extra.get('ready'):
                return True
            with ready_lock:
                if conn.extra.get('ready'):
                    return True
            if server.manager.is_connected(conn.id, NAMESPACE):
                conn.extra['ready'] = True
                return True
            return False

        def keeps_up(conn: Connection) -> bool:
            if 'eio_socket' not in conn.extra:
                eio_sid = server.manager.eio_sid_from_sid(conn.id, NAMESPACE)
                conn.extra['eio_socket'] = server.eio.sockets.get(eio_sid)
            eio_socket = conn.extra['eio_socket']
            # No engine.io socket: Flask-SocketIO's test client, which has no queue to bound.
            if eio_socket is None:
                return True
            ws = _eio_websocket.hub_websocket(eio_socket)
            if ws is not None:  # the connection layer bounds its backlog and drops by itself
                return ws.open
            # engine.io's own queue (long-polling, upgraded websockets) has no bound: a client
            # that stopped reading would grow it until the ping time-out. Past max_queue it is
            # dropped instead.
            if eio_socket.queue.qsize() < max_queue:
                return True
            if not conn.extra.get('dropped'):
                conn.extra['dropped'] = True
                log.warning('Socket.IO client %s stopped reading (%d packets queued); dropped',
                            conn.id, eio_socket.queue.qsize())
                try:
                    eio_socket.close(wait=False, abort=True)
                except Exception:  # already closing
                    pass
            return False

        def send(sid: str, event: str, data: Any) -> None:
            conn = connections.get(sid)
            if conn is not None and is_ready(conn) and keeps_up(conn):
                # A delivery of its own (a filter changed the data, or it waited behind a slow
                # filter): straight to the websocket, without python-socketio's emit machinery.
                eio_socket = conn.extra['eio_socket']
                if eio_socket is None or _eio_websocket.send_to_many(
                        server, NAMESPACE, event, data, [(sid, eio_socket)]):
                    server.emit(event, data, to=sid, namespace=NAMESPACE, ignore_queue=True)

        def broadcast(event: str, data: Any, conns: Sequence[Connection]) -> None:
            ready = [c for c in conns if is_ready(c) and keeps_up(c)]
            if not ready:
                return
            # One websocket frame for every handed-over client; the others through engine.io.
            sids = _eio_websocket.send_to_many(
                server, NAMESPACE, event, data,
                [(c.id, c.extra['eio_socket']) for c in ready if c.extra['eio_socket'] is not None])
            sids += [c.id for c in ready if c.extra['eio_socket'] is None]
            if sids:
                server.emit(event, data, to=sids, namespace=NAMESPACE, ignore_queue=True)

        def write(conn: Connection, items: List[Tuple[str, Any, Optional[Dict[str, Any]]]]
                  ) -> None:
            # What a filter worker delivers to one client at once: one write on its websocket.
            if not (is_ready(conn) and keeps_up(conn)):
                return
            eio_socket = conn.extra['eio_socket']
            ws = _eio_websocket.hub_websocket(eio_socket) if eio_socket is not None else None
            if ws is None:
                for name, data, _ in items:
                    send(conn.id, name, data)
                return
            messages: List[Message] = []
            for name, data, shared in items:
                message = shared.get(PROVIDER) if shared is not None else None
                if message is None:
                    message = _eio_websocket.event_message(server, NAMESPACE, name, data)
                    if message is None:  # binary parts: engine.io's own way, in order
                        if messages:
                            ws.send_messages(messages)
                            messages = []
                        send(conn.id, name, data)
                        continue
                    if shared is not None:
                        shared[PROVIDER] = message
                messages.append(message)
            if messages:
                ws.send_messages(messages)

        state.dispatcher.add_transport(PROVIDER, broadcast, write)

        def on_connect(auth: Any = None) -> Any:
            sid = flask.request.sid
            feathers: Dict[str, Any] = {'provider': PROVIDER}
            socket = SocketContext(sid, auth, flask.request._get_current_object(), feathers)
            too_many = admission.over_connect_rate(state.connect_rate, flask.request.remote_addr) \
                or admission.over_connection_caps(state, flask.request.remote_addr)
            if too_many is not None:
                raise ConnectionRefusedError(too_many.message, too_many.to_dict())
            conn = Connection(sid, PROVIDER, feathers, functools.partial(send, sid))
            # the handshake's request (engine.io keeps it anyway): params['headers'] of calls
            conn.extra['environ'] = flask.request.environ
            conn.extra['address'] = flask.request.remote_addr
            conn.extra['disconnect'] = functools.partial(io.server.disconnect, sid,
                                                         namespace=NAMESPACE)
            try:
                for middleware in io.middleware:
                    invoke(middleware, (socket,), application.callback_timeout,
                           label='io.use middleware')
                # Authorization: Bearer <token> on the handshake signs the connection in
                admission.authenticate_handshake(
                    application, conn, lambda: _realtime.headers_of(conn.extra['environ']))
                _store_on_session(feathers)  # before the app's own connect handlers read it
                for handler in io._user_handlers['connect']:
                    result = handler(auth) if _accepts_argument(handler) else handler()
                    if result is False:
                        raise ConnectionRefusedError(REFUSED_MESSAGE)
            except ConnectionRefusedError:
                raise
            except Exception as exc:
                data = admission.connection_refusal(exc)
                if data is None:
                    log.info('Socket.IO connection %s refused: %r', sid, exc)
                message = admission.refusal_message(exc, application.debug)
                raise ConnectionRefusedError(message, data) if data is not None \
                    else ConnectionRefusedError(message) from None
            connections.add(conn)
            return True

        def on_disconnect(reason: Any = None) -> None:
            connections.remove(flask.request.sid)
            for handler in io._user_handlers['disconnect']:
                try:
                    handler(reason) if _accepts_argument(handler) else handler()
                except Exception:
                    log.exception('disconnect handler %r raised', handler)

        def on_any(event: Any, *args: Any) -> Any:
            conn = connections.get(flask.request.sid)
            if conn is None:
                return tuple(_realtime.unknown_event_error(event))
            if _realtime.is_call(event, args, application):
                return tuple(_realtime.run_call(application, conn, event, args))
            for handler in io._user_handlers['*']:
                return handler(event, *args)
            return tuple(_realtime.unknown_event_error(event))

        io.on('connect')(on_connect)
        io.on('disconnect')(on_disconnect)
        io.on('*')(on_any)
        io._feathers_owned = True
        if self.fn is not None:
            self.fn(io)


def socketio(fn: Optional[Callable[[FeathersSocketIO], Any]] = None,
             **options: Any) -> Callable[[Any], None]:
    """``api.configure(socketio(setup_io, **options))``.

    :param fn: called with each app's :class:`FeathersSocketIO` (``io.use``, ``io.on``).
    :param options: passed to ``flask_socketio.SocketIO`` (default ``async_mode='threading'``),
        except ``websocket_compression`` (default False): accept permessage-deflate on the
        websocket transport, and ``max_queue`` (default 1024): packets queued for a client that
        stopped reading before it is dropped.
    """
    if fn is not None and not callable(fn):
        raise TypeError(f'socketio(fn) takes a function of the SocketIO server, got {fn!r}')
    provider = SocketIOProvider(fn, options)

    def configure(api: Any) -> None:
        api.add_provider(provider)
    return configure
