"""Taking a WebSocket over from the WSGI server that accepted it.

Werkzeug (``flask run``, ``api.run``) and gunicorn give each HTTP request a thread, and a WSGI
app that serves a WebSocket usually keeps that thread for the connection's whole life. Here the
request thread only does the handshake, then hands the socket to the hub and
returns at once:

* ``dup`` gives the connection a file descriptor of our own;
* the server's descriptor number is then pointed (``dup2``) at a dead socket, so what the server
  still does with it (read the next request: end of file; shut it down; close it) touches neither
  the client nor our descriptor;
* the view ends the way each server drops a request quietly: Werkzeug on ``ConnectionError``,
  gunicorn on ``StopIteration``.

Only plain TCP sockets in blocking mode are handed over; anything else (TLS sockets from
Werkzeug's ``ssl_context``, eventlet, gevent) gets ``None`` from :func:`accept` and the caller
serves it the old way.
"""
from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import socket
from typing import Any, Dict, Optional, Tuple

from werkzeug.wrappers import Response
from wsproto.connection import Connection, ConnectionType
from wsproto.utilities import generate_accept_token

from .frames import encode_frame

log = logging.getLogger(__name__)


class _NoThread:
    """simple-websocket starts a reader thread per connection; the hub reads instead."""

    name = 'flask-feathers-no-thread'

    def __init__(self, target: Any = None, **kwargs: Any) -> None:
        pass

    def start(self) -> None:
        pass


def server_socket(environ: Dict[str, Any]) -> Any:
    """The client's socket as the WSGI server exposes it, or None."""
    return environ.get('werkzeug.socket') or environ.get('gunicorn.socket')


def can_hand_over(environ: Dict[str, Any]) -> bool:
    sock = server_socket(environ)
    return type(sock) is socket.socket and sock.gettimeout() is None


def hand_over_upgrade(environ: Dict[str, Any], path: str) -> bool:
    """Whether ``environ`` is a WebSocket upgrade (a GET) at exactly ``path`` on a socket that can
    be handed over: what a provider answers before the app's own dispatch."""
    return environ.get('PATH_INFO') == path and \
        environ.get('HTTP_UPGRADE', '').lower() == 'websocket' and \
        environ.get('REQUEST_METHOD') == 'GET' and can_hand_over(environ)


def websocket_environ(environ: Dict[str, Any], compression: bool = False) -> Dict[str, Any]:
    """Prepare a WebSocket upgrade, the same way on both transports.

    Sets TCP_NODELAY on the request's socket (with Nagle on, an ack followed by an event stalls
    about 40 ms and a fan-out to 100 clients runs 20 times slower) and, unless ``compression``,
    returns a copy of ``environ`` without the client's permessage-deflate offer: simple-websocket
    accepts it whenever offered, which halves throughput and doubles memory. The Node socket.io
    and primus servers decline it by default too.
    """
    sock = server_socket(environ)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
    if not compression and 'HTTP_SEC_WEBSOCKET_EXTENSIONS' in environ:
        environ = {k: v for k, v in environ.items() if k != 'HTTP_SEC_WEBSOCKET_EXTENSIONS'}
    return environ


def handshake(environ: Dict[str, Any], first: Optional[str] = None) -> Tuple[Any, Any, bool]:
    """Answer the upgrade (101) on the request's socket; returns ``(wsproto connection, mode,
    first sent)`` where mode is ``'werkzeug'`` or ``'gunicorn'``, and ``first``, a text message,
    went out in the same write as the answer when no extension was negotiated. Raises
    ``ValueError`` when the request is not a valid WebSocket upgrade (RFC 6455 section 4.2.1).

    Without an extension to negotiate (``websocket_environ`` drops the permessage-deflate offer
    unless compression is on) the answer is written here and wsproto's connection is made open;
    simple-websocket would parse the headers once more through h11 and set up the locks and
    events of a threaded connection, a seventh of the CPU of a reconnect storm (py-spy)."""
    if environ.get('HTTP_SEC_WEBSOCKET_EXTENSIONS'):
        from simple_websocket import Server
        ws = Server(environ, thread_class=_NoThread)
        return ws.ws.connection, ws.mode, False
    mode = 'werkzeug' if environ.get('werkzeug.socket') is not None else 'gunicorn'
    sock = server_socket(environ)
    if sock is None:
        raise ValueError('no socket in the WSGI environ')
    key = environ.get('HTTP_SEC_WEBSOCKET_KEY', '')
    if environ.get('REQUEST_METHOD') != 'GET':
        raise ValueError('a WebSocket upgrade must be a GET')
    if 'websocket' not in environ.get('HTTP_UPGRADE', '').lower():
        raise ValueError('missing "Upgrade: websocket"')
    if 'upgrade' not in environ.get('HTTP_CONNECTION', '').lower():
        raise ValueError('missing "Connection: Upgrade"')
    if environ.get('HTTP_SEC_WEBSOCKET_VERSION', '').strip() != '13':
        raise ValueError('unsupported Sec-WebSocket-Version (13 expected)')
    try:
        valid_key = len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise ValueError('missing or invalid Sec-WebSocket-Key')
    accept = generate_accept_token(key.strip().encode('ascii')).decode('ascii')
    sock.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                 b'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + accept.encode('ascii') +
                 b'\r\n\r\n' + (encode_frame(first) if first is not None else b''))
    return Connection(ConnectionType.SERVER), mode, first is not None


