"""Service events: server-side listeners and the hand-off to real-time delivery.

A wrapped service emits ``created``/``updated``/``patched``/``removed`` after the matching method
succeeded (one event per element of a list result) and any custom event it declares in ``events``.
Listeners registered with :meth:`EventEmitter.on` run first, in the emitting thread; then the event
goes to the application's event sink (real-time delivery: publishers, filters, clients).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .service import METHOD_EVENTS, STANDARD_EVENTS

log = logging.getLogger(__name__)

Listener = Callable[[Any], Any]
#: ``sink(path, event, data)``: where the application sends every service event after its
#: listeners (real-time delivery). Not a publisher: those choose channels
#: (:data:`flask_feathers.channels.Publisher`).
EventSink = Callable[[str, str, Any], None]


class EventEmitter:
    """A small thread-safe event emitter (``on``, ``once``, ``off``, ``emit``, ``listeners``)."""

    def __init__(self) -> None:
        self._listeners: Dict[str, List[Tuple[Listener, bool]]] = {}
        self._listeners_lock = threading.Lock()

    def on(self, event: str, fn: Optional[Listener] = None) -> Any:
        """Add a listener; usable as a decorator (``@svc.on('created')``)."""
        if fn is None:
            return lambda f: self.on(event, f) and f
        if not callable(fn):
            raise TypeError(f'listener for {event!r} must be callable, got {type(fn).__name__}')
        with self._listeners_lock:
            self._listeners.setdefault(event, []).append((fn, False))
        return self

    def once(self, event: str, fn: Listener) -> 'EventEmitter':
        """Add a listener that runs for the next event only."""
        with self._listeners_lock:
            self._listeners.setdefault(event, []).append((fn, True))
        return self

    def off(self, event: str, fn: Optional[Listener] = None) -> 'EventEmitter':
        """Remove one listener, or all listeners of ``event`` when ``fn`` is None."""
        with self._listeners_lock:
            if fn is None:
                self._listeners.pop(event, None)
            else:
                self._listeners[event] = [(f, o) for f, o in self._listeners.get(event, [])
                                          if f != fn]
        return self

    def listeners(self, event: str) -> List[Listener]:
        with self._listeners_lock:
            return [f for f, _ in self._listeners.get(event, [])]

    def _run_listeners(self, event: str, *args: Any) -> bool:
        """Call every listener of ``event`` with ``args``; False when there was none."""
        with self._listeners_lock:
            entries = list(self._listeners.get(event, ()))
            if any(once for _, once in entries):
                self._listeners[event] = [(f, o) for f, o in entries if not o]
        for fn, _ in entries:
            try:
                fn(*args)
            except Exception:  # a listener must not break the call that emitted
                log.exception('listener %r for %r raised', fn, event)
        return bool(entries)


class ServiceEvents(EventEmitter):
    """The event side of a wrapped service: declared events, listeners, the hand-off to its sink."""

    def __init__(self, path: str, custom_events: Iterable[str], sink: Optional[EventSink]):
        super().__init__()
        self.path = path
        custom = []
        for name in custom_events or ():
            if not isinstance(name, str) or not name:
                raise TypeError(f'service {path!r}: every name in `events` must be a non-empty '
                                f'string, got {name!r}')
            if name not in STANDARD_EVENTS and name not in custom:
                custom.append(name)
        #: every event name this service emits: the standard ones, then the declared ones
        self.events: Tuple[str, ...] = STANDARD_EVENTS + tuple(custom)
        self._sink = sink

    def emit(self, event: str, data: Any) -> None:
        """Emit ``event`` with ``data`` to listeners and connected clients.

        :raises ValueError: for a name that is neither standard nor declared in ``events``.
        """
        if event not in self.events:
            raise ValueError(f'service {self.path!r} has no event {event!r}; declare it with '
                             f'`events = [{event!r}]` on the service')
        self._run_listeners(event, data)
        if self._sink is not None:
            try:
                self._sink(self.path, event, data)
            except Exception:
                log.exception('handing %r %r on for delivery failed', self.path, event)

    def emit_result(self, method: str, result: Any) -> None:
        """Emit the event of a successful ``method`` call: one per element of a list result."""
        event = METHOD_EVENTS.get(method)
        if event is None:
            return
        for item in (result if isinstance(result, list) else [result]):
            self.emit(event, item)
