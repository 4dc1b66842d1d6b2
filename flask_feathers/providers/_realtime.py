"""What both socket providers share: parse a call in either dialect, build params, run it, shape
the ack (PROTOCOL.md sections 2-4).

Legacy dialect: event ``'todos::create'``, arguments ``data, query``.
Modern dialect: event ``'create'``, arguments ``'todos', data, query``.
"""
from __future__ import annotations

import logging
import socket as _socket
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, TextMessage
from wsproto.frame_protocol import FrameProtocol

from .. import errors
from ..connections import Connection
from ..encoding import jsonable
from ..registry import Application
from ..service import ARGUMENTS, METHODS, PARAMS_POSITION

log = logging.getLogger(__name__)

_CAN_SEND_NOW = hasattr(_socket, 'MSG_DONTWAIT')

#: Separator of the legacy dialect's event names.
LEGACY_SEPARATOR = '::'

#: Types a service id may have on the wire.
ID_TYPES = (str, int, float)


class Call(NamedTuple):
    path: str
    method: str
    args: tuple
    query: Dict[str, Any]


def is_call(event: Any, args: Sequence[Any]) -> bool:
    """Whether ``event`` names a service call in either dialect (vs. a custom event)."""
    if not isinstance(event, str):
        return False
    return LEGACY_SEPARATOR in event or event in METHODS


def parse_call(event: str, args: Sequence[Any]) -> Call:
    """Turn an event and its arguments (ack excluded) into a :class:`Call`.

    :raises errors.FeathersError: BadRequest, NotFound or MethodNotAllowed for a malformed call.
    """
    if LEGACY_SEPARATOR in event:
        path, _, method = event.rpartition(LEGACY_SEPARATOR)
    else:
        if not args or not isinstance(args[0], str):
            raise errors.BadRequest(f'`{event}` needs the service path as its first argument')
        path, method, args = args[0], event, args[1:]
    path = path.strip('/')
    if method not in METHODS:
        raise errors.MethodNotAllowed(f'Method `{method}` is not a service method')
    position = PARAMS_POSITION[method]
    if len(args) > position + 1:
        raise errors.BadRequest(f'Too many arguments for `{method}`: expected at most '
                                f'{position + 1}, got {len(args)}')
    names = ARGUMENTS[method]
    if len(args) < len(names):
        missing = names[len(args)]
        raise errors.BadRequest(f'`{method}` is missing its `{missing}` argument')
    positional = tuple(args[:position])
    for name, value in zip(names, positional):
        if name == 'id':
            _check_id(method, value)
        else:
            _check_data(method, value)
    query = args[position] if len(args) > position else None
    if query is None:
        query = {}
    elif not isinstance(query, dict):
        raise errors.BadRequest(f'The query of `{method}` must be an object, got '
                                f'{_type_name(query)}')
    return Call(path, method, positional, query)


def _check_id(method: str, value: Any) -> None:
    if value is None:
        if method in ('patch', 'remove'):
            return  # acts on every match of the query, if the service allows it
        raise errors.BadRequest(f'`{method}` needs an id, got null')
    if isinstance(value, bool) or not isinstance(value, ID_TYPES):
        raise errors.BadRequest(f'The id of `{method}` must be a string or a number, got '
                                f'{_type_name(value)}')


def _check_data(method: str, value: Any) -> None:
    if isinstance(value, dict):
        return
    if method == 'create' and isinstance(value, list):
        return
    raise errors.BadRequest(f'The data of `{method}` must be an object, got {_type_name(value)}')


def _type_name(value: Any) -> str:
    return {dict: 'an object', list: 'an array', str: 'a string', bool: 'a boolean',
            type(None): 'null'}.get(type(value), f'a {type(value).__name__}')


def build_params(query: Dict[str, Any], connection: Connection) -> Dict[str, Any]:
    """``{'query': query, **connection.params, 'connection': connection}``.

    The connection's own params win on a clash, so a client can never set ``user`` or
    ``provider``; ``params['connection']`` is the :class:`Connection` (Feathers 5's
    ``params.connection``), e.g. to move it between channels on sign-in.
    """
    params = {'query': query}
    params.update(connection.params)
    params['connection'] = connection
    return params


def run_call(application: Application, connection: Connection, event: str,
             args: Sequence[Any]) -> List[Any]:
    """Run one call from ``connection``; return the ack arguments.

    ``[None, result]`` on success, ``[error_dict]`` on failure. Never raises.
    """
    debug = application.debug
    try:
        call = parse_call(event, args)
        wrapped = application.lookup(call.path)
        if wrapped is None:
            raise errors.NotFound(f"Service '{call.path}' not found")
        result = wrapped.call(call.method, call.args,
                              build_params(call.query, connection))
        try:
            result = jsonable(result)
        except (TypeError, ValueError, RecursionError) as exc:
            log.error('result of %s.%s is not JSON serialisable: %s', call.path, call.method, exc)
            raise errors.GeneralError('The service returned a result that cannot be sent as '
                                      'JSON') from None
        return [None, result]
    except Exception as exc:
        return [errors.to_wire(exc, debug)]


def unknown_event_error(event: Any) -> List[Any]:
    """The ack for an event that is neither a service call nor handled by the app."""
    return [errors.NotFound(f'No handler for event {event!r}').to_dict()]


