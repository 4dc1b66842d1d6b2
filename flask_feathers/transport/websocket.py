"""One WebSocket connection on the hub: reading, writing, heartbeats and closing, for both
socket transports (the protocol notes: docs/protocols.rst, "Connection layer").

Reading happens on the hub thread (:meth:`WebSocket.on_readable`): bytes go through wsproto,
finished messages (bounded by ``max_message_size`` while they arrive) go to the adapter's
``handler.on_message(ws, message)``, still on the hub thread, which must not block: an adapter
hands real work to :meth:`WebSocket.serial` (in order, on a pooled worker) or to the pool.

Writing happens in the sending thread: a frame is written with a non-blocking ``send`` while
nothing waits before it; what the socket buffer does not take waits in the backlog, which the hub
writes when the socket becomes writable. A client whose backlog reaches ``max_backlog`` frames
stopped reading and is dropped, so a slow reader never blocks a sender nor grows memory.

Closing: :meth:`close` sends a close frame after the backlog, half-closes the socket once it went
out and releases everything when the client hangs up (or ``CLOSE_TIMEOUT`` later); :meth:`abort`
releases at once. Either way the hub forgets the socket, closes it, then runs
``handler.on_close(ws)`` on the connection's serial lane (after every message it already
accepted), and sets :attr:`finished`.

Concurrency: ``lock`` guards the wsproto state's sending side, ``state``, the backlog and the
serial lane. The hub thread alone reads, parses and watches the socket. Never call into the
adapter while holding ``lock``.
"""
from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple, Union

from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message as WsMessage, Ping, TextMessage, BytesMessage
from wsproto.frame_protocol import CloseReason, FrameProtocol
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .hub import Hub, Timer

log = logging.getLogger(__name__)

OPEN, CLOSING, CLOSED = 'open', 'closing', 'closed'
#: Bytes of received messages waiting for application code past which reading pauses.
PAUSE_AT = 1024 * 1024
#: Seconds a closing connection waits for the client to answer its close frame.
CLOSE_TIMEOUT = 1.0


class Message:
    """A message framed once for every connection without extensions (server frames are not
    masked, so those connections all get the same bytes)."""

    __slots__ = ('data', '_wire')

    def __init__(self, data: Union[str, bytes]) -> None:
        self.data = data
        self._wire: Optional[bytes] = None

    @property
    def wire(self) -> bytes:
        wire = self._wire
        if wire is None:
            wire = self._wire = FrameProtocol(client=False, extensions=[]).send_data(
                self.data, True)
        return wire


