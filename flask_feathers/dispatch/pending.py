"""The count of filtered deliveries not yet sent or skipped: backpressure and ``wait_idle``."""
from __future__ import annotations

import logging
import threading

from .._waits import blocking

log = logging.getLogger(__name__)

#: set on the dispatcher's own worker threads: an event a filter produces never waits for room
_worker = threading.local()


def mark_worker_thread() -> None:
    """The calling thread is one of the dispatcher's workers: its events never wait for room
    (it is what drains the backlog)."""
    _worker.is_worker = True


class Pending:
    """Deliveries counted from dispatch until sent or skipped, bounded by ``limit``.

    :param limit: the most that may be pending before producers wait (``FEATHERS_MAX_PENDING``).
    :param wait_at_most: the longest a producer waits for room (the filter time-out: by then every
        pending filter has ended or been skipped).
    """

    def __init__(self, limit: int, wait_at_most: float) -> None:
        self.limit = limit
        self.wait_at_most = wait_at_most
        self.count = 0
        #: the most deliveries that were ever pending at once (tests, bench)
        self.peak = 0
        #: producers waiting for room
        self._waiting = 0
        self._changed = threading.Condition()

    def admit(self, count: int) -> None:
        """Count ``count`` new filtered deliveries, first waiting while that would take the count
        past ``limit`` (backpressure: the service call that produced the event, and so its ack,
        waits instead of the backlog growing). One event is always let in when nothing is
        pending; a worker thread's own events never wait."""
        with self._changed:
            if self.count and self.count + count > self.limit and \
                    not getattr(_worker, 'is_worker', False):
                self._waiting += 1
                try:
                    with blocking():
                        room = self._changed.wait_for(
                            lambda: not self.count or self.count + count <= self.limit,
                            self.wait_at_most)
                    if not room:
                        log.warning('%d filtered deliveries still pending after %.1f s; '
                                    'dispatching one more event anyway', self.count,
                                    self.wait_at_most)
                finally:
                    self._waiting -= 1
            self.count += count
            if self.count > self.peak:
                self.peak = self.count

    def add(self, count: int) -> None:
        """Count ``count`` more deliveries without waiting (unfiltered events queued behind
        filtered ones)."""
        with self._changed:
            self.count += count

    def done(self, count: int) -> None:
        """``count`` deliveries were sent or skipped."""
        with self._changed:
            self.count -= count
            if self.count == 0 or (self._waiting and self.count < self.limit):
                self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pending; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.count == 0, timeout)
