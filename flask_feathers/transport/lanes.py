"""The serial lane of one connection: its received messages handled in order on the pooled
workers, and the flow control that stops reading a client whose messages pile up."""
from __future__ import annotations

import collections
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Deque, Optional, Tuple, cast

from .hub import Hub

if TYPE_CHECKING:
    from .hub import Watched

log = logging.getLogger(__name__)

#: Bytes of received messages waiting for application code past which reading pauses.
PAUSE_AT = 1024 * 1024


class SerialLane:
    """Mixed into :class:`~.websocket.WebSocket`, which sets these fields and guards them with
    its ``lock``."""

    __slots__ = ('lane', 'lane_busy', 'inbound', 'paused')
    lock: threading.Lock
    hub: Hub
    lane: Optional[Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]]]
    lane_busy: bool
    inbound: int
    paused: bool

    def deliver(self, fn: Callable[..., Any], message: Any) -> None:
        """Hub thread: ``serial(fn, self, message)``, and stop reading this socket while more
        than ``PAUSE_AT`` bytes of its messages wait: a client that sends faster than the
        application handles it is slowed down by TCP, instead of growing memory."""
        size = len(message)
        with self.lock:
            self.inbound += size
            pause = self.inbound > PAUSE_AT and not self.paused
            if pause:
                self.paused = True
        if pause:
            self.hub.update(cast('Watched', self))
        self.serial(self._handled, fn, message, size)

    def _handled(self, fn: Callable[..., Any], message: Any, size: int) -> None:
        try:
            fn(self, message)
        finally:
            with self.lock:
                self.inbound -= size
                resume = self.paused and self.inbound <= PAUSE_AT // 2
                if resume:
                    self.paused = False
            if resume:
                self.hub.call_soon(self.hub.update, self)  # a WebSocket: Watched

    def serial(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a pooled worker after everything this connection queued before."""
        with self.lock:
            lane = self.lane
            if lane is None:
                lane = self.lane = collections.deque()
            lane.append((fn, args))
            if self.lane_busy:
                return
            self.lane_busy = True
        self.hub.workers.submit_next(self._run_lane)

    def _run_lane(self) -> None:
        while True:
            with self.lock:
                lane = self.lane
                if not lane:
                    self.lane = None
                    self.lane_busy = False
                    return
                fn, args = lane.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception('%r raised on %r', fn, self)
