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
from typing import Any, Callable, Dict, List, Optional

import flask
from flask_socketio import ConnectionRefusedError, SocketIO

from ..connections import Connection
from ..extension import FeathersState
from ..service import invoke
from ..transport import admission
from .. import transport
from . import _calls, _eio_open, _eio_websocket, _socketio_compat, _socketio_wire
from ._socketio_wire import NAMESPACE, PROVIDER

log = logging.getLogger(__name__)

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

    __slots__ = ('sid', 'auth', 'feathers', '_environ', '_request_class', '_request')

    def __init__(self, sid: str, auth: Any, environ: Dict[str, Any], request_class: Any,
                 feathers: Dict[str, Any]) -> None:
        self.sid = sid
        self.auth = auth
        self.feathers = feathers
        self._environ = environ
        self._request_class = request_class
        self._request: Any = None

    @property
    def request(self) -> Any:
        """The handshake request (the app's ``request_class``), made when first read."""
        if self._request is None:
            # not stored in the environ: the two would be a reference cycle that outlives the
            # connection until a full garbage collection
            self._request = self._request_class(self._environ, populate_request=False)
        return self._request

    def __repr__(self) -> str:
        return f'<SocketContext {self.sid}>'


class FeathersSocketIO(SocketIO):  # type: ignore[misc]  # Flask-SocketIO ships no types
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
        registers: Callable[..., Any] = super().on(message, namespace)
        return registers


def _route_for_handlers(app: flask.Flask, io: Any) -> None:
    """A Flask rule for the Socket.IO path, which HTTP requests never reach (the Socket.IO
    middleware answers them first). Flask-SocketIO runs every event handler in a request context
    of the connection's environ; without a rule for its path, each one raised and kept a NotFound
    while matching the URL (profiled: about 5% of a reconnect storm's CPU, and of every call)."""
    path = _socketio_compat.engineio_path(io)
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
            if sock is not None and environ.get('HTTP_UPGRADE', '').lower() == 'websocket' \
                    and not transport.handed_over(environ):
                transport.shutdown_socket(sock)
            raise
    app.__wrapped__ = wsgi_app  # type: ignore[attr-defined]
    return app


def _sid() -> str:
    """The Socket.IO session id of the client whose event runs (Flask-SocketIO sets it on the
    request of every handler's context)."""
    sid: str = flask.request.sid  # type: ignore[attr-defined]
    return sid


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
        app = state.app
        assert app is not None, 'a provider is attached to the state of one Flask app'
        io = FeathersSocketIO(app, **options)
        _route_for_handlers(app, io)
        app.wsgi_app = _close_after_websocket(app.wsgi_app)  # type: ignore[method-assign]
        socket_class = _eio_websocket.tune(io, compression, max_queue, owner=state)
        _socketio_wire.guard_messages(io)
        state.io = io
        state.providers[PROVIDER] = self
        application = state.application
        connections = state.connections

        delivery = _socketio_wire.Delivery(io, connections, max_queue)
        socket_class.shortcut = delivery.answer_connect  # type: ignore[attr-defined]
        app.wsgi_app = _eio_open.websocket_opens(  # type: ignore[method-assign]
            io, app, socket_class, app.wsgi_app)
        state.dispatcher.add_transport(PROVIDER, delivery.broadcast, delivery.write)

        user = io._user_handlers

        def user_connect(feathers: Dict[str, Any], auth: Any) -> None:
            # in Flask-SocketIO's request context of the connection (flask.request.sid, the
            # connection's own flask.session), like every handler registered with @io.on
            _store_on_session(feathers)  # before the app's own connect handlers read it
            for handler in user['connect']:
                result = handler(auth) if _accepts_argument(handler) else handler()
                if result is False:
                    raise ConnectionRefusedError(REFUSED_MESSAGE)

        def on_connect(sid: str, environ: Dict[str, Any], auth: Any = None) -> Any:
            # python-socketio calls this directly: the io.use chain runs in the app context,
            # with the handshake request as socket.request; a request context (Flask-SocketIO's,
            # about a third of a connect's CPU) is made only for the app's own handlers.
            app = environ['flask.app']
            with app.app_context():
                admit(app, sid, environ, auth)
            return True

        def admit(app: flask.Flask, sid: str, environ: Dict[str, Any], auth: Any) -> None:
            feathers: Dict[str, Any] = {'provider': PROVIDER}
            address = environ.get('REMOTE_ADDR')  # what Request.remote_addr reads
            socket = SocketContext(sid, auth, environ, app.request_class, feathers)
            too_many = admission.over_connect_rate(state.connect_rate, address) \
                or admission.over_connection_caps(state, address)
            if too_many is not None:
                raise ConnectionRefusedError(too_many.message, too_many.to_dict())
            conn = Connection(sid, PROVIDER, feathers, functools.partial(delivery.send, sid))
            # the handshake's request (engine.io keeps it anyway): params['headers'] of calls
            conn.extra['environ'] = environ
            conn.extra['address'] = address
            conn.extra['disconnect'] = functools.partial(io.server.disconnect, sid,
                                                         namespace=NAMESPACE)
            try:
                for middleware in io.middleware:
                    invoke(middleware, (socket,), application.callback_timeout,
                           label='io.use middleware')
                # Authorization: Bearer <token> on the handshake signs the connection in
                admission.authenticate_handshake(
                    application, conn, lambda: _calls.headers_of(environ))
                if user['connect'] or user['disconnect'] or user['*']:
                    _socketio_compat.in_request_context(
                        io, functools.partial(user_connect, feathers), 'connect', NAMESPACE, sid,
                        environ, auth)
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

        def user_disconnect(reason: Any = None) -> None:
            for handler in user['disconnect']:
                try:
                    handler(reason) if _accepts_argument(handler) else handler()
                except Exception:
                    log.exception('disconnect handler %r raised', handler)

        def on_disconnect(sid: str, reason: Any = None) -> None:
            conn = connections.remove(sid)
            if user['disconnect']:
                _socketio_compat.in_request_context(io, user_disconnect, 'disconnect',
                                                    NAMESPACE, sid, reason)
            if conn is not None:
                # Flask-SocketIO's request contexts leave their request in the environ: a cycle
                conn.extra.get('environ', {}).pop('werkzeug.request', None)

        def on_any(event: Any, *args: Any) -> Any:
            conn = connections.get(_sid())
            if conn is None:
                return tuple(_calls.unknown_event_error(event))
            if _calls.is_call(event, args, application):
                return tuple(_calls.run_call(application, conn, event, args))
            for handler in io._user_handlers['*']:
                return handler(event, *args)
            return tuple(_calls.unknown_event_error(event))

        io.server.on('connect', on_connect, namespace=NAMESPACE)
        io.server.on('disconnect', on_disconnect, namespace=NAMESPACE)
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
