"""An elastic pool of reusable worker threads for application code.

Everything a socket connection asks of the application (a service call, a connect hook, a
disconnect handler, Socket.IO's ``async_handlers``) runs on one of these threads, never on the
hub's I/O thread. The pool hands a task to an idle thread, starts one while fewer than
``soft_max`` run, and otherwise queues it; a queued task that waited ``grace`` seconds gets a
thread of its own, so there is no hard upper bound and a task that blocks (a slow hook, a
long-running background task) never starves the others for long. Idle threads end after
``idle_timeout`` seconds. A reconnect storm of thousands of clients is so served by a few
threads, instead of a thread per connection and per event that only fight over the GIL
(measured: 2,000 reconnecting clients started over 500 worker threads before the queue).

Concurrency: ``_lock`` guards ``_idle`` (a stack, so the most recently used thread is reused
first and the coldest ones time out), ``_queue``, ``_watching``, ``_count``, ``_blocked`` and
``_progress``. A task for an
idle worker is handed over directly (its ``task`` slot, then its ``wake`` lock is released); a
worker takes queued tasks before it goes idle; one watcher thread exists while tasks queue.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Tuple

from .._waits import _current

log = logging.getLogger(__name__)

#: Seconds an idle worker waits for work before its thread ends.
DEFAULT_IDLE_TIMEOUT = 2.0
#: Runnable threads (busy, not in :func:`blocking` (``flask_feathers._waits``)) before tasks queue for a free one.
DEFAULT_SOFT_MAX = 16
#: Seconds the queue may make no progress before the watcher starts one more thread.
DEFAULT_GRACE = 0.05

Task = Tuple[Callable[..., Any], Tuple[Any, ...]]



class _Worker:
    __slots__ = ('wake', 'task')

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.task: Optional[Task] = None


class Workers:
    """``submit(fn, *args)`` runs ``fn(*args)`` on a pooled thread; exceptions are logged.

    Up to ``soft_max`` runnable threads start as work comes in. Past that a task waits in a
    queue for the next free thread; threads in :func:`blocking` (``flask_feathers._waits``) do not count, and when the queue
    made no progress for ``grace`` seconds another thread starts (one per ``grace``). Thousands
    of short tasks at once (a reconnect storm) so run on a few threads instead of starting one
    each, where they only fight over the GIL; a task that blocks (a slow hook, a call waiting for
    another task) still never waits for long.
    """

    def __init__(self, name: str = 'flask-feathers-worker',
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, soft_max: int = DEFAULT_SOFT_MAX,
                 grace: float = DEFAULT_GRACE) -> None:
        self.name = name
        self.idle_timeout = idle_timeout
        self.soft_max = soft_max
        self.grace = grace
        self._lock = threading.Lock()
        self._idle: List[_Worker] = []
        self._queue: Deque[Tuple[float, Task]] = collections.deque()
        #: a watcher thread is alive; parked on ``_watch_wait`` while the queue is empty
        self._watching = False
        self._watcher_parked = False
        self._watch_wait = threading.Condition(self._lock)
        self._count = 0
        #: threads inside blocking()
        self._blocked = 0
        #: when a queued task last got a thread (the watcher's measure of progress)
        self._progress = 0.0
        self._serial = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a pooled thread; when all are busy, after the tasks queued."""
        self._submit((fn, args), False)

    def submit_next(self, fn: Callable[..., Any], *args: Any) -> None:
        """Like :meth:`submit`, but when all threads are busy, ahead of the tasks queued: what an
        open connection asked for goes before new connections' handshakes, so a reconnect
        storm neither holds up the calls of clients already back nor delays each client's
        second step (Socket.IO's CONNECT) behind every other client's first."""
        self._submit((fn, args), True)

    def _submit(self, task: Task, first: bool) -> None:
        action = None
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            if worker is None:
                if self._count - self._blocked < self.soft_max:
                    self._count += 1
                    action = 'start'
                elif first and self._queue:
                    # stamped as the oldest: the watcher measures the wait of the queue's head
                    # (and, the queue not being empty, is already awake for it)
                    self._queue.appendleft((self._queue[0][0], task))
                else:
                    self._queue.append((time.monotonic(), task))
                    if not self._watching:
                        self._watching = True
                        action = 'watch'
                    elif self._watcher_parked:
                        self._watch_wait.notify()
        if worker is not None:
            worker.task = task
            worker.wake.release()
        elif action == 'start':
            self._spawn(task, self._run, None)
        elif action == 'watch':
            self._spawn(None, self._watch, 'watch')

    def _spawn(self, task: Optional[Task], target: Callable[..., Any], role: Optional[str]) -> None:
        # The task goes in the worker's slot, not in the thread's args, which the thread keeps
        # (and so the task's arguments: a big message) for its whole life.
        worker = _Worker()
        worker.task = task
        with self._lock:
            self._serial += 1
            name = f'{self.name}-{role or self._serial}'
        thread = threading.Thread(target=target, args=(worker,), daemon=True, name=name)
        try:
            thread.start()
        except RuntimeError:  # can't start new thread (a limit of the system): run it here
            log.error('could not start a worker thread (%d running); running the task inline',
                      self._count)
            if role is None:
                with self._lock:
                    self._count -= 1
                worker.task = None
                if task is not None:
                    self._execute(task)

    def _block(self) -> None:
        task = None
        with self._lock:
            self._blocked += 1
            if self._queue and self._count - self._blocked < self.soft_max:
                task = self._queue.popleft()[1]
                self._count += 1
                self._progress = time.monotonic()
        if task is not None:
            self._spawn(task, self._run, None)

    def _unblock(self) -> None:
        with self._lock:
            self._blocked -= 1

    def _watch(self, _: _Worker) -> None:
        """While tasks wait: start one more thread whenever the queue made no progress (no task
        got a thread) for ``grace`` seconds: the busy threads are stuck in waits nobody marked.
        Once the queue is empty the watcher stays parked for ``idle_timeout`` (a storm fills and
        empties the queue again and again: a thread started each time cost a tenth of the CPU)."""
        while True:
            with self._lock:
                if not self._queue:
                    self._watcher_parked = True
                    self._watch_wait.wait(self.idle_timeout)
                    self._watcher_parked = False
                    if not self._queue:
                        self._watching = False
                        return
                now = time.monotonic()
                waited = now - max(self._queue[0][0], self._progress)
                start = waited >= self.grace
                if start:
                    task = self._queue.popleft()[1]
                    self._count += 1
                    self._progress = now
            if start:
                self._spawn(task, self._run, None)
            else:
                time.sleep(self.grace - waited)

    @property
    def threads(self) -> int:
        """Worker threads alive now (busy or idle)."""
        return self._count

    @staticmethod
    def _execute(task: Task) -> None:
        fn, args = task
        try:
            fn(*args)
        except Exception:
            log.exception('task %r raised', fn)

    def _run(self, worker: _Worker) -> None:
        _current.pool = self
        _batch_policy()
        task, worker.task = worker.task, None
        while True:
            self._execute(task)  # type: ignore[arg-type]
            task = None  # no reference to its frames while idle
            with self._lock:
                if self._queue:
                    task = self._queue.popleft()[1]
                    self._progress = time.monotonic()
                    continue
                self._idle.append(worker)
            if not worker.wake.acquire(timeout=self.idle_timeout):
                with self._lock:
                    try:
                        self._idle.remove(worker)
                    except ValueError:
                        pass  # a submitter took this worker just now: its task is coming
                    else:
                        self._count -= 1
                        return
                worker.wake.acquire()
            task, worker.task = worker.task, None


