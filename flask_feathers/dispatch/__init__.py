"""One service event -> deliveries to this process's connections, through per-client filters.

Rules (docs/protocol.rst, "Per-client event filters"):

* The service method named like the event (``created``, ``updated``, a custom name) is the filter.
  It runs once per connection with ``(data, connection.params)`` (plus a callback in callback style),
  in a bounded worker pool. A truthy result is sent (``True`` sends the data unchanged), a falsy one
  (as JavaScript sees it: None, False, 0, '') sends nothing. A filter that raises or outlives
  ``filter_timeout`` skips that client only.
* Without a filter, every connection gets the data unchanged: one ``broadcast`` per transport, so the
  packet is encoded once (the fast path).
* Every connection receives events in the order they were dispatched. Each connection has a *lane*
  (:mod:`.lanes`): the events waiting for it, in dispatch order (an unfiltered event joins it
  while earlier ones wait there). A connection with a non-empty lane is *ready*; worker loops
  (:mod:`.scheduler`) take ready lanes in turn and handle one at a time: its waiting filters one
  after the other (up to :data:`BATCH_MAX`), then one write of everything they let through (the
  transport's ``write``: one system call on a handed-over websocket; the encoding of data sent
  unchanged is made once per event and shared). So under load a client's events go out
  together, and the cost per delivery is a filter call and a share of a write, with no lock or
  task per delivery.
* One loop drains the ready queue (more threads on one GIL only slow a burst down). When a filter
  holds a loop for ``GROUP_HOLD``, the watchdog writes what that loop filtered so far and starts
  another loop for the other connections, so a slow filter delays only its own client.
* A lane is handled by at most one loop at a time, so a client whose filter hangs occupies one
  worker, never the whole pool: the other clients keep their events. Filters of different
  clients run in parallel.
* Time-outs: a running filter is skipped ``filter_timeout`` after it started. Its client's later
  events then wait for that worker at most ``filter_timeout`` more (counted from the time-out, or
  from their dispatch when later) before they are skipped too, so a hung filter leaves a bounded
  lane and :meth:`Dispatcher.wait_idle` returns. Size the pool above the number of clients whose
  filters may hang at once: a client waiting only for a free worker is never skipped.
* Pending deliveries are bounded (``max_pending``, :mod:`.pending`): past the bound the call that
  produces an event waits for room (backpressure), so memory and latency stay bounded.
* Who gets an event when publishers are registered is decided in :mod:`flask_feathers.channels`
  (:meth:`~flask_feathers.channels.Publishers.evaluate`); the lanes are the dispatcher's own,
  keyed by connection, made at a connection's first filtered event and dropped when it leaves.

The parts: :mod:`.delivery` (an event, a filter's outcome, one grouped send), :mod:`.lanes`,
:mod:`.pending`, :mod:`.scheduler` (worker loops and the watchdog) and :mod:`.dispatcher` (the
:class:`Dispatcher` the rest of the package uses).

Locks, in the order they are taken: a thread holding one may take only those below it.

1. ``Dispatcher._order_lock``: one dispatch at a time, so every lane gets events in the same
   order. Held across a whole dispatch, including the transports' ``broadcast`` and a producer's
   wait for room (on ``Pending._changed``: the other producers wait behind it; the workers,
   which make the room, never need it).
2. ``_Loop.write_lock``: what a worker loop filtered goes out one ``write`` at a time, in order
   (the loop's own, or the watchdog's for a held loop).
3. The transports' own locks (a socket's), inside a ``broadcast`` or a ``write``. A transport
   that drops a client from there runs the registry's 'disconnect' listeners, and with them
   :meth:`Dispatcher._forget`, which takes only what follows.
4. ``_Loop.lock``: a loop, the watchdog and a leaving client agree under it on who counts the
   running filter (its record in ``_Loop.running``, see :mod:`.scheduler`).
5. ``Lane.lock``: a lane's busy flag (and the watchdog's skips from the head of a lane).
6. ``Scheduler._lock`` (the ready queue, the loop count, the active loops; the watchdog sleeps on
   it) and ``Pending._changed`` (the pending count): nothing is taken under them.

No lock is held while a filter runs, and none across a publisher (evaluated before step 1).
"""
from __future__ import annotations

from .delivery import (Broadcast, Delivery, Event, Write, apply_filter, event_name,
                       filter_outcome)
from .dispatcher import (DEFAULT_FILTER_TIMEOUT, DEFAULT_FILTER_WORKERS, DEFAULT_MAX_PENDING,
                         Dispatcher)
from .lanes import Lane
from .scheduler import BATCH_MAX, CONTEXT_SECONDS, GROUP_HOLD

__all__ = ['BATCH_MAX', 'Broadcast', 'CONTEXT_SECONDS', 'DEFAULT_FILTER_TIMEOUT',
           'DEFAULT_FILTER_WORKERS', 'DEFAULT_MAX_PENDING', 'Delivery', 'Dispatcher', 'Event',
           'GROUP_HOLD', 'Lane', 'Write', 'apply_filter', 'event_name', 'filter_outcome']
