"""The hub: one I/O thread per process that watches every handed-over socket.

After its handshake, a WebSocket of either transport leaves the HTTP server's request thread
(:mod:`.handover`) and is registered here. The hub thread:

* reads what arrives on any socket (``selectors``, epoll on Linux) and feeds it to that
  connection's protocol state (:meth:`WebSocket.on_readable`), which hands finished messages to
  its transport adapter;
* writes the backlog of connections whose socket buffer was full, when they become writable
  (writes themselves happen in the sending thread, without blocking: :meth:`WebSocket.send`);
* runs the timers of every connection (heartbeats, ping time-outs, close deadlines) from one heap.

So an idle connection costs no thread at all: only its socket, its protocol state and its entry
here. Application code never runs on the hub thread: adapters hand it to :class:`Workers`.

Concurrency: the selector and the timer heap are touched by the hub thread only. Other threads
ask for changes through :meth:`call_soon` / :meth:`call_later`, which take ``_lock`` (guarding
``_soon`` and the heap) and wake the hub through a socket pair. ``_lock`` is never held while a
callback runs, and no connection lock is taken while holding it.
"""
from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import os
import selectors
import socket
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from .workers import Workers

log = logging.getLogger(__name__)

#: Seconds :meth:`Hub.close_all` waits for the close frames to go out and the clients to answer.
SHUTDOWN_GRACE = 1.0
#: Bytes read from one socket at a time.
READ_BUFFER = 65536


