"""The dispatcher: the one object the rest of the package talks to (see the package docstring)."""
from __future__ import annotations

import contextlib
import functools
import threading
import time
from contextlib import AbstractContextManager
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence

from ..channels import Publishers
from ..connections import Connection, ConnectionRegistry
from ..service import caller, member
from .delivery import Broadcast, Delivery, Event, Write, event_name, send_grouped
from .lanes import Lane
from .pending import Pending
from .scheduler import Scheduler

DEFAULT_FILTER_WORKERS = 8
DEFAULT_FILTER_TIMEOUT = 10.0
#: Filtered deliveries that may wait in the process (FEATHERS_MAX_PENDING) before the calls that
#: produce events wait for them: at about 30,000 filtered deliveries a second, a fifth of a
#: second of backlog, a few MB.
DEFAULT_MAX_PENDING = 5000


class Registered(Protocol):
    """What ``find_service(path)`` returns: a registered service, its object as ``service``."""

    @property
    def service(self) -> object: ...


class Dispatcher:
    """Delivers service events to the connections of one :class:`ConnectionRegistry`.

    :param connections: the registry of this process's connections.
    :param find_service: ``find_service(path)`` -> the wrapped service or None.
    :param workers: size of the filter worker pool.
    :param filter_timeout: seconds a filter may take before its client is skipped for that event.
    :param publishers: Feathers 5 publishers (channels); None or empty: every connection gets
        every event.
    :param max_pending: filtered deliveries that may be pending before producers wait.
    :param context: ``context()`` -> the context manager filters run in (the Flask app context).
    """

    def __init__(self, connections: ConnectionRegistry,
                 find_service: Callable[[str], Optional[Registered]],
                 workers: int = DEFAULT_FILTER_WORKERS,
                 filter_timeout: float = DEFAULT_FILTER_TIMEOUT,
                 publishers: Optional[Publishers] = None,
                 max_pending: int = DEFAULT_MAX_PENDING,
                 context: Optional[Callable[[], AbstractContextManager[object]]] = None) -> None:
        if max_pending < 1:
            raise ValueError(f'FEATHERS_MAX_PENDING must be at least 1, got {max_pending}')
        if workers < 1:
            raise ValueError(f'FEATHERS_FILTER_WORKERS must be at least 1, got {workers}')
        if filter_timeout <= 0:
            raise ValueError(f'FEATHERS_FILTER_TIMEOUT must be positive, got {filter_timeout}')
        self.connections = connections
        self.find_service = find_service
        self.publishers = publishers
        self.workers = workers
        self.filter_timeout = filter_timeout
        self.max_pending = max_pending
        self.pending = Pending(max_pending, filter_timeout)
        self.scheduler = Scheduler(workers, filter_timeout, self.pending, self._write,
                                   context or contextlib.nullcontext)
        #: every event goes into the lanes of its connections in the same order
        self._order_lock = threading.Lock()
        #: each connection's lane, made at its first filtered event, dropped when it leaves
        self._lanes: Dict[Connection, Lane] = {}
        self._transports: Dict[str, Broadcast] = {}
        self._writers: Dict[str, Write] = {}
        connections.on('disconnect', self._forget)

    def add_transport(self, provider: str, broadcast: Broadcast,
                      write: Optional[Write] = None) -> None:
        """Use ``broadcast`` for unfiltered events to connections of ``provider``, and ``write``
        (when given) for what the filter workers deliver to one of its connections at once."""
        self._transports[provider] = broadcast
        if write is not None:
            self._writers[provider] = write

    # -- public ----------------------------------------------------------------------------------
    def dispatch(self, path: str, event: str, data: Any) -> None:
        """Deliver one service event to the connections of this process, filtered.

        With a Feathers 5 publisher for the event, only the connections of the channels it
        returns get it (each with its channel's data); otherwise every connection does.
        """
        name = event_name(path, event)
        wrapped = self.find_service(path)
        filt = member(wrapped.service, event) if wrapped is not None else None
        groups = self.publishers.evaluate(path, event, data, wrapped) if self.publishers \
            else None
        if groups is None:  # no publisher: every connection
            connections = self.connections.snapshot()
            if not connections:
                return
            groups = [(data, connections)]
        with self._order_lock:
            for payload, conns in groups:
                if filt is None:
                    self._broadcast(name, payload, conns)
                else:
                    self._filter(filt, name, payload, conns)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every dispatched event was delivered or skipped; False on timeout."""
        return self.pending.wait_idle(timeout)

    def waiting(self, conn: Connection) -> int:
        """How many events wait in ``conn``'s lane now."""
        lane = self._lanes.get(conn)
        return 0 if lane is None else len(lane.events)

    @property
    def peak_pending(self) -> int:
        """The most deliveries that were ever pending at once (tests, bench)."""
        return self.pending.peak

    def close(self) -> None:
        """Stop the worker pool and the timeout watchdog."""
        self.scheduler.close()

    # -- fast path -------------------------------------------------------------------------------
    def _broadcast(self, name: str, data: Any, connections: Sequence[Connection]) -> None:
        """An unfiltered event: one ``broadcast`` per transport (the data encoded once), except
        to connections with earlier events still waiting, where it queues behind them."""
        by_transport: Dict[str, List[Connection]] = {}
        lane_of = self._lanes.get
        queued: Optional[Event] = None
        newly: List[Lane] = []
        for conn in connections:
            lane = lane_of(conn)
            # (Lane.waiting() inlined: this runs per connection for every unfiltered event)
            if lane is not None and (lane.busy or lane.events):
                if queued is None:
                    queued = Event(name, data, None, time.monotonic())
                self.pending.add(1)  # before the push: its loop may count it done at once
                if lane.push(queued):
                    newly.append(lane)
                continue
            by_transport.setdefault(conn.provider, []).append(conn)
        if newly:
            self.scheduler.schedule(newly)
        for provider, conns in by_transport.items():
            broadcast = self._transports.get(provider)
            group = None if broadcast is None else functools.partial(broadcast, name, data, conns)
            send_grouped(group, ((conn, name, data) for conn in conns),
                         'broadcasting %r to %d %s connections failed', name, len(conns),
                         provider)

    # -- filtered path ---------------------------------------------------------------------------
    def _filter(self, filt: Callable[..., Any], name: str, data: Any,
                connections: Sequence[Connection]) -> None:
        """A filtered event: into the lane of each connection, for the worker loops."""
        if not connections:
            return
        self.pending.admit(len(connections))
        event = Event(name, data, caller(filt, 2, self.filter_timeout, f'filter for {name!r}'),
                      time.monotonic())
        lanes = self._lanes
        gone = 0
        newly: List[Lane] = []
        for conn in connections:
            lane = (lanes.get(conn) or self._new_lane(conn)) if conn.connected else None
            if lane is None:  # gone
                gone += 1
                continue
            if lane.push(event):
                newly.append(lane)
        if gone:
            self.pending.done(gone)
        if newly:
            self.scheduler.schedule(newly)

    def _new_lane(self, conn: Connection) -> Optional[Lane]:
        """``conn``'s first lane; None when it left while the lane was made."""
        lane = self._lanes[conn] = Lane(conn)
        # _forget runs after `connected` turns False: it either finds this lane or ran before
        # the check below, which then sees the connection gone.
        if not conn.connected:
            self._lanes.pop(conn, None)
            return None
        return lane

    def _write(self, conn: Connection, items: List[Delivery]) -> None:
        """Send what a worker loop filtered for ``conn`` (the transport's ``write`` when it has
        one: one system call for all of it on a handed-over websocket)."""
        write = self._writers.get(conn.provider)
        group = None if write is None else functools.partial(write, conn, items)
        send_grouped(group, ((conn, name, data) for name, data, _ in items),
                     'sending %d events to connection %s failed; skipped', len(items), conn.id)

    def _forget(self, conn: Connection) -> None:
        """``conn`` left: what waits for it no longer counts as pending, a filter running for it
        included (its loop drops the result)."""
        lane = self._lanes.pop(conn, None)
        dropped = lane.clear() if lane is not None else 0
        dropped += self.scheduler.cancel(conn)
        if dropped:
            self.pending.done(dropped)
