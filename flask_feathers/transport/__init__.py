"""The one connection layer both socket transports use (Socket.IO and Primus).

* :mod:`.handover`: the WSGI request thread does the WebSocket handshake and hands the socket
  over; it never serves the connection.
* :mod:`.hub`: one I/O thread per process reads every socket, writes the backlogs, and runs every
  connection's timers (heartbeats, time-outs, close deadlines).
* :mod:`.websocket`: one connection: framing, direct non-blocking writes, the bounded backlog
  and the slow-reader drop, the heartbeat, closing, and the serial lane that hands its messages
  to application code in order.
* :mod:`.workers`: the elastic pool of threads where application code runs (and, under
  ``api.run``, every HTTP request: :mod:`.serving`); waits inside it are marked with
  :func:`blocking`.
* :mod:`.admission`: the connect rate and refusals, shared by both transports.

Thin adapters put the protocols on top: ``providers/_eio_websocket.py`` (engine.io, under
Flask-SocketIO) and ``providers/primus.py``.
"""
from typing import Any, Dict, Optional, Tuple

from .._waits import blocking
from .handover import (Done, can_hand_over, done, finish, handed_over, handshake,
                       hand_over_upgrade, server_socket, shutdown_socket, slim_environ, take_over,
                       websocket_environ)
from .hub import Hub, get_hub
from .frames import Message
from .websocket import WebSocket
from .workers import PooledTask, Workers

__all__ = ['Done', 'Hub', 'Message', 'PooledTask', 'WebSocket', 'Workers', 'blocking',
           'can_hand_over', 'done', 'finish', 'get_hub', 'hand_over_upgrade', 'handed_over',
           'handshake', 'shutdown_socket', 'slim_environ', 'take_over', 'websocket_environ',
           'accept']


def accept(environ: Dict[str, Any], handler: Any, *, max_message_size: Optional[int],
           max_backlog: int, owner: Any = None, compression: bool = False,
           first: Optional[str] = None) -> Optional[Tuple[WebSocket, str]]:
    """Handshake and hand over the WebSocket of ``environ``: ``(ws, mode)``, with ``ws`` not
    started yet (the caller sets up its adapter, then calls ``ws.start()``), or None when this
    server's sockets cannot be handed over. Raises when the handshake fails. ``first``: a text
    message sent right after the upgrade answer (with it, in one write, when nothing was
    negotiated)."""
    if not can_hand_over(environ):
        return None
    raw = server_socket(environ)
    proto, mode, sent_first = handshake(websocket_environ(environ, compression), first)
    sock = take_over(raw, environ)
    slim_environ(environ)
    ws = WebSocket(sock, proto, handler, get_hub(), max_message_size=max_message_size,
                   max_backlog=max_backlog, owner=owner)
    if first is not None and not sent_first:
        ws.send(first)
    return ws, mode
