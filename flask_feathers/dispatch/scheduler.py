"""Worker loops over the ready lanes, and the watchdog that keeps one slow filter from holding
back other clients.

Threads: worker loops run on a pool of ``workers`` threads (``feathers-filter-N``); one loop
drains the ready queue (more threads on one GIL only slow a burst down). The watchdog thread
(``feathers-filter-watchdog``) polls the active loops every :data:`GROUP_HOLD` while any runs.

What a loop shares with the watchdog is one record, :attr:`_Loop.running`: ``(lane, event)`` of
the filter it runs now, replaced as a whole (a new tuple per filter call, None between calls).
The watchdog reads it once per poll and acts on that record only: whatever it does for a held
filter (write what the loop filtered, time the filter out, skip the events behind it) it does
under a lock of that loop after checking that the record is still the loop's, so it can never
take the next filter a worker just started for the one it saw hanging
(``tests/test_dispatch.py`` plays that interleaving in one thread).
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Callable, Deque, List, Optional, Set, Tuple

from ..connections import Connection
from .delivery import Delivery, Event, filter_outcome
from .lanes import Lane
from .pending import Pending, mark_worker_thread

log = logging.getLogger(__name__)

#: While a worker loop runs one filter for longer than this (seconds), the watchdog writes what
#: the loop filtered so far and starts another loop for the other connections.
GROUP_HOLD = 0.005
#: Events of one connection a loop takes from its lane at once: filtered one after the other and
#: written together (one system call on a handed-over websocket).
BATCH_MAX = 64
#: Seconds a worker loop keeps one app context before it takes a fresh one.
CONTEXT_SECONDS = 0.1

#: ``(lane, event)``: the filter a loop runs now
Running = Tuple[Lane, Event]


class _Loop:
    """One worker loop, as the watchdog and a leaving client see it."""

    __slots__ = ('running', 'out', 'lock', 'write_lock', 'cancelled', 'rescued', 'seen',
                 'seen_at', 'timed_out', 'timed_out_at')

    def __init__(self) -> None:
        #: the filter this loop runs now, or None (set by the loop alone, cleared under ``lock``)
        self.running: Optional[Running] = None
        #: deliveries filtered for the lane of this turn and not written yet
        self.out: Deque[Delivery] = collections.deque()
        #: the loop, the watchdog and a leaving client agree under it on who counts ``running``
        self.lock = threading.Lock()
        #: what ``out`` holds goes out one write at a time, in order (the loop's or the watchdog's)
        self.write_lock = threading.Lock()
        #: the record whose result is dropped (timed out, or its client left): counted already
        self.cancelled: Optional[Running] = None
        #: another loop took over the ready queue (this one ends with its lane); scheduler's lock
        self.rescued = False
        #: the watchdog's own: the record it saw at its last poll, since when, and the one it
        #: timed out (then at what time)
        self.seen: Optional[Running] = None
        self.seen_at = 0.0
        self.timed_out: Optional[Running] = None
        self.timed_out_at = 0.0


class Scheduler:
    """The ready queue of lanes, the worker loops that drain it, and their watchdog.

    :param workers: size of the worker pool.
    :param filter_timeout: seconds a filter may run before its client is skipped for that event.
    :param pending: the dispatcher's count of pending deliveries.
    :param write: ``write(connection, deliveries)``: send what a loop filtered for a connection.
    :param context: ``context()`` -> the context manager filters run in (the Flask app context).
    """

    def __init__(self, workers: int, filter_timeout: float, pending: Pending,
                 write: Callable[[Connection, List[Delivery]], None],
                 context: Callable[[], AbstractContextManager[object]]) -> None:
        self.workers = workers
        self.filter_timeout = filter_timeout
        self.pending = pending
        self.write = write
        self.context = context
        #: guards the ready queue, the loop count, ``_Loop.rescued`` and the active set; the
        #: watchdog waits on it
        self._lock = threading.Condition()
        #: busy lanes no loop works on yet, oldest first
        self._ready: Deque[Lane] = collections.deque()
        #: loops running or submitted (one drains the ready queue; a rescue hands its count on)
        self._loops = 0
        self._active: Set[_Loop] = set()
        self.pool: Optional[ThreadPoolExecutor] = None
        self._watchdog: Optional[threading.Thread] = None
        self._closed = False

    def schedule(self, lanes: List[Lane]) -> None:
        """Queue busy ``lanes`` for a worker loop; start one if none runs."""
        with self._lock:
            self._ready.extend(lanes)
            if self._loops:
                return
            self._loops += 1
        self._submit()

    def cancel(self, conn: Connection) -> int:
        """``conn`` left: drop the result of a filter a loop runs for it now; 1 when one was
        dropped (it no longer counts as pending), else 0."""
        with self._lock:
            loops = list(self._active)
        dropped = 0
        for loop in loops:
            run = loop.running
            if run is not None and run[0].conn is conn:
                with loop.lock:
                    if loop.running is run and loop.cancelled is not run:
                        loop.cancelled = run
                        dropped += 1
        return dropped

    def close(self) -> None:
        """Stop the worker pool and the watchdog."""
        self._closed = True
        with self._lock:
            self._lock.notify_all()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self) -> None:
        with self._lock:
            if self.pool is None:
                self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix='feathers-filter')
            pool = self.pool
        pool.submit(self._run_loop)

    # -- a worker loop ---------------------------------------------------------------------------
    def _run_loop(self) -> None:
        """Handle the ready lanes in turn until none is left."""
        mark_worker_thread()
        loop = _Loop()
        with self._lock:
            self._active.add(loop)
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, daemon=True,
                                                  name='feathers-filter-watchdog')
                self._watchdog.start()
            elif len(self._active) == 1:
                self._lock.notify()
        # Filters run in the app's context (current_app, g, the database session of
        # Flask-SQLAlchemy): one for a while, not one per filter (pushing one costs about as much
        # as a filter call); a fresh one every CONTEXT_SECONDS, so its teardown runs.
        scope = self.context()
        scope.__enter__()
        since = time.monotonic()
        try:
            while True:
                with self._lock:
                    if loop.rescued:
                        return  # held by a filter meanwhile: the loop that took over goes on
                    if not self._ready:
                        self._loops -= 1
                        return
                    lane = self._ready.popleft()
                self._turn(loop, lane)
                if time.monotonic() - since >= CONTEXT_SECONDS:
                    scope.__exit__(None, None, None)
                    scope = self.context()
                    scope.__enter__()
                    since = time.monotonic()
        finally:
            scope.__exit__(None, None, None)
            with self._lock:
                self._active.discard(loop)

    def _turn(self, loop: _Loop, lane: Lane) -> None:
        """Run ``lane``'s waiting filters in order (at most :data:`BATCH_MAX`) and write what
        they let through at once (one system call for all of them on a handed-over websocket)."""
        conn = lane.conn
        events, out, params = lane.events, loop.out, conn.params
        done = 0
        for _ in range(BATCH_MAX):
            try:
                event = events.popleft()  # the watchdog or a leaving client may take some too
            except IndexError:
                break
            done += 1
            call = event.call
            if call is None:
                out.append((event.name, event.data, event.shared))
                continue
            if not conn.connected:
                continue
            loop.running = run = (lane, event)
            data = event.data
            try:
                send, result = filter_outcome(call(data, params), data)
            except Exception:
                log.exception('event filter for %r raised for connection %s; that client is '
                              'skipped', event.name, conn.id)
                send = False
            with loop.lock:
                loop.running = None
                dropped = loop.cancelled is run
            if dropped:  # timed out, or its client left: counted already
                done -= 1
            elif send:
                out.append((event.name, result, event.shared if result is data else None))
        self._write_out(loop, conn, None)
        if lane.release():  # more came meanwhile: behind the other ready lanes
            self.schedule([lane])
        if done:
            self.pending.done(done)

    def _write_out(self, loop: _Loop, conn: Connection, run: Optional[Running]) -> None:
        """Write what ``loop`` filtered for ``conn``: at the end of its turn (``run`` None), or
        for the watchdog while the loop is still in the filter ``run`` (else the loop writes)."""
        with loop.write_lock:
            if run is not None and loop.running is not run:
                return
            out = loop.out
            items = []
            while True:  # the loop appends without the lock: take exactly what is there
                try:
                    items.append(out.popleft())
                except IndexError:
                    break
            if items and conn.connected:
                self.write(conn, items)

    # -- the watchdog ----------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._closed:
            with self._lock:
                if not self._active:
                    self._lock.wait()
                    continue
                loops = list(self._active)
            now = time.monotonic()
            for loop in loops:
                self.check(loop, loop.running, now)
            with self._lock:
                self._lock.wait(GROUP_HOLD)

    def check(self, loop: _Loop, run: Optional[Running], now: float) -> None:
        """One poll of ``loop``, whose running record read ``run`` (once, by the caller). A filter
        held for GROUP_HOLD: write what the loop filtered so far and let another loop take the
        ready queue; past filter_timeout skip that filter, then its client's later events as
        they wait filter_timeout more."""
        if run is None or run is not loop.seen:
            loop.seen, loop.seen_at = run, now
            return
        held = now - loop.seen_at
        if held < GROUP_HOLD or loop.running is not run:
            return  # (it returned since the caller read it: nothing is held)
        conn = run[0].conn
        self._write_out(loop, conn, run)
        if not loop.rescued:
            with self._lock:
                loop.rescued = True  # its count goes to the new loop, which takes the queue
            self._submit()
        if held >= self.filter_timeout and loop.timed_out is not run:
            with loop.lock:
                if loop.running is not run:
                    return  # it returned just now
                counted = loop.cancelled is run  # its client left: dropped already
                loop.cancelled = loop.timed_out = run
                loop.timed_out_at = now
            if not counted:
                log.warning('event filter for connection %s took longer than %g s; that client '
                            'is skipped for that event', conn.id, self.filter_timeout)
                self.pending.done(1)
        if loop.timed_out is run:
            self._skip_behind(loop, run, now)

    def _skip_behind(self, loop: _Loop, run: Running, now: float) -> None:
        """Events waiting behind the timed-out filter ``run``: each is skipped once it waited
        filter_timeout from the time-out (or from its dispatch, when later); unfiltered ones go
        out when they reach the head. Only while the loop is still in that filter: once it
        returns, the loop takes the rest."""
        lane = run[0]
        events = lane.events
        skipped: List[str] = []
        sent = 0
        with loop.lock:
            if loop.running is not run:
                return
            with lane.lock:
                while events:
                    event = events[0]
                    if event.call is not None and \
                            now < max(loop.timed_out_at, event.dispatched) + self.filter_timeout:
                        break
                    events.popleft()
                    if event.call is None:
                        loop.out.append((event.name, event.data, event.shared))
                        sent += 1
                    else:
                        skipped.append(event.name)
        for name in skipped:
            log.warning('event filter for %r waited %g s behind a filter that timed out for '
                        'connection %s; that client is skipped', name, self.filter_timeout,
                        lane.conn.id)
        if sent or skipped:
            self._write_out(loop, lane.conn, run)
            self.pending.done(sent + len(skipped))
