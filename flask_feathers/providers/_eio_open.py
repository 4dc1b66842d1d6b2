"""engine.io's handshake for a client that opens as a websocket, answered on the connection layer.

Feathers clients and ``transports: ['websocket']`` open with ``GET /socket.io/?EIO=4&transport=
websocket`` and an upgrade. Through Flask-SocketIO that request crosses two WSGI middlewares
(one copies the environ), engine.io's request parsing and its socket queue before the websocket is
handed over (:meth:`._eio_websocket.HubSocket.hand_over`); profiled in a reconnect storm, that
was a third of a Socket.IO connect's CPU. :func:`websocket_opens` answers such a request itself:
engine.io's own handshake steps (:func:`._socketio_compat.open_websocket_session`: session id,
socket, connect handlers, heartbeat), then the upgrade answer with the OPEN packet in the same
write. Everything else (long-polling, upgrades from it, other engine.io versions, a refused
origin, TLS) takes the usual way. Wire facts: docs/protocol.rst, "Socket.IO connect over a
websocket".
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .. import transport
from . import _socketio_compat

WSGIApp = Callable[..., Any]


def websocket_opens(io: Any, app: Any, socket_class: type, wsgi_app: WSGIApp) -> WSGIApp:
    """Wrap ``wsgi_app`` (the app's WSGI callable, Flask-SocketIO's middleware inside it) so a
    client opening as a websocket at Flask-SocketIO's path is answered here."""
    eio = io.server.eio
    path = _socketio_compat.engineio_path(io)
    if not path:
        return wsgi_app
    path = '/' + path.strip('/') + '/'

    def socketio_websocket_opens(environ: Dict[str, Any], start_response: Callable[..., Any]
                                 ) -> Any:
        if not transport.hand_over_upgrade(environ, path) or \
                not _opens_websocket(environ.get('QUERY_STRING', '')):
            return wsgi_app(environ, start_response)
        environ['flask.app'] = app  # what Flask-SocketIO's middleware adds for its handlers
        opened = _socketio_compat.open_websocket_session(eio, socket_class, environ)
        if opened is None:
            return wsgi_app(environ, start_response)
        sock, opening = opened
        if sock is None:  # refused by a connect handler: engine.io's answer
            return _answer(opening, start_response)
        answer = sock.hand_over(environ, start_response, first=opening.encode())
        if sock.closed and eio.sockets.get(sock.sid) is sock:
            del eio.sockets[sock.sid]
        return _answer(answer, start_response) if isinstance(answer, dict) else answer
    socketio_websocket_opens.__wrapped__ = wsgi_app  # type: ignore[attr-defined]
    return socketio_websocket_opens


def _opens_websocket(query: str) -> bool:
    """Whether the query string is that of a new engine.io 4 session over websocket (``EIO=4``,
    ``transport=websocket``, no ``sid``, no JSONP index); one with escapes is left to engine.io's
    own parsing."""
    if '%' in query or '+' in query:
        return False
    seen: Dict[str, Optional[str]] = {}
    for part in query.split('&'):
        name, _, value = part.partition('=')
        if name in ('sid', 'j'):
            return False
        if name in ('EIO', 'transport'):
            if name in seen:
                return False
            seen[name] = value
    return seen.get('EIO') == '4' and seen.get('transport') == 'websocket'


def _answer(response: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response(response['status'], response['headers'])
    return [response['response']]