def connection_refusal(exc: BaseException) -> Optional[Dict[str, Any]]:
    """The wire dict for a refused connection when ``exc`` is a FeathersError, else None."""
    return exc.to_dict() if isinstance(exc, errors.FeathersError) else None


#: What a refused client is told when the hook failed with something other than a FeathersError.
REFUSED_MESSAGE = 'Connection refused by server'


def refusal_message(exc: BaseException, debug: bool) -> str:
    """The message a refused client may see: a FeathersError's own, anything else's only in
    debug (``'str' object has no attribute 'get'`` or a database error says too much)."""
    if isinstance(exc, errors.FeathersError) or debug:
        return str(exc) or REFUSED_MESSAGE
    return REFUSED_MESSAGE


def websocket_environ(environ: Dict[str, Any], compression: bool = False) -> Dict[str, Any]:
    """Prepare a WebSocket upgrade for simple-websocket, the same way on both transports.

    Sets TCP_NODELAY on the request's socket (with Nagle on, an ack followed by an event stalls
    about 40 ms and a fan-out to 100 clients runs 20 times slower) and, unless ``compression``,
    returns a copy of ``environ`` without the client's permessage-deflate offer: simple-websocket
    accepts it whenever offered, which halves throughput and doubles memory (PROTOCOL.md
    section 9). The Node socket.io and primus servers decline it by default too.
    """
    sock = environ.get('werkzeug.socket') or environ.get('gunicorn.socket')
    if sock is not None:
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
    if not compression and 'HTTP_SEC_WEBSOCKET_EXTENSIONS' in environ:
        environ = {k: v for k, v in environ.items() if k != 'HTTP_SEC_WEBSOCKET_EXTENSIONS'}
    return environ


class Rest(bytes):
    """The unwritten tail of a websocket frame that :func:`write_now` could only partly send: the
    connection's writer thread writes it, raw, before anything queued after it."""

    def encode(self) -> 'Rest':  # engine.io's writer calls ``ws.send(packet.encode())``
        return self


def can_write_now(ws: Any) -> bool:
    """Whether :func:`write_now` may be used on ``ws`` (a ``simple_websocket.Server``): a plain
    TCP socket in blocking mode (Werkzeug, gunicorn), on a system with ``MSG_DONTWAIT``. TLS
    sockets, sockets with a timeout and other platforms keep their writer thread for everything.
    """
    sock = getattr(ws, 'sock', None)
    return (_CAN_SEND_NOW and type(sock) is _socket.socket and sock.gettimeout() is None)


def frame_message(ws: Any, data: Any) -> bytes:
    """One websocket message as wire bytes. The caller makes sure nobody else frames a message on
    ``ws`` at the same time (framing, and compression when on, keep state in the connection)."""
    event = BytesMessage(data=data) if isinstance(data, bytes) else TextMessage(data=str(data))
    return ws.ws.send(event)


def prebuilt_frame(data: Any) -> Rest:
    """One websocket message (text for a ``str``, binary for ``bytes``) as the wire bytes a server
    sends on a connection without extensions: the same bytes for every such connection, so a
    broadcast frames its message once instead of once per client (server frames are not masked).
    Not for connections that negotiated permessage-deflate, whose frames depend on their state.
    """
    return Rest(FrameProtocol(client=False, extensions=[]).send_data(data, True))


def write_now(ws: Any, data: Any) -> Rest:
    """Frame ``data`` and write it to ``ws`` without blocking; the part the socket's buffer did not
    take is returned (empty when all went out) for the writer thread to write next.

    A direct write saves waking a writer thread per message, which is what a fan-out to hundreds
    of clients costs in threading mode. The caller holds what orders this connection's writes and
    calls it only while nothing else is queued or being written for it. Raises when the message
    cannot be framed (the connection is closing).
    """
    return send_now(ws, frame_message(ws, data))


def send_now(ws: Any, frame: bytes) -> Rest:
    """Write the wire bytes of a frame (from :func:`frame_message` or :func:`prebuilt_frame`) to
    ``ws`` without blocking, under the same rules as :func:`write_now`. Nothing is written once
    the websocket is closing (wsproto would not frame a message then either)."""
    if not frame or ws.ws.state is not ConnectionState.OPEN:
        return Rest()
    try:
        sent = ws.sock.send(frame, _socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        # Broken connection: the writer thread meets the same error on this frame and ends it.
        sent = 0
    return Rest(frame[sent:])


def send_all(ws: Any, frame: bytes) -> None:
    """Write the wire bytes of a frame to ``ws``, blocking until they are all written: how a
    connection's writer thread writes a :class:`Rest` it took off the queue. Nothing is written
    once the websocket is closing."""
    if ws.ws.state is ConnectionState.OPEN:
        ws.sock.sendall(frame)


def shutdown_socket(sock: Any) -> None:
    """Shut a client's TCP socket down (both ways), ignoring one already gone: wakes a writer
    stuck in a blocking send to a client that stopped reading, and a reader waiting for it."""
    try:
        sock.shutdown(_socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


def over_connect_rate(rate: Any, address: Optional[str]) -> Optional[errors.FeathersError]:
    """TooManyRequests when ``address`` is over ``FEATHERS_CONNECT_RATE`` (``rate`` is the
    state's :class:`~flask_feathers.connections.ConnectRate` or None), else None."""
    if rate is None or rate.admit(address):
        return None
    log.info('connection from %s refused: over FEATHERS_CONNECT_RATE', address)
    return errors.TooManyRequests('Too many connections from this address; try again later')
