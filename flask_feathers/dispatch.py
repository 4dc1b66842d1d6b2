"""One service event -> deliveries to this process's connections, through per-client filters.

Rules (docs/protocol.rst, "Per-client event filters"):

* The service method named like the event (``created``, ``updated``, a custom name) is the filter.
  It runs once per connection with ``(data, connection.params)`` (plus a callback in callback style),
  in a bounded worker pool. A truthy result is sent (``True`` sends the data unchanged), a falsy one
  (as JavaScript sees it: None, False, 0, '') sends nothing. A filter that raises or outlives
  ``filter_timeout`` skips that client only.
* Without a filter, every connection gets the data unchanged: one ``broadcast`` per transport, so the
  packet is encoded once (the fast path).
* Every connection receives events in the order they were dispatched. Each connection has a *lane*:
  the events waiting for it, in dispatch order (an unfiltered event joins it while earlier ones
  wait there). A connection with a non-empty lane is *ready*; worker loops take ready connections
  in turn and handle one at a time: its waiting filters one after the other (up to
  :data:`BATCH_MAX`), then one write of everything they let through (the transport's ``write``:
  one system call on a handed-over websocket; the encoding of data sent unchanged is made once per
  event and shared). So under load a client's events go out together, and the cost per delivery
  is a filter call and a share of a write, with no lock or task per delivery (profiled: the
  per-event grouping this replaced spent most of its time in four lock round trips per delivery).
* One loop drains the ready queue (more threads on one GIL only slow a burst down). When a filter
  holds a loop for ``GROUP_HOLD``, the watchdog writes what that loop filtered so far and starts
  another loop for the other connections, so a slow filter delays only its own client.
* A connection is handled by at most one loop at a time, so a client whose filter hangs occupies
  one worker, never the whole pool: the other clients keep their events. Filters of different
  clients run in parallel.
* Time-outs: a running filter is skipped ``filter_timeout`` after it started. Its client's later
  events then wait for that worker at most ``filter_timeout`` more (counted from the time-out, or
  from their dispatch when later) before they are skipped too, so a hung filter leaves a bounded
  lane and :meth:`Dispatcher.wait_idle` returns. Size the pool above the number of clients whose
  filters may hang at once: a client waiting only for a free worker is never skipped.
* Pending deliveries are bounded (``max_pending``, :meth:`Dispatcher._admit`): past the bound the
  call that produces an event waits for room (backpressure), so memory and latency stay bounded.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, ContextManager, Deque, Dict, List, Optional, Sequence, Tuple

from ._waits import blocking
from .channels import Publishers, deliveries
from .connections import Connection, ConnectionRegistry
from .encoding import jsonable
from .hooks import emitting_context
from .service import caller, invoke, js_falsy, member

log = logging.getLogger(__name__)

#: ``broadcast(event_name, data, connections)``: deliver the same data to several connections of
#: one transport at once.
Broadcast = Callable[[str, Any, Sequence[Connection]], None]
#: ``write(connection, deliveries)``: deliver several events to one connection at once, in order.
#: ``deliveries`` are ``(event_name, data, shared)``; ``shared`` is a dict of the event where the
#: transport may keep its encoding of ``data`` for the other connections that get it unchanged
#: (None when the data is this connection's own: a filter changed it).
Write = Callable[[Connection, List[Tuple[str, Any, Optional[Dict[str, Any]]]]], None]

DEFAULT_FILTER_WORKERS = 8
DEFAULT_FILTER_TIMEOUT = 10.0
#: Filtered deliveries that may wait in the process (FEATHERS_MAX_PENDING) before the calls that
#: produce events wait for them: at about 30,000 filtered deliveries a second, a fifth of a
#: second of backlog, a few MB.
DEFAULT_MAX_PENDING = 5000

#: set on the dispatcher's own worker threads: an event a filter produces never waits for room
_local = threading.local()

#: While a worker loop runs one filter for longer than this (seconds), the watchdog writes what
#: the loop filtered so far and starts another loop for the other connections.
GROUP_HOLD = 0.005
#: Events of one connection a loop takes from its lane at once: filtered one after the other and
#: written together (one system call on a handed-over websocket).
BATCH_MAX = 64
#: Seconds a worker loop keeps one app context before it takes a fresh one.
CONTEXT_SECONDS = 0.1


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


class EventContext(dict):
    """What a publisher gets as ``context`` when the call's hook context is not at hand (an event
    that came over the message queue, or emitted with ``service.emit``): ``path``, ``event``,
    ``service`` and ``data`` as attributes (and as keys), ``params`` empty."""

    def __init__(self, path: str, event: str, service: Any, data: Any) -> None:
        super().__init__(path=path, event=event, service=service, data=data)
        self.path = path
        self.event = event
        self.service = service
        self.data = data
        self.params: Dict[str, Any] = {}
        self.method: Optional[str] = None


class _Event:
    """One dispatched event on its way through the lanes of its connections. ``call`` is the
    filter (None: the data goes out unchanged, an unfiltered event queued behind filtered ones);
    ``shared`` is where transports cache the event's encoding, made once for every connection
    that gets the data unchanged."""

    __slots__ = ('name', 'data', 'call', 'dispatched', 'shared')

    def __init__(self, name: str, data: Any, call: Optional[Callable[[Any, Dict[str, Any]], Any]],
                 dispatched: float) -> None:
        self.name = name
        self.data = data
        self.call = call
        self.dispatched = dispatched
        self.shared: Dict[str, Any] = {}


class _Loop:
    """What the watchdog sees of one worker loop."""

    __slots__ = ('conn', 'batch', 'out', 'out_lock', 'lock', 'progress', 'running', 'seen',
                 'seen_at', 'rescued', 'timed_out', 'timed_out_at', 'skipped_current')

    def __init__(self) -> None:
        #: the connection whose events this loop handles now, and the ones it took from its lane
        self.conn: Optional[Connection] = None
        self.batch: Deque[_Event] = collections.deque()
        #: deliveries filtered and not written yet (the watchdog writes them for a stuck loop)
        self.out: Deque[Tuple[str, Any, Optional[Dict[str, Any]]]] = collections.deque()
        self.out_lock = threading.Lock()
        #: the loop and the watchdog agree under it on whether the running filter timed out
        self.lock = threading.Lock()
        #: filters run so far; the watchdog compares it between its polls
        self.progress = 0
        #: a filter runs now
        self.running = False
        self.seen = -1
        self.seen_at = 0.0
        #: another loop took over the queue (this one ends with its connection)
        self.rescued = False
        #: the running filter outlived filter_timeout (the watchdog counted it as skipped)
        self.timed_out = False
        self.timed_out_at = 0.0
        self.skipped_current = False


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
                 max_pending: int = DEFAULT_MAX_PENDING,
                 context: Optional[Callable[[], ContextManager[Any]]] = None) -> None:
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
        #: ``context()`` -> the context manager filters run in (the Flask app context)
        self.context = context or contextlib.nullcontext
        #: producers waiting for room (see _admit)
        self._waiting = 0
        #: the most deliveries that were ever pending at once (tests, bench)
        self.peak_pending = 0
        self._transports: Dict[str, Broadcast] = {}
        self._writers: Dict[str, Write] = {}
        self._order_lock = threading.Lock()
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pending = 0
        self._idle = threading.Condition()
        #: connections with events to handle and no loop on them yet, oldest first
        self._ready: Deque[Connection] = collections.deque()
        self._sched_lock = threading.Lock()
        #: worker loops running (one drains the ready queue; the watchdog adds one when a filter
        #: holds a loop for GROUP_HOLD)
        self._loops = 0
        self._active: 'set[_Loop]' = set()
        self._watchdog: Optional[threading.Thread] = None
        self._watch = threading.Condition()
        self._closed = False
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
        hook_context = emitting_context()
        context: Any
        if hook_context is not None and hook_context.path == path and \
                hook_context.event == event:
            context = hook_context  # the call's own context, as Feathers 5 passes it
        else:  # an event from a message queue (another process), or emitted by hand
            context = EventContext(path, event, wrapped, data)
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
        queued = None
        for conn in connections:
            if conn.busy:
                with conn.lock:
                    if conn.busy:
                        # Earlier events for this client are still being filtered (or written):
                        # queue behind them.
                        if queued is None:
                            queued = _Event(name, data, None, time.monotonic())
                        conn.lane.append(queued)
                        self._add_pending(1)
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
        event = _Event(name, data, caller(filt, 2, self.filter_timeout, f'filter for {name!r}'),
                       time.monotonic())
        gone = 0
        newly: List[Connection] = []
        for conn in connections:
            if not conn.connected:
                gone += 1
                continue
            # Appended first, then the loop looked for: a loop finishing with this connection
            # checks its lane under the lock after clearing nothing, so the event is never missed.
            conn.lane.append(event)
            if not conn.busy:
                with conn.lock:
                    if not conn.busy:
                        conn.busy = True
                        newly.append(conn)
        if gone:
            self._done(gone)
        if newly:
            self._schedule(newly)

    def _add_pending(self, count: int) -> None:
        with self._idle:
            self._pending += count

    def _schedule(self, conns: List[Connection]) -> None:
        """Queue ``conns`` (marked busy) for a worker loop; start one if none runs."""
        with self._sched_lock:
            self._ready.extend(conns)
            if self._loops:
                return
            self._loops += 1
        self._get_pool().submit(self._run_loop)

    def _run_loop(self) -> None:
        """A worker loop: handle the ready connections in turn until none is left."""
        _local.worker = True
        loop = _Loop()
        with self._watch:
            self._active.add(loop)
            if len(self._active) == 1:
                self._ensure_watchdog()
                self._watch.notify()
        # Filters run in the app's context (current_app, g, the database session of
        # Flask-SQLAlchemy): one for a while, not one per filter (pushing one costs about as much
        # as a filter call); a fresh one every CONTEXT_SECONDS, so its teardown runs.
        scope = self.context()
        scope.__enter__()
        since = time.monotonic()
        try:
            while True:
                with self._sched_lock:
                    if loop.rescued:
                        return  # held by a filter meanwhile: the loop that took over goes on
                    if not self._ready:
                        self._loops -= 1
                        return
                    conn = self._ready.popleft()
                self._handle(conn, loop)
                if time.monotonic() - since >= CONTEXT_SECONDS:
                    scope.__exit__(None, None, None)
                    scope = self.context()
                    scope.__enter__()
                    since = time.monotonic()
        finally:
            scope.__exit__(None, None, None)
            with self._watch:
                self._active.discard(loop)

    def _handle(self, conn: Connection, loop: _Loop) -> None:
        """Run ``conn``'s waiting filters in order and write what they let through at once
        (one system call for all of them on a handed-over websocket)."""
        lane, batch, out = conn.lane, loop.batch, loop.out
        with conn.lock:
            conn.busy = loop
            for _ in range(BATCH_MAX):
                if not lane:
                    break
                batch.append(lane.popleft())
        loop.conn = conn
        params = conn.params
        done = 0
        while True:
            try:
                event = batch.popleft()  # the watchdog may take some (a hung filter)
            except IndexError:
                break
            done += 1
            call = event.call
            if call is None:
                out.append((event.name, event.data, event.shared))
                continue
            if not conn.connected:
                continue
            loop.progress += 1
            loop.running = True
            data = event.data
            try:
                send, result = filter_outcome(call(data, params), data)
            except Exception:
                log.exception('event filter for %r raised for connection %s; that client is '
                              'skipped', event.name, conn.id)
                send = False
            with loop.lock:
                loop.running = False
                skipped, loop.skipped_current = loop.skipped_current, False
            if skipped:  # timed out meanwhile: skipped and counted by the watchdog
                done -= 1
                continue
            if send:
                out.append((event.name, result, event.shared if result is data else None))
        self._write_out(conn, loop)
        loop.conn = None
        loop.timed_out = False
        with conn.lock:
            if lane:
                conn.busy = again = True
            else:
                conn.busy = again = False
        if again:  # more came meanwhile: behind the other ready connections
            self._schedule([conn])
        if done:
            self._done(done)

    def _write_out(self, conn: Connection, loop: _Loop) -> None:
        """Write what ``loop`` filtered for ``conn`` (its loop, or the watchdog for a stuck
        one)."""
        with loop.out_lock:
            out = loop.out
            items = []
            while True:  # the loop appends without the lock: take exactly what is there
                try:
                    items.append(out.popleft())
                except IndexError:
                    break
            if not items or not conn.connected:
                return
            write = self._writers.get(conn.provider)
            try:
                if write is not None:
                    write(conn, items)
                else:
                    for name, data, _ in items:
                        conn.send(name, data)
            except Exception:
                log.exception('sending %d events to connection %s failed; skipped', len(items),
                              conn.id)

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

    @staticmethod
    def _send(conn: Connection, name: str, data: Any) -> None:
        try:
            conn.send(name, data)
        except Exception:
            log.exception('sending %r to connection %s failed; skipped', name, conn.id)

    def _forget(self, conn: Connection) -> None:
        """``conn`` left: what waits for it no longer counts as pending, a filter running for it
        included (its loop drops the result)."""
        dropped = 0
        with conn.lock:
            queues = [conn.lane]
            loop = conn.busy
            if isinstance(loop, _Loop):
                queues.append(loop.batch)
                with loop.lock:
                    if loop.running and loop.conn is conn and not loop.skipped_current:
                        loop.skipped_current = True
                        dropped += 1
            for queue in queues:
                while True:
                    try:
                        queue.popleft()
                    except IndexError:
                        break
                    dropped += 1
        if dropped:
            self._done(dropped)

    # -- the watchdog ----------------------------------------------------------------------------
    def _get_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._watch:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.workers,
                                                    thread_name_prefix='feathers-filter')
        return self._pool

    def _ensure_watchdog(self) -> None:
        """Start the watchdog thread once (caller holds ``self._watch``)."""
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch_loop, daemon=True,
                                              name='feathers-filter-watchdog')
            self._watchdog.start()

    def _watch_loop(self) -> None:
        while not self._closed:
            with self._watch:
                if not self._active:
                    self._watch.wait()
                    continue
                loops = list(self._active)
            now = time.monotonic()
            for loop in loops:
                self._check(loop, now)
            with self._watch:
                self._watch.wait(GROUP_HOLD)

    def _check(self, loop: _Loop, now: float) -> None:
        """A loop whose filter made no progress for GROUP_HOLD: write what it filtered so far and
        let another loop take the queue; past filter_timeout skip that filter, then the client's
        later events as they wait filter_timeout more."""
        conn = loop.conn
        progress = loop.progress
        if conn is None or not loop.running or progress != loop.seen:
            loop.seen, loop.seen_at = progress, now
            return
        held = now - loop.seen_at
        if held < GROUP_HOLD:
            return
        self._write_out(conn, loop)
        if not loop.rescued:
            with self._sched_lock:
                loop.rescued = True
                # its count goes to a new loop, which takes over the ready queue
                start = True
            if start:
                self._get_pool().submit(self._run_loop)
        if held >= self.filter_timeout and not loop.timed_out:
            with loop.lock:
                if not loop.running or loop.progress != progress:
                    return  # it returned just now
                loop.timed_out = True
                loop.timed_out_at = now
                loop.skipped_current = True
            log.warning('event filter for connection %s took longer than %g s; that client is '
                        'skipped for that event', conn.id, self.filter_timeout)
            self._done(1)
        if loop.timed_out:
            self._skip_behind(conn, loop, now)

    def _skip_behind(self, conn: Connection, loop: _Loop, now: float) -> None:
        """Events of ``conn`` waiting behind its hung filter: each is skipped once it waited
        filter_timeout from the time-out (or from its dispatch, when later); unfiltered ones go
        out when they reach the head."""
        skipped = 0
        for queue in (loop.batch, conn.lane):
            while queue:
                try:
                    event = queue[0]
                except IndexError:
                    break
                if event.call is not None and \
                        now < max(loop.timed_out_at, event.dispatched) + self.filter_timeout:
                    return self._finish_skips(conn, loop, skipped)
                try:
                    taken = queue.popleft()
                except IndexError:
                    break
                if taken is not event:  # the loop woke up and took it: put it back
                    queue.appendleft(taken)
                    return self._finish_skips(conn, loop, skipped)
                if event.call is None:
                    loop.out.append((event.name, event.data, event.shared))
                    self._done(1)
                else:
                    log.warning('event filter for %r waited %g s behind a filter that timed out '
                                'for connection %s; that client is skipped', event.name,
                                self.filter_timeout, conn.id)
                    skipped += 1
        self._finish_skips(conn, loop, skipped)

    def _finish_skips(self, conn: Connection, loop: _Loop, skipped: int) -> None:
        self._write_out(conn, loop)
        if skipped:
            self._done(skipped)
