"""One connection's lane: the events waiting for it, in dispatch order, and whether a worker loop
has it. One class, one lock; every step is a plain method call, so tests drive it without
threads.

A lane is *busy* from the moment it is put in the scheduler's ready queue until the loop that
took it finds it empty: at most one loop works on a lane at a time, which is what keeps each
client's events in order. Producers append without the lock and take it only to make an idle
lane busy; the loop pops without it (``deque`` appends and pops are atomic); the lock makes
"is it empty, then it is idle" one step against "append, then claim it if idle".
"""
from __future__ import annotations

import collections
import threading
from typing import Deque

from ..connections import Connection
from .delivery import Event


class Lane:
    """The events waiting for one connection (see the module's docstring)."""

    __slots__ = ('conn', 'events', 'busy', 'lock')

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        #: waiting events, oldest first; the loop that has the lane pops from the left
        self.events: Deque[Event] = collections.deque()
        #: in the ready queue or taken by a loop; changed only under ``lock``
        self.busy = False
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f'<Lane {self.conn!r} {len(self.events)} waiting{" busy" if self.busy else ""}>'

    def push(self, event: Event) -> bool:
        """Append ``event``; True when that made the lane busy (the caller queues it as ready).

        Appended first, then the flag read: a loop releasing the lane reads the events after it
        cleared the flag (:meth:`release`), so either it sees this event or this call sees the
        lane idle and claims it.
        """
        self.events.append(event)
        if self.busy:
            return False
        with self.lock:
            if self.busy:
                return False
            self.busy = True
            return True

    def waiting(self) -> bool:
        """Events wait here or a loop has the lane: an unfiltered event must queue behind them
        (:meth:`push`) instead of going out at once."""
        return self.busy or bool(self.events)

    def release(self) -> bool:
        """The loop that has the lane is done with it. True when more events came meanwhile: the
        lane stays busy and the caller queues it as ready again."""
        with self.lock:
            if self.events:
                return True
            self.busy = False
        # A push that appended before that and read the flag still set left its event to us.
        if self.events:
            with self.lock:
                if not self.busy:
                    self.busy = True
                    return True
        return False

    def clear(self) -> int:
        """Drop every waiting event (the client left); how many there were."""
        dropped = 0
        with self.lock:
            events = self.events
            while events:
                try:
                    events.popleft()
                except IndexError:  # the loop took the last one meanwhile
                    break
                dropped += 1
        return dropped
