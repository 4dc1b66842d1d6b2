"""Access tokens (JWT durations, PyJWT's errors as jsonwebtoken's messages) and the one timer
thread that disconnects sockets whose token expired."""
from __future__ import annotations

import copy
import heapq
import itertools
import logging
import re
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

log = logging.getLogger(__name__)

#: The ``ms``-style durations of ``expiresIn`` / ``notBefore``: a number is seconds, a string
#: is a number with a unit (``'1d'``, ``'2 hours'``, ``'90s'``); a bare string number is ms.
_DURATION = re.compile(r'^\s*(-?\d*\.?\d+)\s*(ms|msecs?|milliseconds?|s|secs?|seconds?|m|mins?|'
                       r'minutes?|h|hrs?|hours?|d|days?|w|weeks?|y|yrs?|years?)?\s*$', re.I)
_UNIT_SECONDS = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800,
                 'y': 31557600}


#: PyJWT's errors -> the message a client gets (jsonwebtoken's, which Feathers clients see);
#: anything else is 'jwt malformed'.
_TOKEN_ERRORS = (('ExpiredSignatureError', 'jwt expired'),
                 ('InvalidSignatureError', 'invalid signature'),
                 ('InvalidAlgorithmError', 'invalid algorithm'),
                 ('InvalidAudienceError', 'jwt audience invalid'),
                 ('InvalidIssuerError', 'jwt issuer invalid'),
                 ('ImmatureSignatureError', 'jwt not active'))


def duration_seconds(value: Any, name: str = 'expiresIn') -> float:
    """Seconds of a JWT duration option (see :data:`_DURATION`)."""
    if isinstance(value, bool):
        raise ValueError(f'jwtOptions.{name} must be a number of seconds or a string like '
                         f"'1d', got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'jwtOptions.{name} must be a number of seconds or a string like '
                         f"'1d', '12h', '90s', got {value!r}")
    number, unit = float(match.group(1)), (match.group(2) or 'ms').lower()
    key = 'ms' if unit.startswith('ms') or unit.startswith('milli') else unit[0]
    return number * _UNIT_SECONDS[key]


def _merge(base: Dict[str, Any], extra: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``base`` with ``extra`` merged in, dicts key by key (a copy; neither is changed)."""
    merged = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _need_jwt() -> Any:
    """PyJWT, or an ImportError naming the extra to install."""
    try:
        import jwt
    except ImportError:  # pragma: no cover - the extra is missing
        raise ImportError('flask_feathers.authentication needs PyJWT and bcrypt: '
                          'pip install "flask-feathers[auth]" (from a checkout: '
                          'pip install -e ".[auth]")') from None
    return jwt


class _ExpiryTimers:
    """One thread that disconnects socket connections whose access token expired (a heap of
    deadlines; cancelling one is O(1), the heap is compacted when half of it is stale)."""

    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, Any]] = []
        self._current: Dict[int, int] = {}  # id(connection) -> sequence of its live deadline
        self._refs: Dict[int, Any] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def schedule(self, connection: Any, deadline: float, fire: Callable[[Any], None]) -> None:
        key, seq = id(connection), next(self._seq)
        with self._cond:
            self._current[key] = seq
            self._refs[key] = (weakref.ref(connection), fire)
            heapq.heappush(self._heap, (deadline, seq, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name='flask-feathers-token-expiry')
                self._thread.start()
            self._cond.notify()

    def cancel(self, connection: Any) -> None:
        key = id(connection)
        with self._cond:
            if self._current.pop(key, None) is not None:
                self._refs.pop(key, None)
                if len(self._heap) > 64 and len(self._heap) > 2 * len(self._current):
                    self._heap = [entry for entry in self._heap
                                  if self._current.get(entry[2]) == entry[1]]
                    heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._current)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._current.get(self._heap[0][2]) != self._heap[0][1]:
                        heapq.heappop(self._heap)  # cancelled or rescheduled
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.time()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                _, _, key = heapq.heappop(self._heap)
                del self._current[key]
                ref, fire = self._refs.pop(key)
            connection = ref()
            if connection is not None:
                try:
                    fire(connection)
                except Exception:
                    log.exception('disconnecting %r after its token expired failed', connection)


#: Every authentication service's expiry deadlines.
expiry_timers = _ExpiryTimers()
