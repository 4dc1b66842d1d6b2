"""What one delivery is, what a filter's result means, and how a group of deliveries is sent.

No locks and no threads here: the lanes, the scheduler and the dispatcher share these.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..connections import Connection
from ..service import invoke, js_falsy

log = logging.getLogger(__name__)

#: ``(event_name, data, shared)``: one event for one connection. ``shared`` is a dict of the event
#: where the transport may keep its encoding of ``data`` for the other connections that get it
#: unchanged (None when the data is this connection's own: a filter changed it).
Delivery = Tuple[str, Any, Optional[Dict[str, Any]]]
#: ``broadcast(event_name, data, connections)``: deliver the same data to several connections of
#: one transport at once.
Broadcast = Callable[[str, Any, Sequence[Connection]], None]
#: ``write(connection, deliveries)``: deliver several events to one connection at once, in order.
Write = Callable[[Connection, List[Delivery]], None]
#: A filter as the dispatcher calls it: ``call(data, params)``, whatever its calling style.
FilterCall = Callable[[Any, Dict[str, Any]], Any]


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


class Event:
    """One dispatched event on its way through the lanes of its connections (one object for all
    of them). ``call`` is the filter (None: the data goes out unchanged, an unfiltered event
    queued behind filtered ones); ``shared`` is where transports cache the event's encoding,
    made once for every connection that gets the data unchanged."""

    __slots__ = ('name', 'data', 'call', 'dispatched', 'shared')

    def __init__(self, name: str, data: Any, call: Optional[FilterCall],
                 dispatched: float) -> None:
        self.name = name
        self.data = data
        self.call = call
        self.dispatched = dispatched
        self.shared: Dict[str, Any] = {}


def send_grouped(group: Optional[Callable[[], None]],
                 singles: Iterable[Tuple[Connection, str, Any]],
                 failure: str, *details: object) -> None:
    """Send a group of deliveries: with ``group`` (the transport's call for all of them at once:
    its ``broadcast`` or ``write``), else one ``connection.send`` each. A failure is logged
    (``failure % details`` for the group call; per connection and skipped otherwise), never
    raised: it must not stop the deliveries to other clients."""
    if group is not None:
        try:
            group()
        except Exception:
            log.exception(failure, *details)
        return
    for conn, name, data in singles:
        try:
            conn.send(name, data)
        except Exception:
            log.exception('sending %r to connection %s failed; skipped', name, conn.id)
