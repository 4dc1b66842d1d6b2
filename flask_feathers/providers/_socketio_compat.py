"""Where the Socket.IO provider relies on python-engineio's and python-socketio's internals.

Every private name of the two libraries that flask_feathers reads, replaces or overrides is
reached through this module, and :func:`check` verifies all of them when Socket.IO is configured:
a release that moved one fails at start-up with an error naming it and the versions installed,
instead of misbehaving under load. setup.cfg bounds both libraries to the majors tested here.

What is relied on, and why:

* engine.io's ``Socket``: subclassed by :class:`._eio_websocket.HubSocket`, which overrides
  ``schedule_ping``, ``close`` and ``_upgrade_websocket`` and reads ``last_ping``, ``closing``,
  ``closed``, ``connected``, ``upgraded`` and ``queue`` (pings from the hub's timers, websockets
  handed to the hub);
* engine.io's server: ``_async`` (the driver table: queue, thread and websocket classes),
  ``_bad_request`` (the answer to a broken upgrade), ``handlers`` (the connect and message
  handlers, wrapped), and what its handshake uses (:func:`open_websocket_session`: a client
  that opens as a websocket is answered on the connection layer);
* python-socketio's server: ``_send_packet`` (wrapped, to know when a client's CONNECT went
  out), ``_binary_packet`` (the attachments a client announced, bounded), and ``environ``,
  ``handlers``, ``always_connect`` and ``_trigger_event`` (a websocket client's CONNECT to the
  default namespace is answered on the connection layer: :func:`connect_default_namespace`);
* python-socketio's manager: ``rooms``, ``callbacks``, ``pending_connect`` and
  ``pending_disconnect`` (kept in step by :class:`IndexedRooms`);
* Flask-SocketIO: ``sockio_mw.engineio_path`` (the path its middleware answers) and
  ``_handle_event`` (its request context around a handler: :func:`in_request_context`, for the
  app's own connect and disconnect handlers).
"""
from __future__ import annotations

from importlib import metadata
from typing import Any, Callable, Dict, Optional, Set, Tuple

from engineio import packet as engineio_packet
from engineio import socket as engineio_socket
from socketio import exceptions as socketio_exceptions
from socketio import packet as socketio_packet

#: Socket.IO's default namespace, the one Feathers clients use
NAMESPACE = '/'

#: engine.io's socket class, which :class:`._eio_websocket.HubSocket` extends
EngineIOSocket: Any = engineio_socket.Socket

_SOCKET_MEMBERS = ('schedule_ping', 'close', '_upgrade_websocket', 'check_ping_timeout',
                   'receive')
_ENGINEIO_SERVER_MEMBERS = ('_async', '_bad_request', 'handlers', 'sockets', 'start_service_task',
                            'transports', 'cors_allowed_origins', '_cors_allowed_origins',
                            'generate_id', '_upgrades', 'ping_interval_grace_period',
                            '_trigger_event', '_unauthorized')
_SOCKETIO_SERVER_MEMBERS = ('_send_packet', '_binary_packet', 'packet_class', 'manager',
                            'environ', 'handlers', 'always_connect', '_trigger_event')
_FLASK_SOCKETIO_MEMBERS = ('_handle_event',)
_MANAGER_MEMBERS = ('rooms', 'callbacks', 'pending_connect', 'pending_disconnect',
                    'basic_enter_room', 'basic_leave_room', 'basic_disconnect', 'pre_connect',
                    'connect', 'disconnect')


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:  # pragma: no cover - imported, so installed
        return 'unknown'


def check(io: Any) -> None:
    """Raise RuntimeError naming every internal of :mod:`engineio` / :mod:`socketio` this
    provider relies on that ``io`` (a Flask-SocketIO ``SocketIO``) does not have."""
    server = io.server
    missing = [f'engineio.socket.Socket.{name}' for name in _SOCKET_MEMBERS
               if not hasattr(EngineIOSocket, name)]
    missing += [f'engineio.Server.{name}' for name in _ENGINEIO_SERVER_MEMBERS
                if not hasattr(server.eio, name)]
    missing += [f'socketio.Server.{name}' for name in _SOCKETIO_SERVER_MEMBERS
                if not hasattr(server, name)]
    manager = getattr(server, 'manager', None)
    missing += [f'socketio manager .{name}' for name in _MANAGER_MEMBERS
                if manager is not None and not hasattr(manager, name)]
    missing += [f'flask_socketio.SocketIO.{name}' for name in _FLASK_SOCKETIO_MEMBERS
                if not hasattr(io, name)]
    if missing:
        raise RuntimeError(
            f'flask_feathers cannot run on python-engineio {_version("python-engineio")} with '
            f'python-socketio {_version("python-socketio")}: it relies on '
            f'{", ".join(missing)}, which these versions do not have (setup.cfg names the '
            f'versions it supports)')


