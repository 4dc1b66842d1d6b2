"""Transport-neutral real-time connections and the thread-safe registry of them.

A :class:`Connection` is what the providers register for every admitted socket, whatever its
transport: an id, the provider name, the ``params`` dict the authorization hook filled (the very
object every call and filter receives) and a ``send(event, data)`` function. It carries no
state of the parts that use it: the dispatcher keeps each connection's lane itself
(:mod:`flask_feathers.dispatch`), providers keep theirs in :attr:`Connection.extra`.
"""
from __future__ import annotations

import collections
import itertools
import logging
import re
import threading
import time
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

log = logging.getLogger(__name__)

Send = Callable[[str, Any], None]

_counter = itertools.count()


class Connection:
    """One connected client.

    :param id: unique id (the Socket.IO sid, the Primus spark id).
    :param provider: ``'socketio'`` or ``'primus'``.
    :param params: the connection's feathers params (filled by the authorization hook).
    :param send: ``send(event, data)`` delivers one event to this client; may raise when the
        client is gone.
    """

    __slots__ = ('id', 'provider', 'params', 'send', 'connected', 'order', 'extra', '__weakref__')

    def __init__(self, id: str, provider: str, params: Dict[str, Any], send: Send) -> None:
        self.id = id
        self.provider = provider
        self.params = params
        self.send = send
        #: False once it left the registry (before its 'disconnect' listeners run)
        self.connected = True
        #: the registry lists connections in this order (the order they were made)
        self.order = next(_counter)
        #: room for the provider's own per-connection state
        self.extra: Dict[str, Any] = {}

    def __repr__(self) -> str:
        return f'<Connection {self.provider}:{self.id}>'

    def disconnect(self) -> None:
        """Close this client's socket (its transport's own close: a Socket.IO disconnect, a
        Primus end); nothing when it is gone already."""
        close = self.extra.get('disconnect')
        if close is not None and self.connected:
            close()


class ConnectionRegistry:
    """The connections of one application in this process, safe to use from any thread."""

    def __init__(self) -> None:
        self._by_id: Dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._snapshot: Optional[List[Connection]] = None
        self._listeners: Dict[str, List[Callable[[Connection], None]]] = {'connection': [],
                                                                         'disconnect': []}

    def add(self, connection: Connection) -> None:
        with self._lock:
            self._by_id[connection.id] = connection
            self._snapshot = None
        self._notify('connection', connection)

    def remove(self, id: str) -> Optional[Connection]:
        with self._lock:
            connection = self._by_id.pop(id, None)
            self._snapshot = None
        if connection is not None:
            connection.connected = False
            self._notify('disconnect', connection)
        return connection

    def _notify(self, event: str, connection: Connection) -> None:
        for fn in list(self._listeners[event]):
            try:
                fn(connection)
            except Exception:  # a listener must not break connecting or leaving
                log.exception('%s listener %r raised for %r', event, fn, connection)

    def get(self, id: str) -> Optional[Connection]:
        return self._by_id.get(id)

    def snapshot(self) -> List[Connection]:
        """A list of the current connections, in the order they connected (cached until churn)."""
        snap = self._snapshot
        if snap is None:
            with self._lock:
                snap = self._snapshot
                if snap is None:
                    snap = self._snapshot = sorted(self._by_id.values(), key=lambda c: c.order)
        return snap

    def on(self, event: str, fn: Callable[[Connection], None]) -> None:
        """Call ``fn(connection)`` on ``'connection'`` or ``'disconnect'``."""
        if event not in self._listeners:
            raise ValueError(f"connection event must be 'connection' or 'disconnect', not {event!r}")
        self._listeners[event].append(fn)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Connection]:
        return iter(self.snapshot())


_RATE = re.compile(r'^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(s|sec|m|min|h|hour)?\s*$')
_UNITS = {None: 1.0, 's': 1.0, 'sec': 1.0, 'm': 60.0, 'min': 60.0, 'h': 3600.0, 'hour': 3600.0}


def parse_rate(rate: Any, setting: str, what: str = 'attempts') -> Tuple[int, float]:
    """``(count, window seconds)`` of a rate setting like ``'20/10s'``, ``'100/m'``, ``'1000/h'``.

    :raises ValueError: naming ``setting`` when ``rate`` is malformed.
    """
    match = _RATE.match(rate) if isinstance(rate, str) else None
    count = int(match.group(1)) if match else 0
    number = match.group(2) if match else ''
    window = (float(number) if number not in ('', '.') else 1.0) * _UNITS[match.group(3)] \
        if match else 0.0
    if count < 1 or window <= 0:
        raise ValueError(f"{setting} must look like '20/10s' ({what} per window; units s, m, "
                         f"h), got {rate!r}")
    return count, window


class RateWindow:
    """At most ``count`` events per key (a client address, a username) in any ``window`` seconds.

    :param rate: ``'20/10s'``, ``'100/m'``, ``'1000/h'``.
    :param setting: the setting it came from, named when ``rate`` is malformed.

    A sliding window: each key keeps the times of its events within the window (at most
    ``count`` of them), and keys idle for a whole window are forgotten, so memory stays bounded
    by the keys active in the last window.
    """

    def __init__(self, rate: str, setting: str, what: str = 'attempts',
                 clock: Callable[[], float] = time.monotonic) -> None:
        count, window = parse_rate(rate, setting, what)
        self.count, self.window, self._clock = count, window, clock
        self._seen: Dict[str, Deque[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = clock() + window

    def _times(self, key: str, now: float, create: bool = True) -> Deque[float]:
        """``key``'s times still in the window (caller holds the lock); sweeps idle keys. A key
        without events gets an entry only with ``create``."""
        cutoff = now - self.window
        if now >= self._next_sweep:
            self._seen = {k: t for k, t in self._seen.items() if t and t[-1] > cutoff}
            self._next_sweep = now + self.window
        times = self._seen.setdefault(key, collections.deque()) if create else \
            self._seen.get(key, collections.deque())
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def full(self, key: Optional[str]) -> bool:
        """``key`` had ``count`` events in the last window."""
        with self._lock:
            return len(self._times(key or '', self._clock(), create=False)) >= self.count

    def record(self, key: Optional[str]) -> None:
        """Count one event of ``key``."""
        now = self._clock()
        with self._lock:
            times = self._times(key or '', now)
            times.append(now)
            if len(times) > self.count:
                times.popleft()

    def admit(self, key: Optional[str]) -> bool:
        """Count one event of ``key`` unless it is over its budget (then False, not counted)."""
        now = self._clock()
        with self._lock:
            times = self._times(key or '', now)
            if len(times) >= self.count:
                return False
            times.append(now)
            return True

    def __len__(self) -> int:
        return len(self._seen)


class ConnectRate(RateWindow):
    """Socket connections admitted per client address (``FEATHERS_CONNECT_RATE``): refused
    attempts do not count."""

    def __init__(self, rate: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(rate, 'FEATHERS_CONNECT_RATE', 'connections', clock)
