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
from typing import Any, Callable, Deque, List, Optional, Sequence, Union

from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message as WsMessage, Ping, TextMessage, BytesMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .frames import Message, encode_frame, split_simple_frames
from .hub import Hub, Timer
from .lanes import SerialLane

log = logging.getLogger(__name__)

OPEN, CLOSING, CLOSED = 'open', 'closing', 'closed'
#: Seconds a closing connection waits for the client to answer its close frame.
CLOSE_TIMEOUT = 1.0


class WebSocket(SerialLane):
    """A handed-over WebSocket (see the module doc). ``handler`` has ``on_message(ws, message)``
    (hub thread) and ``on_close(ws)`` (worker thread)."""

    __slots__ = ('sock', 'fd', 'proto', 'handler', 'hub', 'owner', 'max_message_size',
                 'max_backlog', 'lock', 'state', 'backlog', 'watching', 'parts', 'size',
                 'last_seen', 'timer', 'close_timer', 'compressed', 'ping_sent', 'released',
                 'dropped', 'interest', 'peer_closed', 'fast', '__weakref__')

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
        self.lane = None
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
        if self.compressed:  # the frame depends on this connection's compressor
            event = BytesMessage(data=data) if isinstance(data, bytes) else TextMessage(data=data)
            with self.lock:
                if self.state is not OPEN or self.proto.state is not ConnectionState.OPEN:
                    return False
                return self._write(self.proto.send(event), False)
        frame = encode_frame(data)
        with self.lock:
            # wsproto leaves OPEN as it parses the client's close frame, a moment before the
            # hub thread marks the connection closing.
            if self.state is not OPEN or self.proto.state is not ConnectionState.OPEN:
                return False
            return self._write(frame, False)

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


class _Gone:
    """The handler of a released connection: late messages go nowhere."""

    label = 'WebSocket'
    on_message = on_close = staticmethod(lambda *args: None)