# -- engine.io server ---------------------------------------------------------------------------
def driver_table(eio: Any) -> Dict[str, Any]:
    """The engine.io server's driver table (``queue``, ``thread``, ``websocket``, ...)."""
    return dict(eio._async or {})


def set_driver_table(eio: Any, table: Dict[str, Any]) -> None:
    """Give this engine.io server its own driver table (engine.io shares one per async mode)."""
    eio._async = table


def stock_websocket_class() -> Optional[type]:
    """engine.io's own simple-websocket driver class, or None in another engine.io layout."""
    try:
        from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
    except ImportError:  # pragma: no cover - another engineio layout
        return None
    return SimpleWebSocketWSGI  # type: ignore[no-any-return]


def bad_request(eio: Any) -> Any:
    """engine.io's answer to a request it refuses (a WSGI response body)."""
    return eio._bad_request()


def wrap_handler(eio: Any, name: str,
                 wrap: Callable[[Optional[Callable[..., Any]]], Callable[..., Any]]) -> None:
    """Replace engine.io's ``name`` handler by ``wrap(previous handler or None)``."""
    eio.handlers[name] = wrap(eio.handlers.get(name))


# -- python-socketio server ---------------------------------------------------------------------
def wrap_send_packet(server: Any,
                     wrap: Callable[[Callable[[str, Any], None]], Callable[[str, Any], None]]
                     ) -> None:
    """Route every packet python-socketio sends through ``wrap(its own send)``."""
    server._send_packet = wrap(server._send_packet)


def send_packet(server: Any, eio_sid: str, pkt: Any) -> None:
    """Send one Socket.IO packet to one engine.io client."""
    server._send_packet(eio_sid, pkt)


def open_websocket_session(eio: Any, socket_class: type, environ: Dict[str, Any]
                           ) -> Optional[Tuple[Any, Any]]:
    """engine.io's handshake (``Server.handle_request`` and ``_handle_connect``, 4.x) for a
    client that opens as a websocket, up to the upgrade itself: ``(socket, OPEN packet)``, or
    ``(None, refusal)`` where engine.io's connect handlers refused (its 401 answer, a dict), or
    None, having done nothing, where engine.io must answer itself (its service task not started
    yet, websocket not an allowed transport, an origin it refuses)."""
    if eio.start_service_task or 'websocket' not in eio.transports:
        return None
    origin = environ.get('HTTP_ORIGIN')
    if origin and eio.cors_allowed_origins != []:
        allowed = eio._cors_allowed_origins(environ)
        if allowed is not None and origin not in allowed:
            return None  # engine.io refuses it, and logs that once
    sid = eio.generate_id()
    sock = socket_class(eio, sid)
    eio.sockets[sid] = sock
    opening = engineio_packet.Packet(engineio_packet.OPEN, {
        'sid': sid,
        'upgrades': eio._upgrades(sid, 'websocket'),
        'pingTimeout': int(eio.ping_timeout * 1000),
        'pingInterval': int(eio.ping_interval + eio.ping_interval_grace_period) * 1000,
        'maxPayload': eio.max_http_buffer_size,
    })
    ret = eio._trigger_event('connect', sid, environ, run_async=False)
    if ret is not None and ret is not True:
        del eio.sockets[sid]
        return None, eio._unauthorized(ret or None)
    sock.schedule_ping()
    return sock, opening


def in_request_context(io: Any, handler: Callable[..., Any], event: str, namespace: str,
                       sid: str, *args: Any) -> Any:
    """Run ``handler`` the way Flask-SocketIO runs an event handler (``SocketIO._handle_event``):
    in a request context of the connection's environ, with ``flask.request.sid`` and the
    connection's own ``flask.session``; for a ``'connect'`` event ``args`` are ``(environ,
    auth)`` and ``handler`` gets ``auth``."""
    return io._handle_event(handler, event, namespace, sid, *args)


