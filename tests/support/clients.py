"""Socket.IO and Primus spoken over the raw client (:class:`support.ws.RawWS`), a packet at a
time, for tests that send what a library client would not; :func:`in_order` for python-socketio's
client."""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Optional

from .ws import SIO_PATH, Closed, RawWS

#: What a raw client signs in with on the fuzz and security servers.
TOKEN = 'good-token'

#: What ``_read`` gives for a frame that is no packet (a ping it answered, an engine.io packet).
_NO_PACKET = object()


class _Packets:
    """Packets kept aside by ``next(predicate)`` until a later call asks for them."""

    def __init__(self) -> None:
        self.pending: List[Any] = []

    def _read(self, left: float) -> Any:
        raise NotImplementedError

    def next(self, predicate: Callable[[Any], bool], timeout: float, what: str) -> Any:
        for i, packet in enumerate(self.pending):
            if predicate(packet):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f'no matching {what} within {timeout:g} s; '
                                     f'kept: {self.pending[:5]}')
            packet = self._read(left)
            if packet is _NO_PACKET:
                continue
            if predicate(packet):
                return packet
            self.pending.append(packet)


class RawSocketIO(_Packets):
    """Engine.IO 4 / Socket.IO 5 text packets over :class:`RawWS` (answers engine.io pings)."""

    def __init__(self, port: int, auth: Any = None, connect: bool = True,
                 headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__()
        self.ws = RawWS(port, SIO_PATH, headers)
        self.connect_answer: Optional[str] = None
        if not self.ws.accepted:
            return
        opened = self.ws.recv_text()
        assert opened.startswith('0{'), opened
        if connect:
            self.ws.send_text('40' + (json.dumps(auth) if auth is not None else ''))
            self.connect_answer = self.next_packet(lambda p: p.startswith(('0', '4')))

    @property
    def connected(self) -> bool:
        return bool(self.connect_answer and self.connect_answer.startswith('0'))

    def send(self, packet: str) -> None:
        self.ws.send_text('4' + packet)

    def _read(self, left: float) -> Any:
        text = self.ws.recv(left)[1].decode('utf-8')
        if text == '2':
            self.ws.send_text('3')
            return _NO_PACKET
        return text[1:] if text.startswith('4') else _NO_PACKET

    def next_packet(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
        """The next socket.io packet (engine.io ``4`` stripped) matching ``predicate``; others
        are kept for later calls."""
        return self.next(predicate, timeout, 'Socket.IO packet')

    def ack(self, ack_id: int, timeout: float = 10.0) -> list:
        prefix = f'3{ack_id}['
        p = self.next_packet(lambda p: p.startswith(prefix), timeout)
        return json.loads(p[len(prefix) - 1:])

    def close(self) -> None:
        self.ws.close()


class RawPrimus(_Packets):
    """Primus frames over :class:`RawWS` (answers Primus pings)."""

    def __init__(self, port: int, token: Optional[str] = TOKEN,
                 headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__()
        query = f'?token={token}' if token is not None else ''
        self.ws = RawWS(port, f'/primus{query}', headers)

    def send(self, value: Any) -> None:
        self.ws.send_text(json.dumps(value))

    def _read(self, left: float) -> Any:
        frame = json.loads(self.ws.recv(left)[1])
        if isinstance(frame, str) and frame.startswith('primus::ping::'):
            self.send('primus::pong::' + frame[len('primus::ping::'):])
            return _NO_PACKET
        return frame

    def next_frame(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:
        return self.next(predicate, timeout, 'Primus frame')

    def ack(self, ack_id: int, timeout: float = 10.0) -> list:
        frame = self.next_frame(lambda f: isinstance(f, dict) and f.get('type') == 1
                                and f.get('id') == ack_id, timeout)
        return frame['data']

    def close(self) -> None:
        self.ws.close()


class PrimusClient:
    """A Primus (websockets + emitter) client with a reader thread over :class:`RawWS`: events
    queue up for :meth:`next_event`, acks for :meth:`call`; Primus pings are answered. A frame
    the server sends with its 101 answer is not lost (the handshake is read byte by byte)."""

    def __init__(self, url: str, path: str = '/primus', headers: Optional[Dict[str, str]] = None,
                 timeout: float = 10.0) -> None:
        import queue
        import threading
        from urllib.parse import urlsplit
        port = urlsplit(url).port
        assert port is not None, url
        self.ws = RawWS(port, path, headers)
        assert self.ws.accepted, f'the upgrade was refused: {self.ws.status} {self.ws.body!r}'
        self.ws.sock.settimeout(None)
        self.timeout = timeout
        self.events: 'queue.Queue[tuple]' = queue.Queue()
        self.acks: Dict[int, 'queue.Queue[list]'] = {}
        self.next_ack = 1
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        from flask_feathers.providers import _primus_protocol as proto
        while True:
            try:
                _, payload = self.ws.recv(timeout=None)
            except (Closed, OSError):
                return
            decoded = proto.decode(payload.decode('utf-8'))
            if isinstance(decoded, proto.Ping):
                self.ws.send_text(proto.encode_pong(decoded.value))
            elif isinstance(decoded, proto.Event):
                self.events.put((decoded.name, list(decoded.args)))
            elif isinstance(decoded, proto.Ack):
                self.acks[decoded.ack_id].put(list(decoded.args))

    def call(self, event: str, *args: Any) -> list:
        """Emit ``event`` with an ack; the ack's arguments."""
        import queue
        from flask_feathers.providers import _primus_protocol as proto
        ack_id, self.next_ack = self.next_ack, self.next_ack + 1
        self.acks[ack_id] = queue.Queue()
        self.ws.send_text(proto.encode_event(event, list(args), ack_id))
        try:
            return self.acks[ack_id].get(timeout=self.timeout)
        except queue.Empty:
            raise AssertionError(f'no ack for {event} within {self.timeout} s') from None

    def send(self, event: str, *args: Any) -> None:
        from flask_feathers.providers import _primus_protocol as proto
        self.ws.send_text(proto.encode_event(event, list(args)))

    def next_event(self, timeout: Optional[float] = None) -> tuple:
        import queue
        timeout = self.timeout if timeout is None else timeout
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f'no event within {timeout} s') from None

    def pending(self) -> list:
        """The events received so far and not taken yet."""
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    def close(self) -> None:
        import socket
        try:
            self.ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ws.close()
        self.thread.join(5)


def in_order(client: Any) -> Any:
    """Make a python-socketio ``Client`` run its event handlers in the order the server sent the
    events: python-engineio's client starts a new thread per received message, so under load a
    test could see a server's in-order events out of order."""
    eio = client.eio
    trigger = eio._trigger_event

    def trigger_in_order(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == 'message':
            kwargs['run_async'] = False
        return trigger(event, *args, **kwargs)
    eio._trigger_event = trigger_in_order
    return client