def _batch_policy() -> None:
    """Put the calling worker thread under Linux's SCHED_BATCH policy: a worker that the I/O
    thread wakes then no longer preempts it while it holds the GIL (the woken worker would only
    wait for the GIL, and the I/O thread for the CPU). Measured on one core in a reconnect storm
    of 2,000 clients: about 30% fewer involuntary context switches and 4% less CPU per client.
    Elsewhere (or where the policy is refused) nothing changes."""
    policy = getattr(os, 'SCHED_BATCH', None)
    if policy is None:
        return
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except (OSError, AttributeError):
        pass


class PooledTask:
    """A ``threading.Thread`` look-alike whose ``start`` runs the target on :class:`Workers`:
    what engine.io's ``start_background_task`` gets in place of a thread of its own."""

    def __init__(self, workers: Workers, target: Callable[..., Any], args: Any = (),
                 kwargs: Any = None) -> None:
        self._workers = workers
        self._target = target
        self._args = tuple(args or ())
        self._kwargs = dict(kwargs or {})
        self._done = threading.Event()
        self.daemon = True

    def start(self) -> None:
        self._workers.submit(self._run)

    def _run(self) -> None:
        try:
            self._target(*self._args, **self._kwargs)
        finally:
            self._done.set()

    def join(self, timeout: Optional[float] = None) -> None:
        self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()