#: environ key: a :class:`SocketClaim` when the server that made the environ lets the hand-over
#: keep the request's very socket (``api.run``'s :func:`..serving.serve_upgrade`).
OWN_SOCKET = 'flask_feathers.own_socket'


class SocketClaim:
    """The request's socket, and whether the connection layer took it (then the server leaves it
    open). An object, not an environ flag: middleware such as Flask-SocketIO's copies the
    environ."""

    __slots__ = ('sock', 'taken')

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.taken = False


def handed_over(environ: Dict[str, Any]) -> bool:
    """Whether the connection layer took the request's very socket (:class:`SocketClaim`): the
    server's socket in this environ is then a live connection, not the server's to touch."""
    claim = environ.get(OWN_SOCKET)
    return isinstance(claim, SocketClaim) and claim.taken


def take_over(raw: socket.socket, environ: Optional[Dict[str, Any]] = None) -> socket.socket:
    """A non-blocking socket of our own on ``raw``'s connection; ``raw`` is left on a dead
    socket for the WSGI server to finish with (see the module doc), unless the server lets us
    have ``raw`` itself (:data:`OWN_SOCKET`)."""
    claim = environ.get(OWN_SOCKET) if environ is not None else None
    if isinstance(claim, SocketClaim) and claim.sock is raw and not claim.taken:
        claim.taken = True
        raw.setblocking(False)
        return raw
    ours = raw.dup()
    dead, peer = socket.socketpair()
    peer.close()
    try:
        os.dup2(dead.fileno(), raw.fileno())
    finally:
        dead.close()
    ours.setblocking(False)
    return ours


def slim_environ(environ: Dict[str, Any]) -> None:
    """Drop what a long-lived connection's environ need not keep (the request's input buffer,
    the server's socket): Socket.IO keeps the environ of every client for its whole life."""
    if 'wsgi.input' in environ:
        environ['wsgi.input'] = io.BytesIO()
    for key in ('werkzeug.socket', 'gunicorn.socket', OWN_SOCKET):
        if key in environ:
            environ[key] = None


class Done(Response):
    """What a view answers once its WebSocket was handed over (or ended): no HTTP response may
    be written; Werkzeug drops a request quietly on ConnectionError, gunicorn on StopIteration
    (what python-engineio does too)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return finish(self.mode)


def finish(mode: str) -> Any:
    """End the WSGI request whose WebSocket was handed over, the way its server drops a request
    quietly (what :class:`Done` does, without making a response object first: outside Flask's
    view functions nothing needs one)."""
    if mode == 'werkzeug':
        raise ConnectionError()
    if mode == 'gunicorn':
        raise StopIteration()
    return []


_done_classes: Dict[type, 'type[Done]'] = {}


def done(mode: str, response_class: type = Response) -> Done:
    """A :class:`Done` that is also an instance of the app's ``response_class``: Flask turns any
    other Response into its own class, which would lose ``Done.__call__`` and so write an HTTP
    response (and a log line) after the WebSocket left."""
    cls = _done_classes.get(response_class)
    if cls is None:
        cls = response_class if issubclass(response_class, Done) else \
            type('Done', (Done, response_class), {})
        _done_classes[response_class] = cls
    return cls(mode)


def shutdown_socket(sock: Any) -> None:
    """Shut a client's TCP socket down (both ways), ignoring one already gone: ends the request
    loop of a server that still holds a websocket that engine.io served itself."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass
