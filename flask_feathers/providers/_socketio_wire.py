"""What the Socket.IO provider writes to clients and guards in what they send, beside
python-socketio's own handling: :class:`Delivery` (service events to connections: one frame per
broadcast, nothing before a client's CONNECT, a bound for clients that stopped reading) and
:func:`guard_messages` (an answer for every malformed call). Wire facts: docs/protocol.rst."""
from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from socketio import packet as socketio_packet

from .. import errors
from ..connections import Connection, ConnectionRegistry
from ..transport import Message
from . import _eio_websocket, _socketio_compat
from ._socketio_compat import NAMESPACE as NAMESPACE  # the providers' name for it

log = logging.getLogger(__name__)

PROVIDER = 'socketio'


class Delivery:
    """Service events to Socket.IO connections, for the dispatcher (``broadcast``, ``write``)
    and for each connection's own ``send``.

    The sid exists while its connect handler runs, before the client got CONNECT: nothing may be
    sent to it until then. python-socketio marks it connected only after sending CONNECT, and a
    direct write delivers CONNECT at once, so a client could act on it (a create whose event it
    should get) before the server thinks it connected. A connection is ready once its CONNECT
    went out; a delivery that races with that waits for it.
    """

    def __init__(self, io: Any, connections: ConnectionRegistry, max_queue: int) -> None:
        self.server = io.server
        self.connections = connections
        self.max_queue = max_queue
        self.ready_lock = threading.Lock()
        # (Flask-SocketIO's test client replaces _send_packet with its own; is_connected serves.)
        _socketio_compat.wrap_send_packet(self.server, self._marking_ready)

    def _marking_ready(self, send_packet: Callable[[str, Any], None]
                       ) -> Callable[[str, Any], None]:
        connections = self.connections

        def send_marking_ready(eio_sid: str, pkt: Any) -> None:
            conn = None
            if pkt.packet_type == socketio_packet.CONNECT and isinstance(pkt.data, dict):
                conn = connections.get(pkt.data.get('sid', ''))
            if conn is None:
                send_packet(eio_sid, pkt)
            else:
                self._send_connect(conn, functools.partial(send_packet, eio_sid, pkt))
        return send_marking_ready

    def _send_connect(self, conn: Optional[Connection], send: Callable[[], Any]) -> None:
        """Write a client's accepting CONNECT, and mark its connection ready in the same step
        (see the class doc)."""
        with self.ready_lock:
            send()
            if conn is not None:
                conn.extra['ready'] = True

    def answer_connect(self, eio_socket: Any, ws: Any, text: str) -> bool:
        """A handed-over websocket's text frame: a CONNECT to the default namespace (``40`` or
        ``40{auth}``) is handled here, the way python-socketio would, and the accepting CONNECT
        written straight to the websocket; anything else (False) goes to python-socketio.
        Profiled in a reconnect storm: python-socketio's packet classes and engine.io's queue
        were a third of a Socket.IO connect's CPU."""
        if not text.startswith('40') or self.server.packet_class is not socketio_packet.Packet:
            return False
        rest = text[2:]
        auth = None
        if rest:
            if rest[0] != '{':  # another namespace ('40/admin,'): python-socketio's
                return False
            try:
                auth = socketio_packet.Packet.json.loads(rest)
            except (ValueError, RecursionError):
                return False  # python-socketio's answer to a broken packet
            if not isinstance(auth, dict):
                return False

        def send_connect(sid: str) -> None:
            frame = '40' + socketio_packet.Packet.json.dumps({'sid': sid}, separators=(',', ':'))
            self._send_connect(self.connections.get(sid), functools.partial(ws.send, frame))
        return _socketio_compat.connect_default_namespace(self.server, eio_socket.sid, auth,
                                                          send_connect)

    def is_ready(self, conn: Connection) -> bool:
        if conn.extra.get('ready'):
            return True
        with self.ready_lock:
            if conn.extra.get('ready'):
                return True
        if self.server.manager.is_connected(conn.id, NAMESPACE):
            conn.extra['ready'] = True
            return True
        return False

    def keeps_up(self, conn: Connection) -> bool:
        if 'eio_socket' not in conn.extra:
            eio_sid = self.server.manager.eio_sid_from_sid(conn.id, NAMESPACE)
            conn.extra['eio_socket'] = self.server.eio.sockets.get(eio_sid)
        eio_socket = conn.extra['eio_socket']
        # No engine.io socket: Flask-SocketIO's test client, which has no queue to bound.
        if eio_socket is None:
            return True
        ws = _eio_websocket.hub_websocket(eio_socket)
        if ws is not None:  # the connection layer bounds its backlog and drops by itself
            return ws.open
        # engine.io's own queue (long-polling, upgraded websockets) has no bound: a client that
        # stopped reading would grow it until the ping time-out. Past max_queue it is dropped.
        if eio_socket.queue.qsize() < self.max_queue:
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

    def send(self, sid: str, event: str, data: Any) -> None:
        """One event to one connection (a filter changed the data, or it waited behind a slow
        filter): straight to the websocket, without python-socketio's emit machinery."""
        conn = self.connections.get(sid)
        if conn is not None and self.is_ready(conn) and self.keeps_up(conn):
            eio_socket = conn.extra['eio_socket']
            if eio_socket is None or _eio_websocket.send_to_many(
                    self.server, NAMESPACE, event, data, [(sid, eio_socket)]):
                self.server.emit(event, data, to=sid, namespace=NAMESPACE, ignore_queue=True)

    def broadcast(self, event: str, data: Any, conns: Sequence[Connection]) -> None:
        ready = [c for c in conns if self.is_ready(c) and self.keeps_up(c)]
        if not ready:
            return
        # One websocket frame for every handed-over client; the others through engine.io.
        sids = _eio_websocket.send_to_many(
            self.server, NAMESPACE, event, data,
            [(c.id, c.extra['eio_socket']) for c in ready if c.extra['eio_socket'] is not None])
        sids += [c.id for c in ready if c.extra['eio_socket'] is None]
        if sids:
            self.server.emit(event, data, to=sids, namespace=NAMESPACE, ignore_queue=True)

    def write(self, conn: Connection,
              items: List[Tuple[str, Any, Optional[Dict[str, Any]]]]) -> None:
        """What a filter worker delivers to one client at once: one write on its websocket."""
        if not (self.is_ready(conn) and self.keeps_up(conn)):
            return
        eio_socket = conn.extra['eio_socket']
        ws = _eio_websocket.hub_websocket(eio_socket) if eio_socket is not None else None
        if ws is None:
            for name, data, _ in items:
                self.send(conn.id, name, data)
            return
        messages: List[Message] = []
        for name, data, shared in items:
            message = shared.get(PROVIDER) if shared is not None else None
            if message is None:
                message = _eio_websocket.event_message(self.server, NAMESPACE, name, data)
                if message is None:  # binary parts: engine.io's own way, in order
                    if messages:
                        ws.send_messages(messages)
                        messages = []
                    self.send(conn.id, name, data)
                    continue
                if shared is not None:
                    shared[PROVIDER] = message
            messages.append(message)
        if messages:
            ws.send_messages(messages)


_EVENT_HEADER = re.compile(r'(?:2|5\d{1,10}-)(?:(/[^,\[{"]*),)?(\d{1,16})')


def guard_messages(io: Any) -> None:
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
    limit = eio.max_http_buffer_size

    def wrap(original: Optional[Callable[..., Any]]) -> Callable[..., Any]:
        assert original is not None  # python-socketio's own message handler

        def on_message(eio_sid: str, data: Any) -> Any:
            if isinstance(data, (bytes, bytearray)):
                pending = _socketio_compat.announced_attachments(server, eio_sid)
                if pending is not None and sum(map(len, pending)) + len(data) > limit:
                    _socketio_compat.drop_announced_attachments(server, eio_sid)
                    log.warning('Socket.IO client %s sent more than %d bytes of binary '
                                'attachments; disconnected', eio_sid, limit)
                    eio.disconnect(eio_sid)
                    return None
                return original(eio_sid, data)
            try:
                return original(eio_sid, data)
            except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
                return _answer_malformed(server, eio_sid, data, exc)
        return on_message
    _socketio_compat.wrap_handler(eio, 'message', wrap)


def _answer_malformed(server: Any, eio_sid: str, data: Any, exc: Exception) -> None:
    match = _EVENT_HEADER.match(data) if isinstance(data, str) else None
    if match is None:
        log.info('Socket.IO client %s sent an unusable packet: %s', eio_sid, str(exc)[:100])
        return
    namespace = match.group(1) or NAMESPACE
    sid = server.manager.sid_from_eio_sid(eio_sid, namespace)
    if sid is None or not server.manager.is_connected(sid, namespace):
        return
    error = errors.BadRequest('Malformed Socket.IO packet: the event must be a JSON array '
                              'starting with the event name')
    _socketio_compat.send_packet(server, eio_sid, server.packet_class(
        socketio_packet.ACK, namespace=namespace, id=int(match.group(2)),
        data=[error.to_dict()]))
