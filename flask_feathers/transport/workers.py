"""An elastic pool of reusable worker threads for application code.

Everything a socket connection asks of the application (a service call, a connect hook, a
disconnect handler, Socket.IO's ``async_handlers``) runs on one of these threads, never on the
hub's I/O thread. The pool starts a thread when no idle one is waiting and lets an idle thread end
after ``idle_timeout`` seconds, so a reconnect storm of thousands of clients is served by the few
threads that the work needs at once, instead of starting and ending one thread per connection and
per event (CPython's thread start, registry and end then dominate). There is no upper bound: a
task that blocks (a slow hook, a long-running background task) never starves the others.

Concurrency: ``_lock`` guards ``_idle`` (a stack, so the most recently used thread is reused
first and the coldest ones time out) and ``_count``. A task is handed to an idle worker directly
(its ``task`` slot, then its ``wake`` lock is released), so no shared queue is contended.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, List, Optional, Tuple

log = logging.getLogger(__name__)

#: Seconds an idle worker waits for work before its thread ends.
DEFAULT_IDLE_TIMEOUT = 2.0

Task = Tuple[Callable[..., Any], Tuple[Any, ...]]


class _Worker:
    __slots__ = ('wake', 'task')

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.task: Optional[Task] = None


class Workers:
    """``submit(fn, *args)`` runs ``fn(*args)`` on a pooled thread; exceptions are logged."""

    def __init__(self, name: str = 'flask-feathers-worker',
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.name = name
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._idle: List[_Worker] = []
        self._count = 0
        self._serial = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            if worker is None:
                self._count += 1
                self._serial += 1
                serial = self._serial
        if worker is not None:
            worker.task = (fn, args)
            worker.wake.release()
            return
        # The task goes in the worker's slot, not in the thread's args, which the thread keeps
        # (and so the task's arguments: a big message) for its whole life.
        worker = _Worker()
        worker.task = (fn, args)
        thread = threading.Thread(target=self._run, args=(worker,), daemon=True,
                                  name=f'{self.name}-{serial}')
        try:
            thread.start()
        except RuntimeError:  # can't start new thread (a limit of the system): run it here
            with self._lock:
                self._count -= 1
            log.error('could not start a worker thread (%d running); running the task inline',
                      self._count)
            worker.task = None
            self._execute((fn, args))

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
        task, worker.task = worker.task, None
        while True:
            self._execute(task)  # type: ignore[arg-type]
            task = None  # type: ignore[assignment]  # no reference to its frames while idle
            with self._lock:
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
            task, worker.task = worker.task, None  # type: ignore[assignment]


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