class WebSocket:
    """A handed-over WebSocket (see the module doc). ``handler`` has ``on_message(ws, message)``
    (hub thread) and ``on_close(ws)`` (worker thread)."""

    __slots__ = ('sock', 'fd', 'proto', 'handler', 'hub', 'owner', 'max_message_size',
                 'max_backlog', 'lock', 'state', 'backlog', 'watching', 'parts', 'size',
                 'last_seen', 'lane', 'lane_busy', 'timer', 'close_timer',
                 'compressed', 'ping_sent', 'released', 'dropped', 'paused', 'interest', 'inbound', 'peer_closed',
                 'fast', '__weakref__')

    def __init__(self, sock: socket.socket, proto: Any, handler: Any, hub: Hub, *,
                 max_message_size: Optional[int], max_backlog: int, owner: Any = None) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.proto = proto
        self.handler = handler
        self.hub = hub
        self.owner = owner
        self.max_message_size = max_message_size
        self.max_backlog = max_backlog
        self.lock = threading.Lock()
        self.state = OPEN
        self.backlog: Optional[Deque[bytes]] = None
        self.watching = False
        self.parts: List[Any] = []
        self.size = 0
        self.last_seen = time.monotonic()
        self.lane: Optional[Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]]] = None
        self.lane_busy = False
        self.timer: Optional[Timer] = None
        self.close_timer: Optional[Timer] = None
        #: permessage-deflate was negotiated: frames depend on this connection's state
        self.compressed = bool(getattr(getattr(proto, '_proto', None), 'extensions', None))
        self.ping_sent: Optional[float] = None
        self.released = False
        self.dropped = False
        #: reading stops while this connection's received messages wait for a worker
        self.paused = False
        #: what the hub's selector watches for (hub thread)
        self.interest = 0
        #: bytes of received messages not yet handled
        self.inbound = 0
        #: the client closed (or broke the protocol): release once the answer is out
        self.peer_closed = False
        #: whole, unfragmented, uncompressed data frames are parsed here (see
        #: :func:`split_simple_frames`) until the first other frame: that and all after go to
        #: wsproto, which so never sees a frame boundary it did not start at
        self.fast = not self.compressed

    def __repr__(self) -> str:
        return f'<WebSocket fd={self.fd} {self.state}>'

    def start(self) -> None:
        """Let the hub watch this connection (any thread; the adapter is ready for messages)."""
        self.hub.connections.add(self)
        self.hub.call_soon(self._register)
        if self.owner is not None and self.owner in self.hub.closed_owners:
            self.close(CloseReason.GOING_AWAY)  # its app was closed during the handshake

    def _register(self) -> None:
        if self.state is CLOSED:
            return
        if self.backlog:
            self.watching = True
        self.hub.add(self)

    @property
    def open(self) -> bool:
        return self.state is OPEN

    # -- writing (any thread) ------------------------------------------------------------------
    def send(self, data: Union[str, bytes]) -> bool:
        """Send one text (``str``) or binary (``bytes``) message; False when closed or dropped."""
        event = BytesMessage(data=data) if isinstance(data, bytes) else TextMessage(data=data)
        with self.lock:
            # wsproto leaves OPEN as it parses the client's close frame, a moment before the
            # hub thread marks the connection closing.
            if self.state is not OPEN or self.proto.state is not ConnectionState.OPEN:
                return False
            return self._write(self.proto.send(event), False)

    def send_message(self, message: Message) -> bool:
        """Send a :class:`Message`, framed once for every connection without compression."""
        if self.compressed:
            return self.send(message.data)
        with self.lock:
            if self.state is not OPEN or self.proto.state is not ConnectionState.OPEN:
                return False
            return self._write(message.wire, False)

    def send_messages(self, messages: Sequence[Message]) -> bool:
        """Send several :class:`Message` in order, with one system call when the socket takes
        them (each still counts against the backlog bound when they have to wait)."""
        if self.compressed or len(messages) == 1:
            ok = True
            for message in messages:
                ok = self.send_message(message) and ok
            return ok
        with self.lock:
            if self.state is not OPEN or self.proto.state is not ConnectionState.OPEN:
                return False
            if self.backlog:
                for message in messages:
                    if not self._write(message.wire, False):
                        return False
                return True
            return self._write(b''.join([m.wire for m in messages]), False)

    def backlog_size(self) -> int:
        backlog = self.backlog
        return len(backlog) if backlog else 0

    def _write(self, frame: bytes, force: bool) -> bool:
        # Caller holds self.lock. ``force``: control frames, never counted against the bound.
        backlog = self.backlog
        if backlog:
            if len(backlog) >= self.max_backlog and not force:
                self._drop()
                return False
            backlog.append(frame)
            return True
        try:
            sent = self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._fail()
            return False
        if sent < len(frame):
            if backlog is None:
                backlog = self.backlog = collections.deque()
            backlog.append(frame[sent:])
            if not self.watching:
                self.watching = True
                self.hub.call_soon(self.hub.update, self)
        return True

    def _drop(self) -> None:
        # Caller holds self.lock: the client stopped reading.
        log.warning('%s client stopped reading (%d frames queued); dropped',
                    getattr(self.handler, 'label', 'WebSocket'), len(self.backlog or ()))
        self.dropped = True
        self._fail()

    def _fail(self) -> None:
        # Caller holds self.lock: release at once, without a close handshake.
        self.state = CLOSED
        self.backlog = None
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.hub.call_soon(self._release)

    def on_writable(self) -> None:
        """Hub thread: write the backlog."""
        half_close = False
        with self.lock:
            backlog = self.backlog
            while backlog:
                frame = backlog[0]
                try:
                    sent = self.sock.send(frame)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    self._fail()
                    return
                if sent < len(frame):
                    backlog[0] = frame[sent:]
                    return
                backlog.popleft()
            self.backlog = None
            self.watching = False
            half_close = self.state is CLOSING
        self.hub.update(self)
        if half_close:
            if self.peer_closed:
                self._release()
            else:
                self._half_close()

    # -- closing -----------------------------------------------------------------------------------
    def close(self, code: int = CloseReason.NORMAL_CLOSURE, reason: Optional[str] = None) -> None:
        """Close with a close frame ``code`` after what is queued (any thread)."""
        with self.lock:
            if self.state is not OPEN:
                return
            self.state = CLOSING
            try:
                frame = self.proto.send(CloseConnection(code=code, reason=reason))
            except LocalProtocolError:
                frame = b''
            if frame:
                self._write(frame, True)
            flushed = not self.backlog
        if flushed:
            self.hub.call_soon(self._half_close)
        self.close_timer = self.hub.call_later(CLOSE_TIMEOUT, self._release)

    def abort(self) -> None:
        """Release at once, without a close handshake (any thread)."""
        with self.lock:
            if self.state is CLOSED:
                return
            self._fail()

    def _half_close(self) -> None:
        # Hub thread: our close frame went out; the client answers and hangs up.
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._release()

    def _release(self) -> None:
        """Hub thread: forget the socket, close it, then tell the adapter."""
        if self.released:
            return
        self.released = True
        with self.lock:
            self.state = CLOSED
            self.backlog = None
        for timer in (self.timer, self.close_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.close_timer = None
        self.hub.remove(self)
        try:
            self.sock.close()
        except OSError:
            pass
        self.hub.connections.discard(self)
        self.serial(self._closed)

    def _closed(self) -> None:
        try:
            self.handler.on_close(self)
        finally:
            self.handler = _Gone

    # -- reading (hub thread) ----------------------------------------------------------------------
    def on_readable(self) -> None:
        # Into the hub's one buffer: a 64 KiB bytes object per read, shrunk to what arrived,
        # fragments the heap until RSS no longer comes back after a storm.
        view = self.hub.read_buffer
        try:
            count = self.sock.recv_into(view)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            count = 0
        data = bytes(view[:count])
        if not data:  # the client hung up (or answered our half-close)
            self._release()
            return
        if self.state is CLOSED:
            return
        self.last_seen = time.monotonic()
        with self.lock:
            try:
                if self.fast:
                    events, rest = split_simple_frames(data)
                    if rest:
                        self.fast = False
                        self.proto.receive_data(rest)
                        events.extend(self.proto.events())
                else:
                    self.proto.receive_data(data)
                    events = list(self.proto.events())
            except (RemoteProtocolError, LocalProtocolError) as exc:
                events = None
                error = exc
        if events is None:
            log.info('WebSocket protocol error: %s; closed', error)
            self.abort()
            return
        for event in events:
            if isinstance(event, WsMessage):
                if not self._take(event):
                    return
            elif isinstance(event, Ping):
                with self.lock:
                    if self.proto.state is ConnectionState.OPEN:
                        self._write(self.proto.send(event.response()), True)
            elif isinstance(event, CloseConnection):
                # The client's close (or wsproto's answer to a frame it could not parse): answer
                # it and hang up as soon as the answer went out (RFC 6455 7.1.1), reading nothing
                # more; a client still streaming a broken frame is cut off at once.
                with self.lock:
                    self.state = CLOSING
                    try:
                        self._write(self.proto.send(event.response()), True)
                    except LocalProtocolError:
                        pass
                    self.peer_closed = True
                    flushed = not self.backlog
                if flushed:
                    self._release()
                elif self.close_timer is None:
                    self.close_timer = self.hub.call_later(CLOSE_TIMEOUT, self._release)
                return

    def _take(self, event: Any) -> bool:
        self.parts.append(event.data)
        self.size += len(event.data)
        limit = self.max_message_size
        if limit is not None and self.size > limit:
            log.warning('%s client sent a message over %d bytes; closed',
                        getattr(self.handler, 'label', 'WebSocket'), limit)
            self.parts = []
            self.close(CloseReason.MESSAGE_TOO_BIG, 'Message too big')
            self.abort()
            return False
        if not event.message_finished:
            return True
        parts, self.parts, self.size = self.parts, [], 0
        message = parts[0] if len(parts) == 1 else \
            (b'' if isinstance(parts[0], bytes) else '').join(parts)
        self.handler.on_message(self, message)
        return True

    # -- heartbeat (hub thread) --------------------------------------------------------------------
    def heartbeat(self, interval: float, ping: Callable[['WebSocket'], Any]) -> None:
        """Every ``interval`` seconds: drop the client when it sent nothing since the previous
        ping (any frame counts as life), else ``ping(ws)``. One hub timer, no thread."""
        if interval > 0:
            self.timer = self.hub.call_later(interval, self._beat, interval, ping)

    def _beat(self, interval: float, ping: Callable[['WebSocket'], Any]) -> None:
        if self.state is not OPEN:
            return
        now = time.monotonic()
        if self.ping_sent is not None and self.last_seen < self.ping_sent:
            log.info('%s client silent for %.1f s; dropped',
                     getattr(self.handler, 'label', 'WebSocket'), now - self.last_seen)
            self.abort()
            return
        self.ping_sent = now
        ping(self)
        self.timer = self.hub.call_later(interval, self._beat, interval, ping)

    # -- the serial lane (any thread) ----------------------------------------------------------------
    def deliver(self, fn: Callable[..., Any], message: Any) -> None:
        """Hub thread: ``serial(fn, self, message)``, and stop reading this socket while more
        than ``PAUSE_AT`` bytes of its messages wait: a client that sends faster than the
        application handles it is slowed down by TCP, instead of growing memory."""
        size = len(message)
        with self.lock:
            self.inbound += size
            pause = self.inbound > PAUSE_AT and not self.paused
            if pause:
                self.paused = True
        if pause:
            self.hub.update(self)
        self.serial(self._handled, fn, message, size)

    def _handled(self, fn: Callable[..., Any], message: Any, size: int) -> None:
        try:
            fn(self, message)
        finally:
            with self.lock:
                self.inbound -= size
                resume = self.paused and self.inbound <= PAUSE_AT // 2
                if resume:
                    self.paused = False
            if resume:
                self.hub.call_soon(self.hub.update, self)

    def serial(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a pooled worker after everything this connection queued before."""
        with self.lock:
            lane = self.lane
            if lane is None:
                lane = self.lane = collections.deque()
            lane.append((fn, args))
            if self.lane_busy:
                return
            self.lane_busy = True
        self.hub.workers.submit(self._run_lane)

    def _run_lane(self) -> None:
        while True:
            with self.lock:
                lane = self.lane
                if not lane:
                    self.lane = None
                    self.lane_busy = False
                    return
                fn, args = lane.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception('%r raised on %r', fn, self)


class _Gone:
    """The handler of a released connection: late messages go nowhere."""

    label = 'WebSocket'

    @staticmethod
    def on_message(ws: Any, message: Any) -> None:
        pass

    @staticmethod
    def on_close(ws: Any) -> None:
        pass


def split_simple_frames(data: bytes) -> Tuple[List[Any], bytes]:
    """The messages of the whole, masked, unfragmented text and binary frames (no extension
    bits, at most 65,535 bytes) at the start of ``data``, as wsproto's events, and the bytes from
    the first other frame on (a ping, a fragment, a longer or partial frame, text that is not
    UTF-8: wsproto's to parse, or to refuse as it does). A client's close frame with a valid code
    ends the list as wsproto's CloseConnection (nothing after it is read). wsproto's
    generator-based parser was half of the server's GIL time in a reconnect storm, for frames of
    a few bytes."""
    events: List[Any] = []
    at, end = 0, len(data)
    while at + 2 <= end:
        first, second = data[at], data[at + 1]
        opcode = first & 0x0F
        if first & 0xF0 != 0x80 or opcode not in (1, 2, 8) or not second & 0x80:
            break  # not FIN, extension bits, a continuation, ping or pong frame, or unmasked
        length = second & 0x7F
        if opcode == 8 and length > 125:
            break  # a control frame is at most 125 bytes: wsproto refuses it
        head = at + 6
        if length == 126:
            if at + 4 > end:
                break
            length = (data[at + 2] << 8) | data[at + 3]
            if length < 126:
                break  # not the shortest encoding: wsproto's to judge
            head = at + 8
        elif length == 127:
            break
        if head + length > end:
            break  # partial
        mask = data[head - 4:head]
        payload = data[head:head + length]
        if length:
            key = int.from_bytes((mask * (length // 4 + 1))[:length], 'little')
            payload = (int.from_bytes(payload, 'little') ^ key).to_bytes(length, 'little')
        if opcode == 8:
            close = _close_event(payload)
            if close is None:
                break  # a close frame wsproto refuses: its answer
            events.append(close)
            return events, b''
        if opcode == 1:
            try:
                events.append(TextMessage(data=payload.decode('utf-8')))
            except UnicodeDecodeError:
                break
        else:
            events.append(BytesMessage(data=payload))
        at = head + length
    return events, data[at:]


def _close_event(payload: bytes) -> Optional[CloseConnection]:
    """A client's close frame as wsproto reads it, or None for one it would refuse (a 1-byte
    payload, a code a peer may not send, a reason that is not UTF-8)."""
    if not payload:
        return CloseConnection(code=CloseReason.NO_STATUS_RCVD, reason='')
    if len(payload) < 2:
        return None
    code = (payload[0] << 8) | payload[1]
    if 3000 <= code <= 4999:
        known: Any = code
    else:
        try:
            known = CloseReason(code)
        except ValueError:
            return None
        if known in (CloseReason.NO_STATUS_RCVD, CloseReason.ABNORMAL_CLOSURE,
                     CloseReason.TLS_HANDSHAKE_FAILED):
            return None
    try:
        reason = payload[2:].decode('utf-8')
    except UnicodeDecodeError:
        return None
    return CloseConnection(code=known, reason=reason)
