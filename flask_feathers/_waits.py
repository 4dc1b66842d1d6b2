"""Waits a worker thread marks as such (see ``transport/workers.py``).

A thread of the worker pool that waits for something outside the pool (a queue, a socket,
another thread) wraps the wait in :func:`blocking`, so the pool does not count it as runnable
and starts another thread for queued work. Kept apart from the transport package so the core
modules (the dispatcher, service calls) can mark their waits without importing any I/O library.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

#: the pool of the worker thread running now, if any
_current = threading.local()


@contextlib.contextmanager
def blocking() -> Iterator[None]:
    """Mark a wait for something outside the pool (a queue, a socket, another thread): while
    it lasts, the calling worker thread does not count against the pool's runnable bound, so a
    queued task gets a thread at once. Outside a pool's worker thread it does nothing."""
    pool = getattr(_current, 'pool', None)
    if pool is None:
        yield
        return
    pool._block()
    try:
        yield
    finally:
        pool._unblock()
