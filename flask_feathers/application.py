"""The transport-free application: service registration, paths, setup and event sinks.

An :class:`Application` knows nothing of Flask or sockets. It strips paths, resolves route
placeholders (``users/:userId/messages``), checks that what is registered is a service, wraps each
one in a :class:`~flask_feathers.wrapped.WrappedService` (uniform calls, events), hands every
service event to its sinks (the router) and runs every service's ``setup(app, path)`` once.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .channels import Publishers
from .events import EventSink as EventSink  # (re-exported: registry.py names it here)
from .hooks import HookStore
from .service import METHODS, member
from .wrapped import WrappedService

log = logging.getLogger(__name__)


def strip_path(path: str) -> str:
    """``'///a/b//'`` -> ``'a/b'``: every leading and trailing slash goes, inner ones stay."""
    if not isinstance(path, str):
        raise TypeError(f'a service path must be a string, got {type(path).__name__}')
    return path.strip('/')


class Application:
    """Services of one Flask app (or of no app yet), with setup and event sinks.

    :param callback_timeout: seconds a callback-style method may take.
    :param debug: when True, internal error messages reach clients.
    """

    def __init__(self, callback_timeout: Optional[float] = None, debug: bool = False) -> None:
        self.services: Dict[str, WrappedService] = {}
        #: (segments, service) of paths with ``:placeholders``, most literal segments first
        self._patterns: List[Tuple[List[str], WrappedService]] = []
        self.callback_timeout = callback_timeout
        self.debug = debug
        self._sinks: List[EventSink] = []
        #: Feathers 5 publishers (service and app level) for channels
        self.publishers = Publishers()
        self._registered_hooks: List[Callable[[str, WrappedService], None]] = []
        self._lock = threading.RLock()
        self._setup_done = False
        self._setup_running = False
        #: the object handed to ``service.setup(app, path)`` (the Feathers extension)
        self.owner: Any = self
        #: app hooks: around every service's own
        self.hook_store = HookStore('the app', lambda: METHODS)
        #: the path of the first authentication service registered (Feathers 5's
        #: ``app.defaultAuthentication()``): REST and socket handshakes parse the Authorization
        #: header with it, the ``authenticate`` hook verifies with it
        self.default_authentication: Optional[str] = None

    # -- registration -------------------------------------------------------------------------
    def use(self, path: str, service: Any, methods: Optional[Sequence[str]] = None,
            events: Optional[Sequence[str]] = None) -> WrappedService:
        """Register ``service`` at ``path`` (slashes stripped) and return its wrapper; ``methods``
        lists what clients may call (custom methods included), ``events`` its custom events."""
        stripped = strip_path(path)
        if stripped.startswith(':'):
            raise ValueError(f'service paths may not start with ":" (reserved), got {path!r}')
        if isinstance(service, WrappedService):
            service = service.service
        wrapped = WrappedService(stripped, service, self, methods=methods, events=events)
        with self._lock:
            if stripped in self.services:
                log.warning('service %r registered again; the new one replaces the old', stripped)
            self.services[stripped] = wrapped
            self._index_patterns()
            if getattr(service, 'is_authentication_service', False) and \
                    self.lookup(self.default_authentication or '') is None:
                self.default_authentication = stripped
            hooks = list(self._registered_hooks)
            setup_now = self._setup_done
        for hook in hooks:
            hook(stripped, wrapped)
        if setup_now:
            self._setup_one(stripped, wrapped)
        return wrapped

    def service(self, path: str) -> WrappedService:
        """The wrapped service at ``path``.

        :raises KeyError: naming the registered paths when there is none.
        """
        stripped = strip_path(path)
        try:
            return self.services[stripped]
        except KeyError:
            known = ', '.join(repr(p) for p in sorted(self.services)) or 'none'
            raise KeyError(f'no service registered at {stripped!r} (registered: {known}); '
                           f'register it with api.use({stripped!r}, service)') from None

    def lookup(self, path: str) -> Optional[WrappedService]:
        """The wrapped service registered at exactly ``path`` (already stripped), or None."""
        return self.services.get(path)

    def resolve(self, path: str) -> Tuple[Optional[WrappedService], Dict[str, str]]:
        """The service a client's ``path`` names, and its route placeholders: a registered path
        ``users/:userId/messages`` matches ``users/42/messages`` with ``{'userId': '42'}``. An
        exact registration wins, then the pattern with the most literal segments."""
        wrapped = self.services.get(path)
        if wrapped is not None or not self._patterns:
            return wrapped, {}
        parts = path.split('/')
        for segments, candidate in self._patterns:
            if len(segments) != len(parts):
                continue
            route: Dict[str, str] = {}
            for segment, part in zip(segments, parts):
                if segment.startswith(':'):
                    if not part:
                        break
                    route[segment[1:]] = part
                elif segment != part:
                    break
            else:
                return candidate, route
        return None, {}

    def _index_patterns(self) -> None:
        patterns = [(path.split('/'), wrapped) for path, wrapped in self.services.items()
                    if '/:' in path]
        patterns.sort(key=lambda item: -sum(not s.startswith(':') for s in item[0]))
        self._patterns = patterns

    def authentication(self) -> Optional[WrappedService]:
        """The default authentication service (wrapped), or None when there is none."""
        path = self.default_authentication
        return self.services.get(path) if path is not None else None

    def on_registered(self, hook: Callable[[str, WrappedService], None]) -> None:
        """Call ``hook(path, wrapped)`` for every service, now and when registered later."""
        with self._lock:
            self._registered_hooks.append(hook)
            current = list(self.services.items())
        for path, wrapped in current:
            hook(path, wrapped)

    # -- events -------------------------------------------------------------------------------
    def add_event_sink(self, sink: EventSink) -> None:
        """Receive every service event as ``sink(path, event, data)`` (real-time delivery)."""
        self._sinks.append(sink)

    def emit_event(self, path: str, event: str, data: Any) -> None:
        for sink in list(self._sinks):
            try:
                sink(path, event, data)
            except Exception:
                log.exception('event sink %r failed for %r %r', sink, path, event)

    def hooks(self, spec: Optional[Mapping[str, Any]] = None, **kinds: Any) -> None:
        """App hooks, around every service's (see :mod:`flask_feathers.hooks`)."""
        self.hook_store.register(spec, **kinds)

    def publish(self, event: Any = None, fn: Optional[Callable[..., Any]] = None) -> Any:
        """Feathers 5 app publisher: ``publish(fn)`` for every event or ``publish('created', fn)``.

        ``fn(data, context)`` returns a channel, a list of channels or None. Usable as a decorator.
        """
        return self.publishers.register(None, event, fn)

    # -- setup --------------------------------------------------------------------------------
    def ensure_setup(self) -> None:
        """Run every service's ``setup(app, path)`` once (cheap after the first time)."""
        if self._setup_done:
            return
        with self._lock:
            if self._setup_done or self._setup_running:
                return
            self._setup_running = True
            try:
                for path, wrapped in list(self.services.items()):
                    self._setup_one(path, wrapped)
            finally:
                self._setup_running = False
            self._setup_done = True

    @property
    def is_setup(self) -> bool:
        return self._setup_done

    def _setup_one(self, path: str, wrapped: WrappedService) -> None:
        setup = member(wrapped.service, 'setup')
        if setup is not None:
            try:
                setup(self.owner, path)
            except Exception as exc:
                raise RuntimeError(f'setup() of the service at {path!r} failed: {exc}') from exc
