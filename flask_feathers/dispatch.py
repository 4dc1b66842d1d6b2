"""One service event -> deliveries to this process's connections, through per-client filters.

Rules (PROTOCOL.md section 6):

* The service method named like the event (``created``, ``updated``, a custom name) is the filter.
  It runs once per connection with ``(data, connection.params)`` (plus a callback in callback style),
  in a bounded worker pool. A truthy result is sent (``True`` sends the data unchanged), a falsy one
  (as JavaScript sees it: None, False, 0, '') sends nothing. A filter that raises or outlives
  ``filter_timeout`` skips that client only.
* Without a filter, every connection gets the data unchanged: one ``broadcast`` per transport, so the
  packet is encoded once (the fast path).
* Every connection receives events in the order they were dispatched. Each connection has a *lane*:
  a queue of slots in dispatch order; a slot is filled when its filter finishes (or times out) and
  the lane is drained from its head, so a slow filter holds back only its own client.
* Each event's filters form one queue, drained in groups by one worker loop that takes the events'
  queues in turn (more threads on one GIL only slow a burst down); a connection whose filter for an
  earlier event finishes joins the queue of its next one. When a filter holds a worker for
  ``GROUP_HOLD``, the watchdog starts another loop for the rest, so a slow filter delays only its
  own client.
* A connection has at most one filter in the pool at a time (its lane's first unfiltered slot), so
  a client whose filter hangs occupies one worker, never the whole pool: the other clients keep
  their events. Filters of different clients run in parallel.
* Time-outs: a running filter is skipped ``filter_timeout`` after it started. Its client's later
  events then wait for that worker at most ``filter_timeout`` more (counted from the time-out, or
  from their dispatch when later) before they are skipped too, so a hung filter leaves a bounded
  lane and :meth:`Dispatcher.wait_idle` returns. Size the pool above the number of clients whose
  filters may hang at once: a client waiting only for a free worker is never skipped.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from ._waits import blocking
from .channels import Publishers, deliveries
from .connections import Connection, ConnectionRegistry
from .encoding import jsonable
from .service import caller, invoke, js_falsy, member

log = logging.getLogger(__name__)

#: ``broadcast(event_name, data, connections)``: deliver the same data to several connections of
#: one transport at once.
Broadcast = Callable[[str, Any, Sequence[Connection]], None]

DEFAULT_FILTER_WORKERS = 8
DEFAULT_FILTER_TIMEOUT = 10.0
#: Filtered deliveries that may wait in the process (FEATHERS_MAX_PENDING) before the calls that
#: produce events wait for them: at about 30,000 filtered deliveries a second, a fifth of a
#: second of backlog, a few MB.
DEFAULT_MAX_PENDING = 5000

#: set on the dispatcher's own worker threads: an event a filter produces never waits for room
_local = threading.local()

_PENDING, _SEND, _SKIP = 0, 1, 2
#: filtered and at the head of its lane, waiting in a worker's outbox for a grouped send
_SENDING = 3
#: A worker keeps the deliveries it filtered (the event's data unchanged) for one grouped send, so
#: the packet is encoded once; while it runs a filter for longer than this (seconds), the watchdog
#: sends them for it and lets another worker take over the rest of the event's queue.
GROUP_HOLD = 0.005
#: deliveries a worker collects before it sends them
GROUP_MAX = 128


def event_name(path: str, event: str) -> str:
    """The wire name of a service event: ``'todos created'``."""
    return f'{path} {event}'


def apply_filter(filt: Callable[..., Any], data: Any, params: Dict[str, Any],
                 timeout: Optional[float] = None,
                 label: str = 'event filter') -> Tuple[bool, Any]:
    """Run one event filter for one connection: ``(True, what_to_send)`` or ``(False, None)``.

    ``True`` from the filter sends ``data`` unchanged; a JavaScript-falsy result sends nothing.
    Exceptions (and :class:`errors.Timeout` for a callback never called) propagate.
    """
    return filter_outcome(invoke(filt, (data, params), timeout, label=label), data)


def filter_outcome(result: Any, data: Any) -> Tuple[bool, Any]:
    """What a filter's ``result`` for ``data`` means: ``(True, what_to_send)`` or ``(False, None)``
    (see :func:`apply_filter`)."""
    if result is True:
        return True, data
    if js_falsy(result):
        return False, None
    return True, result


class _Work:
    """The filters still to run for one event: (connection, slot) pairs, drained by one worker
    (more when the watchdog adds some). A connection whose filter for an earlier event was still
    running joins when that one finishes, so a burst of events is filtered, and sent, event by
    event in groups rather than one task per connection."""

    __slots__ = ('items', 'name', 'data', 'lock', 'consumers', 'call')

    def __init__(self, name: str, data: Any, call: Callable[[Any, Dict[str, Any]], Any]) -> None:
        self.items: Deque[Tuple[Connection, '_Slot']] = collections.deque()
        self.name = name
        self.data = data
        self.lock = threading.Lock()
        #: workers draining ``items`` now
        self.consumers = 0
        #: ``call(data, params)`` runs the event's filter whatever its style (see service.caller)
        self.call = call


class _Slot:
    """One event for one connection, in that connection's lane."""

    __slots__ = ('state', 'name', 'data', 'started', 'work')

    def __init__(self, name: str, state: int = _PENDING, data: Any = None,
                 work: Optional[_Work] = None) -> None:
        self.name = name
        self.state = state
        #: the event data until the filter ran, then what to send
        self.data = data
        self.started = False
        #: the event's queue of filters to run (and its filter); None once sent or skipped
        self.work = work