class Timer:
    """A scheduled call; :meth:`cancel` keeps it from running."""

    __slots__ = ('due', 'fn', 'args', 'cancelled')

    def __init__(self, due: float, fn: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        self.due = due
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.fn = _noop
        self.args = ()


def _noop(*args: Any) -> None:
    pass


class Watched(Protocol):
    """What the hub watches: a WebSocket, or a connection waiting for its request head."""

    sock: Any
    fd: int
    #: reading stops while True
    paused: bool
    #: writing is watched while True
    watching: bool
    #: the selector events registered now (hub thread)
    interest: int

    def on_readable(self) -> None: ...

    def on_writable(self) -> None: ...


class Hub:
    """The I/O thread and its registry of connections (see the module doc)."""

    def __init__(self, workers: Optional[Workers] = None) -> None:
        self.workers = workers or Workers()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._soon: List[Tuple[Callable[..., Any], Tuple[Any, ...]]] = []
        self._timers: List[Tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._woken = False
        #: fd -> connection, every socket the hub watches (hub thread only)
        self._by_fd: Dict[int, Watched] = {}
        #: every open connection, for close_all (any thread; set operations are atomic)
        self.connections: 'set[Any]' = set()
        #: owners whose connections were closed (api.close()): one that finishes its handshake
        #: afterwards is closed as it starts
        self.closed_owners: 'weakref.WeakSet[Any]' = weakref.WeakSet()
        #: the hub thread was started and its loop has not ended
        self._running = False
        #: what the hub thread reads sockets into (hub thread only)
        self.read_buffer = memoryview(bytearray(READ_BUFFER))
        self._pid = os.getpid()

    # -- any thread ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._running:  # every accept asks: no lock (nor Thread.is_alive's) for that
            return
        with self._lock:
            if not self._running:
                self._running = True
                threading.Thread(target=self._run_loop, daemon=True,
                                 name='flask-feathers-hub').start()

    def _run_loop(self) -> None:
        try:
            self._loop()
        finally:  # (the loop does not end; should it, the next start() begins another)
            self._running = False

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the hub thread, soon."""
        with self._lock:
            self._soon.append((fn, args))
            wake = not self._woken
            self._woken = True
        if wake:
            self._wake()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` on the hub thread ``delay`` seconds from now."""
        timer = Timer(time.monotonic() + delay, fn, args)
        with self._lock:
            first = not self._timers or timer.due < self._timers[0][0]
            heapq.heappush(self._timers, (timer.due, next(self._seq), timer))
            wake = first and not self._woken
            if wake:
                self._woken = True
        if wake:
            self._wake()
        return timer

    def _wake(self) -> None:
        try:
            self._wake_w.send(b'\0')
        except (BlockingIOError, OSError):
            pass  # already full of wake-ups: the hub wakes anyway

    # -- hub thread ----------------------------------------------------------------------------
    def add(self, conn: Watched) -> None:
        """Watch ``conn.sock`` for reading (hub thread: use ``call_soon(hub.add, conn)``)."""
        fd = conn.sock.fileno()
        self._by_fd[fd] = conn
        conn.interest = 0
        self.update(conn)

    def update(self, conn: Watched) -> None:
        """Watch ``conn`` for what it wants now (hub thread): reading unless ``conn.paused``
        (its messages wait for application code), writing while ``conn.watching`` (a backlog)."""
        fd = conn.fd
        if self._by_fd.get(fd) is not conn:
            return
        events = (0 if conn.paused else selectors.EVENT_READ) | \
            (selectors.EVENT_WRITE if conn.watching else 0)
        if events == conn.interest:
            return
        try:
            if not events:
                self._selector.unregister(fd)
            elif not conn.interest:
                self._selector.register(fd, events, conn)
            else:
                self._selector.modify(fd, events, conn)
        except (KeyError, ValueError, OSError):
            return
        conn.interest = events

    def remove(self, conn: Watched) -> None:
        """Stop watching ``conn`` (hub thread); the caller closes its socket afterwards."""
        fd = conn.fd
        if self._by_fd.get(fd) is conn:
            del self._by_fd[fd]
            if conn.interest:
                conn.interest = 0
                try:
                    self._selector.unregister(fd)
                except (KeyError, ValueError, OSError):
                    pass

    def _loop(self) -> None:
        select = self._selector.select
        while True:
            with self._lock:
                self._woken = False
                soon, self._soon = self._soon, []
            for fn, args in soon:
                self._run(fn, args)
            timeout = self._run_timers()
            try:
                ready = select(timeout)
            except InterruptedError:
                continue
            for key, mask in ready:
                conn = key.data
                if conn is None:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                    continue
                if mask & selectors.EVENT_WRITE:
                    self._run(conn.on_writable, ())
                if mask & selectors.EVENT_READ:
                    self._run(conn.on_readable, ())

    def _run_timers(self) -> Optional[float]:
        now = time.monotonic()
        due: List[Timer] = []
        with self._lock:
            timers = self._timers
            while timers and timers[0][0] <= now:
                due.append(heapq.heappop(timers)[2])
            nxt = timers[0][0] if timers else None
        for timer in due:
            if not timer.cancelled:
                self._run(timer.fn, timer.args)
        if due:  # a callback may have added an earlier timer
            with self._lock:
                nxt = self._timers[0][0] if self._timers else None
        if self._soon:
            return 0
        return None if nxt is None else max(0.0, nxt - time.monotonic())

    @staticmethod
    def _run(fn: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:  # one connection's failure must not stop the hub
            log.exception('hub callback %r raised', fn)

    # -- shutting down ------------------------------------------------------------------------------
    def close_all(self, owner: Any = None, code: int = 1001,
                  grace: float = SHUTDOWN_GRACE) -> int:
        """Close every connection (of ``owner``, when given) with a close frame ``code`` (1001,
        going away: clients reconnect elsewhere) and wait up to ``grace`` seconds for their
        sockets to be released. Returns how many were still open after the wait."""
        if owner is not None:
            self.closed_owners.add(owner)
        # ``grace`` counts from here: on a loaded machine writing thousands of close frames
        # takes a while too, and SIGTERM's promise is an exit within two seconds.
        deadline = time.monotonic() + grace
        conns = [c for c in list(self.connections) if owner is None or c.owner is owner]
        for conn in conns:
            conn.close(code)
        # Done when the socket is released (the client answered the close frame, or hung up);
        # the disconnect handlers may still be running on the workers then.
        left = conns
        while left and time.monotonic() < deadline:
            left = [c for c in left if not c.released]
            if left:
                time.sleep(0.02)
        return len([c for c in left if not c.released])


_hub: Optional[Hub] = None
_hub_lock = threading.Lock()


def get_hub() -> Hub:
    """The process's hub, started on first use (again in a forked child)."""
    global _hub
    hub = _hub
    if hub is None or hub._pid != os.getpid():
        with _hub_lock:
            hub = _hub
            if hub is None or hub._pid != os.getpid():
                hub = _hub = Hub()
    hub.start()
    return hub


def _close_at_exit() -> None:
    hub = _hub
    if hub is not None and hub._pid == os.getpid() and hub.connections:
        left = hub.close_all()
        log.info('closed the real-time connections at exit (%d did not answer)', left)


atexit.register(_close_at_exit)