def connect_default_namespace(server: Any, eio_sid: str, auth: Any,
                              send_connect: Callable[[str], None]) -> bool:
    """python-socketio's handling of a client's CONNECT to the default namespace
    (``Server._handle_connect``, 5.x) for a client whose CONNECT packet was parsed already, with
    the accepting CONNECT written by ``send_connect(sid)``. False, having done nothing, where
    python-socketio must do it itself (``always_connect``, binary packets pending, no handlers
    for the namespace, an unknown client)."""
    environ = server.environ.get(eio_sid)
    if server.always_connect or eio_sid in server._binary_packet or environ is None \
            or NAMESPACE not in server.handlers:
        return False
    sid = server.manager.pre_connect(eio_sid, NAMESPACE)
    if sid is None:  # connected to the namespace already
        server._send_packet(eio_sid, server.packet_class(
            socketio_packet.CONNECT_ERROR, data='Unable to connect', namespace=NAMESPACE))
        return True
    try:
        if auth:
            success = server._trigger_event('connect', NAMESPACE, sid, environ, auth)
        else:
            try:
                success = server._trigger_event('connect', NAMESPACE, sid, environ, None)
            except TypeError:  # a handler of the older signature
                success = server._trigger_event('connect', NAMESPACE, sid, environ)
        fail_reason = None
    except socketio_exceptions.ConnectionRefusedError as exc:
        fail_reason, success = exc.error_args, False
    except ConnectionRefusedError:
        fail_reason, success = {'message': 'Connection refused by server'}, False
    if success is False:
        server._send_packet(eio_sid, server.packet_class(
            socketio_packet.CONNECT_ERROR, data=fail_reason, namespace=NAMESPACE))
        server.manager.disconnect(sid, NAMESPACE, ignore_queue=True)
    else:
        send_connect(sid)
        server.manager.connect(sid, NAMESPACE)
    return True


def announced_attachments(server: Any, eio_sid: str) -> Optional[Any]:
    """The binary attachments received so far of the event a client announced, or None."""
    pending = server._binary_packet.get(eio_sid)
    return None if pending is None else pending.attachments


def drop_announced_attachments(server: Any, eio_sid: str) -> None:
    server._binary_packet.pop(eio_sid, None)


def engineio_path(io: Any) -> Optional[str]:
    """The path Flask-SocketIO's middleware answers (``socket.io``), or None."""
    path = getattr(getattr(io, 'sockio_mw', None), 'engineio_path', None)
    return path if isinstance(path, str) else None


# -- python-socketio manager --------------------------------------------------------------------
class IndexedRooms:
    """A python-socketio manager mix-in that knows each client's rooms.

    python-socketio finds the rooms of a client that leaves by testing every room of the
    namespace, and every client has a room of its own: one disconnect costs O(clients), so 2,000
    clients leaving at once cost millions of lookups (a third of the server's time in a reconnect
    storm, profiled with py-spy). Rooms are entered and left through ``basic_enter_room`` and
    ``basic_leave_room`` only (connect, ``join_room``, ``close_room`` included), so an index
    kept there is complete; ``basic_disconnect`` then does the rest of python-socketio's own
    bookkeeping (5.x) for just those rooms.
    """

    _feathers_rooms: Dict[Tuple[str, str], Set[Any]]
    rooms: Dict[str, Any]
    callbacks: Dict[str, Any]
    pending_connect: Dict[str, Any]
    pending_disconnect: Dict[str, Any]

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._feathers_rooms.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        rooms = self._feathers_rooms.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        rooms = self._feathers_rooms.pop((namespace, sid), None)
        if rooms is None or namespace not in self.rooms:
            super().basic_disconnect(sid, namespace, **kwargs)  # type: ignore[misc]
            return
        for room in rooms:
            super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]


def index_rooms(manager: Any) -> None:
    """Give ``manager`` (python-socketio's, any kind) the :class:`IndexedRooms` bookkeeping."""
    if isinstance(manager, IndexedRooms):
        return
    index: Dict[Tuple[str, str], Set[Any]] = {}
    for namespace, rooms in getattr(manager, 'rooms', {}).items():
        for room, members in rooms.items():
            for sid in members:
                index.setdefault((namespace, sid), set()).add(room)
    manager._feathers_rooms = index
    manager.__class__ = type(f'Indexed{type(manager).__name__}', (IndexedRooms, type(manager)),
                             {})