class _Outbox:
    """What one worker filtered for one event and sends as a group (see :data:`GROUP_HOLD`)."""

    __slots__ = ('lock', 'items', 'skipped', 'skipped_counted', 'name', 'data', 'work',
                 'running_since', 'current', 'rescued', 'finished')

    def __init__(self, name: str, data: Any, work: _Work) -> None:
        self.lock = threading.Lock()
        self.items: List[Tuple[Connection, _Slot]] = []
        #: filters done that send nothing from the group (filtered out, or sent something else);
        #: only the box's worker writes it, _flush counts the new ones as done
        self.skipped = 0
        #: how many of ``skipped`` were counted as done (under ``lock``)
        self.skipped_counted = 0
        self.name = name
        self.data = data
        self.work = work
        #: when the filter this worker runs now started, or None
        self.running_since: Optional[float] = None
        #: the (connection, slot) whose filter runs now; the watchdog times it out
        self.current: Optional[Tuple[Connection, _Slot]] = None
        #: the watchdog replaced this worker's loop (it ends after its filter); under _sched_lock
        self.rescued = False
        #: the worker's loop went on past this outbox; under _sched_lock
        self.finished = False


class Dispatcher:
    """Delivers service events to the connections of one :class:`ConnectionRegistry`.

    :param connections: the registry of this process's connections.
    :param find_service: ``find_service(path)`` -> the wrapped service or None.
    :param workers: size of the filter worker pool.
    :param filter_timeout: seconds a filter may take before its client is skipped for that event.
    """

    def __init__(self, connections: ConnectionRegistry, find_service: Callable[[str], Any],
                 workers: int = DEFAULT_FILTER_WORKERS,
                 filter_timeout: float = DEFAULT_FILTER_TIMEOUT,
                 publishers: Optional[Publishers] = None,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 1:
            raise ValueError(f'FEATHERS_MAX_PENDING must be at least 1, got {max_pending}')
        if workers < 1:
            raise ValueError(f'FEATHERS_FILTER_WORKERS must be at least 1, got {workers}')
        if filter_timeout <= 0:
            raise ValueError(f'FEATHERS_FILTER_TIMEOUT must be positive, got {filter_timeout}')
        self.connections = connections
        self.find_service = find_service
        #: Feathers 5 publishers (channels); None or empty: every connection gets every event
        self.publishers = publishers
        self.workers = workers
        self.filter_timeout = filter_timeout
        self.max_pending = max_pending
        #: producers waiting for room (see _admit)
        self._waiting = 0
        #: the most deliveries that were ever pending at once (tests, bench)
        self.peak_pending = 0
        self._transports: Dict[str, Broadcast] = {}
        self._order_lock = threading.Lock()
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pending = 0
        self._idle = threading.Condition()
        #: (deadline, seq, slots): slots waiting behind a filter that timed out; a running
        #: filter is timed out through its worker's outbox (_rescue)
        self._deadlines: List[Tuple[float, int, List[Tuple[Connection, _Slot]]]] = []
        #: connection -> the slot whose filter occupies a worker (at most one per connection)
        self._busy: Dict[Connection, _Slot] = {}
        self._deadline_seq = itertools.count()
        self._watchdog: Optional[threading.Thread] = None
        self._watch = threading.Condition()
        self._outboxes: set = set()
        #: works with filters to run and no worker yet, oldest first; taken by _run_queue loops
        self._runnable: Deque[_Work] = collections.deque()
        self._sched_lock = threading.Lock()
        #: _run_queue loops running: one drains every event's work in turn (more threads on one
        #: GIL only slow a burst down); the watchdog adds one when a filter holds a worker
        self._loops = 0
        self._closed = False
        connections.on('disconnect', self._forget)

    def add_transport(self, provider: str, broadcast: Broadcast) -> None:
        """Use ``broadcast`` for unfiltered events to connections of ``provider``."""
        self._transports[provider] = broadcast

    # -- public ----------------------------------------------------------------------------------
    def dispatch(self, path: str, event: str, data: Any) -> None:
        """Deliver one service event to the connections of this process, filtered.

        With a Feathers 5 publisher for the event, only the connections of the channels it
        returns get it (each with its channel's data); otherwise every connection does.
        """
        name = event_name(path, event)
        wrapped = self.find_service(path)
        filt = member(wrapped.service, event) if wrapped is not None else None
        publisher = self.publishers.publisher_for(path, event) if self.publishers else None
        if publisher is None:
            connections = self.connections.snapshot()
            if not connections:
                return
            groups: List[Tuple[Any, Sequence[Connection]]] = [(data, connections)]
        else:
            groups = self._publish(publisher, path, event, data, wrapped)
            if not groups:
                return
        with self._order_lock:
            for payload, conns in groups:
                if filt is None:
                    self._broadcast(name, payload, conns)
                else:
                    self._filter(filt, name, payload, conns)

    def _publish(self, publisher: Callable[..., Any], path: str, event: str, data: Any,
                 wrapped: Any) -> List[Tuple[Any, List[Connection]]]:
        """Run a publisher: the connections it chose, grouped by the payload each gets."""
        context = {'path': path, 'event': event, 'service': wrapped, 'data': data}
        try:
            pairs = deliveries(publisher(data, context))
        except Exception:
            log.exception('publisher for %r %r raised; the event goes to no client', path, event)
            return []
        groups: Dict[int, Tuple[Any, List[Connection]]] = {}
        for conn, payload in pairs:
            payload = data if payload is None else payload
            group = groups.get(id(payload))
            if group is None:
                group = groups[id(payload)] = (payload, [])
            group[1].append(conn)
        out = []
        for payload, conns in groups.values():
            try:
                out.append((payload if payload is data else jsonable(payload), conns))
            except (TypeError, ValueError, RecursionError) as exc:
                log.error('channel data for %r %r cannot be sent as JSON (%s); skipped', path,
                          event, exc)
        return out

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every dispatched event was delivered or skipped; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Stop the worker pool and the timeout watchdog."""
        self._closed = True
        with self._watch:
            self._watch.notify_all()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- fast path -------------------------------------------------------------------------------
    def _broadcast(self, name: str, data: Any, connections: Sequence[Connection]) -> None:
        by_transport: Dict[str, List[Connection]] = {}
        for conn in connections:
            with conn.lock:
                if conn.lane:
                    # Earlier events for this client are still being filtered: queue behind them.
                    conn.lane.append(_Slot(name, _SEND, data))
                    continue
            by_transport.setdefault(conn.provider, []).append(conn)
        for provider, conns in by_transport.items():
            broadcast = self._transports.get(provider)
            try:
                if broadcast is not None:
                    broadcast(name, data, conns)
                else:
                    for conn in conns:
                        self._send(conn, name, data)
            except Exception:
                log.exception('broadcasting %r to %d %s connections failed', name, len(conns),
                              provider)

    # -- filtered path ---------------------------------------------------------------------------
    def _filter(self, filt: Callable[..., Any], name: str, data: Any,
                connections: Sequence[Connection]) -> None:
        if not connections:
            return
        self._admit(len(connections))
        behind_stuck: List[Tuple[Connection, _Slot]] = []
        # One queue per event, drained by one worker: a task per connection costs more than most
        # filters. A filter slower than GROUP_HOLD makes the watchdog add a worker, so a slow
        # filter holds back only its own client. The queue is scheduled once it is filled (until
        # then it counts as taken, so _pump of other threads only adds to it).
        label = f'filter for {name!r}'
        work = _Work(name, data, caller(filt, 2, self.filter_timeout, label))
        work.consumers = 1
        items, busy = work.items, self._busy
        gone = 0
        for conn in connections:
            slot = _Slot(name, _PENDING, data, work)
            with conn.lock:
                if not conn.connected:
                    # Gone (maybe a moment ago: _forget has cleared its lane already, and a slot
                    # added now would wait, and count as pending, for ever).
                    gone += 1
                    continue
                conn.lane.append(slot)
                running = busy.get(conn)
                if running is None:  # the first unfiltered slot: earlier ones all ran
                    busy[conn] = slot
                    items.append((conn, slot))
                elif running.state != _PENDING:  # its filter in the pool was skipped, still runs
                    behind_stuck.append((conn, slot))
        if gone:
            self._done(gone)
        with work.lock:
            work.consumers = 0
            if work.items:
                work.consumers = 1
            else:  # every client still filters an earlier event: they join later
                work = None
        if work is not None:
            self._schedule(work)
        if behind_stuck:
            self._add_deadline(time.monotonic() + self.filter_timeout, behind_stuck)

    def _pump(self, conn: Connection) -> None:
        """Queue the filter of ``conn``'s first unfiltered slot on its event's work unless one is
        in the pool already (caller holds ``conn.lock``); start a worker for that work when none
        drains it."""
        if conn in self._busy or not conn.connected:
            return
        for slot in conn.lane:
            if slot.state == _PENDING and not slot.started:
                self._busy[conn] = slot
                work = slot.work
                with work.lock:
                    work.items.append((conn, slot))
                    if work.consumers:
                        return
                    work.consumers = 1
                self._schedule(work)
                return

    def _schedule(self, work: _Work) -> None:
        """Queue ``work`` (already counted as taken) for a worker loop; start one if none runs."""
        with self._sched_lock:
            self._runnable.append(work)
            if self._loops:
                return
            self._loops += 1
        self._get_pool().submit(self._run_queue)

    def _run_queue(self) -> None:
        """A worker loop: drain the runnable works in turn until none is left."""
        _local.worker = True
        with self._sched_lock:
            if not self._runnable:
                self._loops -= 1
                return
            work = self._runnable.popleft()
        while True:
            box = self._consume(work)
            with self._sched_lock:
                if box.rescued:
                    return  # held by a filter meanwhile: the loop that took over goes on
                box.finished = True
                if not self._runnable:
                    self._loops -= 1
                    return
                work = self._runnable.popleft()

    def _consume(self, work: _Work) -> _Outbox:
        """Run the filters queued on ``work`` until it is empty (several workers may share it);
        deliveries of the event's data unchanged go out in groups."""
        box = _Outbox(work.name, work.data, work)
        with self._watch:
            self._outboxes.add(box)
            if len(self._outboxes) == 1:  # the watchdog polls while there are outboxes
                self._ensure_watchdog()
                self._watch.notify()
        items = work.items
        try:
            while True:
                try:
                    conn, slot = items.popleft()  # several workers may pop: deque is atomic
                except IndexError:
                    with work.lock:  # empty: stop, unless _pump added one meanwhile
                        if items:
                            continue
                        work.consumers -= 1
                        return box
                box.current = (conn, slot)
                box.running_since = time.monotonic()
                self._run_filter(conn, slot, box)
                box.running_since = box.current = None
                if len(box.items) >= GROUP_MAX:
                    self._flush(box)
        finally:
            with self._watch:
                self._outboxes.discard(box)
            self._flush(box)

    def _flush(self, box: _Outbox) -> None:
        """Send what ``box`` holds: one broadcast per transport, then what queued behind."""
        with box.lock:
            items, box.items = box.items, []
            total = box.skipped
            skipped, box.skipped_counted = total - box.skipped_counted, total
        if skipped:
            self._done(skipped)
        if not items:
            return
        by_transport: Dict[str, List[Connection]] = {}
        for conn, _ in items:
            if conn.connected:
                by_transport.setdefault(conn.provider, []).append(conn)
        for provider, conns in by_transport.items():
            broadcast = self._transports.get(provider)
            try:
                if broadcast is not None:
                    broadcast(box.name, box.data, conns)
                else:
                    for conn in conns:
                        self._send(conn, box.name, box.data)
            except Exception:
                log.exception('sending %r to %d %s connections failed', box.name, len(conns),
                              provider)
        for conn, slot in items:
            with conn.lock:
                slot.state, slot.data, slot.work = _SEND, None, None
                if conn.lane and conn.lane[0] is slot:
                    conn.lane.popleft()
                    self._drain(conn)
        self._done(len(items))

    def _admit(self, count: int) -> None:
        """Count ``count`` new filtered deliveries as pending, first waiting while that would
        take the process past ``max_pending`` (backpressure: the service call that produced the
        event, and so its ack, waits instead of the backlog growing). One event is always let in
        when nothing is pending; a filter's own events never wait (its worker is what drains);
        nobody waits longer than ``filter_timeout``, after which every pending filter has ended
        or been skipped anyway."""
        with self._idle:
            if self._pending and self._pending + count > self.max_pending and \
                    not getattr(_local, 'worker', False):
                self._waiting += 1
                try:
                    with blocking():
                        room = self._idle.wait_for(
                            lambda: not self._pending or
                            self._pending + count <= self.max_pending, self.filter_timeout)
                    if not room:
                        log.warning('%d filtered deliveries still pending after %.1f s; '
                                    'dispatching one more event anyway', self._pending,
                                    self.filter_timeout)
                finally:
                    self._waiting -= 1
            self._pending += count
            if self._pending > self.peak_pending:
                self.peak_pending = self._pending

    def _done(self, count: int) -> None:
        """``count`` deliveries were sent or skipped."""
        with self._idle:
            self._pending -= count
            if self._pending == 0 or (self._waiting and self._pending < self.max_pending):
                self._idle.notify_all()

    def _run_filter(self, conn: Connection, slot: _Slot, box: _Outbox) -> None:
        """Run ``slot``'s filter for ``conn`` (a worker draining ``box``'s event): a delivery of
        the event's data unchanged joins ``box``'s group when it is next in ``conn``'s lane."""
        lock, busy = conn.lock, self._busy
        # Without the lock: a slot that times out (or a client that leaves) from here on is seen
        # under the lock below, after its filter ran.
        work = slot.work
        if slot.state != _PENDING or work is None or not conn.connected:
            # Timed out while waiting for a worker, or the client left.
            with lock:
                if busy.get(conn) is slot:
                    del busy[conn]
                self._pump(conn)
            return
        slot.started = True
        data = slot.data
        try:
            send, result = filter_outcome(work.call(data, conn.params), data)
        except Exception:
            log.exception('event filter for %r raised for connection %s; that client is '
                          'skipped', slot.name, conn.id)
            send, result = False, None
        with lock:
            if slot.state == _PENDING:  # else the watchdog timed it out meanwhile
                if send and result is data and conn.lane and conn.lane[0] is slot \
                        and conn.connected:
                    # Next to be sent to this client: keep it at the head of the lane (nothing
                    # passes it) until the grouped send; _flush counts it as delivered.
                    slot.state = _SENDING
                    with box.lock:
                        box.items.append((conn, slot))
                else:
                    slot.state, slot.data, slot.work = (_SEND if send else _SKIP), result, None
                    self._drain(conn)
                    box.skipped += 1
            if busy.get(conn) is slot:
                del busy[conn]
            if conn.lane:
                self._pump(conn)

    def _complete(self, conn: Connection, slot: _Slot, state: int, data: Any) -> None:
        """Fill ``slot`` from outside its worker (a time-out): sent or skipped as ``state``."""
        with conn.lock:
            if slot.state != _PENDING:
                return
            slot.state, slot.data, slot.work = state, data, None
            self._drain(conn)
        self._done(1)

    def _drain(self, conn: Connection) -> None:
        """Send what is ready at the head of ``conn``'s lane (caller holds ``conn.lock``)."""
        lane = conn.lane
        while lane and lane[0].state in (_SEND, _SKIP):
            slot = lane.popleft()
            if slot.state == _SEND and conn.connected:
                self._send(conn, slot.name, slot.data)

    @staticmethod
    def _send(conn: Connection, name: str, data: Any) -> None:
        try:
            conn.send(name, data)
        except Exception:
            log.exception('sending %r to connection %s failed; skipped', name, conn.id)

    def _forget(self, conn: Connection) -> None:
        with conn.lock:
            pending = [s for s in conn.lane if s.state == _PENDING]
            for slot in pending:
                slot.state, slot.data, slot.work = _SKIP, None, None
            conn.lane.clear()
        if pending:
            self._done(len(pending))

    # -- timeouts --------------------------------------------------------------------------------
    def _get_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._watch:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.workers,
                                                    thread_name_prefix='feathers-filter')
        return self._pool

    def _add_deadline(self, deadline: float, batch: List[Tuple[Connection, _Slot]]) -> None:
        with self._watch:
            entry = (deadline, next(self._deadline_seq), batch)
            heapq.heappush(self._deadlines, entry)
            self._ensure_watchdog()
            if self._deadlines[0] is entry:
                # Only a new earliest deadline changes the watchdog's sleep: waking it for every
                # filter that starts costs a thread switch each.
                self._watch.notify()

    def _ensure_watchdog(self) -> None:
        """Start the watchdog thread once (caller holds ``self._watch``)."""
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch_loop, daemon=True,
                                              name='feathers-filter-watchdog')
            self._watchdog.start()

    def _rescue(self) -> None:
        """For every worker stuck in a filter for GROUP_HOLD: send what it holds, and let one more
        worker take over the rest of its event's queue."""
        now = time.monotonic()
        for box in list(self._outboxes):
            since = box.running_since
            if since is None or now - since < GROUP_HOLD:
                continue
            current = box.current
            if current is not None and now - since >= self.filter_timeout:
                self._time_out(*current)
            self._flush(box)
            with self._sched_lock:
                if box.rescued or box.finished:
                    continue
                # This worker is held by a filter: its loop no longer counts (it ends after the
                # filter) and another one takes over the rest of its event's queue and the
                # events queued behind it.
                box.rescued = True
                self._loops -= 1
                work = box.work
                with work.lock:
                    if work.items:
                        work.consumers += 1
                        self._runnable.appendleft(work)
                if not self._runnable:
                    continue
                self._loops += 1
            self._get_pool().submit(self._run_queue)

    def _watch_loop(self) -> None:
        while not self._closed:
            if self._outboxes:
                self._rescue()
            with self._watch:
                poll = GROUP_HOLD if self._outboxes else None
                if not self._deadlines:
                    self._watch.wait(poll)
                    continue
                deadline = self._deadlines[0][0]
                now = time.monotonic()
                if deadline > now:
                    self._watch.wait(deadline - now if poll is None else min(poll, deadline - now))
                    continue
                _, _, batch = heapq.heappop(self._deadlines)
            for conn, slot in batch:
                if slot.state != _PENDING or slot.started:
                    continue  # done, or running (timed out through its worker's outbox)
                log.warning('event filter for %r waited %g s behind a filter that timed out for '
                            'connection %s; that client is skipped', slot.name,
                            self.filter_timeout, conn.id)
                self._complete(conn, slot, _SKIP, None)

    def _time_out(self, conn: Connection, slot: _Slot) -> None:
        """Skip a running filter that outlived ``filter_timeout`` (from the watchdog)."""
        if slot.state != _PENDING or not slot.started:
            return
        log.warning('event filter for %r took longer than %g s for connection %s; that client '
                    'is skipped', slot.name, self.filter_timeout, conn.id)
        self._complete(conn, slot, _SKIP, None)
        # Its later events wait for this worker; they get one timeout more.
        with conn.lock:
            waiting = [(conn, s) for s in conn.lane if s.state == _PENDING and not s.started]
        if waiting:
            self._add_deadline(time.monotonic() + self.filter_timeout, waiting)
