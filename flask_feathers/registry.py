"""The transport-free application: service registration, wrapping and setup.

An :class:`Application` knows nothing of Flask or sockets. It strips paths, checks that what is
registered is a service, wraps each one in a :class:`WrappedService` (uniform calls, events) and
runs every service's ``setup(app, path)`` once.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import errors
from .channels import Publishers
from .events import Publisher, ServiceEvents
from .hooks import HookContext, HookStore, emitting, run as run_hooks
from .service import ARGUMENTS, METHOD_EVENTS, METHODS, invoke, member, service_methods

log = logging.getLogger(__name__)


#: Names a custom method may not have: the service's life cycle, and what Python and Feathers
#: keep for themselves.
RESERVED_METHODS = frozenset({'setup', 'teardown', 'hooks', 'publish', 'on', 'emit', 'events',
                              'methods', 'service', 'call', 'call_context', 'all'})


def _check_custom_name(path: str, name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f'service {path!r}: method names are identifiers, got {name!r}')
    if name.startswith('_') or name in RESERVED_METHODS:
        raise ValueError(f'service {path!r}: {name!r} cannot be a client method (reserved or '
                         f'private)')


def strip_path(path: str) -> str:
    """``'///a/b//'`` -> ``'a/b'``: every leading and trailing slash goes, inner ones stay."""
    if not isinstance(path, str):
        raise TypeError(f'a service path must be a string, got {type(path).__name__}')
    return path.strip('/')


class WrappedService(ServiceEvents):
    """A registered service as the rest of the application sees it.

    Each of ``find/get/create/update/patch/remove`` returns the result or raises a FeathersError
    when called without ``callback``; with one, it calls ``callback(error, result)`` exactly once.
    Successful create/update/patch/remove emit their event.
    """

    def __init__(self, path: str, service: Any, app: 'Application',
                 methods: Optional[Sequence[str]] = None,
                 events: Optional[Sequence[str]] = None) -> None:
        found = service_methods(service)
        exposed = set(found)
        if methods is not None:
            if isinstance(methods, str):
                raise TypeError(f'service {path!r}: `methods` must be a list of names, not a '
                                f'string')
            exposed = set()
            for name in methods:
                _check_custom_name(path, name)
                fn = member(service, name)
                if fn is None:
                    raise TypeError(f'service {path!r} lists the method {name!r} but has no such '
                                    f'method')
                found[name] = fn
                exposed.add(name)
        if not found:
            kind = 'dict' if isinstance(service, Mapping) else type(service).__name__
            raise TypeError(
                f'{kind} registered at {path!r} is not a service: it needs at least one of the '
                f'methods {", ".join(METHODS)} (as methods of an object or callables in a dict)')
        custom = events
        if custom is None:
            custom = service.get('events') if isinstance(service, Mapping) \
                else getattr(service, 'events', None)
        if isinstance(custom, str):
            raise TypeError(f'service {path!r}: `events` must be a list of names, not a string')
        super().__init__(path, custom or (), app.emit_event)
        self.service = service
        #: every method internal calls may reach (standard ones the service has, listed custom ones)
        self.methods = found
        #: what clients may call (``methods`` of api.use, or the standard ones the service has)
        self.exposed = frozenset(exposed)
        self._app = app
        self._hooks = HookStore(f'service {path!r}', lambda: self.methods.keys())
        #: method -> (app hooks version, service hooks version, levels)
        self._chains: Dict[str, Any] = {}

    def __repr__(self) -> str:
        return f'<WrappedService {self.path!r} {sorted(self.methods)}>'

    def __getattr__(self, name: str) -> Any:
        # A listed custom method runs through the hooks like the standard ones.
        if not name.startswith('_') and name in self.__dict__.get('methods', ()) and \
                name not in ARGUMENTS:
            def custom(data: Any = None, params: Optional[dict] = None,
                       callback: Optional[Callable] = None) -> Any:
                return self._run(name, (data,), params, callback)
            custom.__name__ = name
            return custom
        # Anything else (helpers, filters, attributes) comes from the user's service.
        if name.startswith('__') or name == 'service':
            raise AttributeError(name)
        value = member(self.service, name)
        if value is None and not isinstance(self.service, Mapping):
            return getattr(self.service, name)
        if value is None:
            raise AttributeError(f'service {self.path!r} has no attribute {name!r}')
        return value

    def publish(self, event: Any = None, fn: Optional[Callable[..., Any]] = None) -> Any:
        """Feathers 5 service publisher: ``svc.publish(fn)`` or ``svc.publish('created', fn)``.

        Takes precedence over app publishers. Usable as a decorator.
        """
        return self._app.publishers.register(self.path, event, fn)

    def check_exposed(self, method: str) -> None:
        """Clients reach only the methods the service lists (``api.use(..., methods=...)``):
        MethodNotAllowed for anything else (setup, private names, an unlisted method)."""
        if method not in self.exposed:
            raise errors.MethodNotAllowed(f'Method `{method}` is not supported by this endpoint.')

    def hooks(self, spec: Optional[Mapping[str, Any]] = None, **kinds: Any) -> 'WrappedService':
        """Register hooks (see :mod:`flask_feathers.hooks`): ``svc.hooks({'before': {'all':
        [fn]}})`` or ``svc.hooks(before={'create': fn})``; they add up, in registration order."""
        self._hooks.register(spec, **kinds)
        record = getattr(self._app.owner, '_record_service_hooks', None)
        if record is not None:
            record(self._app, self.path, spec, kinds)
        return self

    def call(self, method: str, args: tuple, params: Optional[dict] = None) -> Any:
        """Run ``method`` with positional ``args`` (without params) through its hooks; return
        the result (what an internal caller gets) or raise.

        :raises errors.MethodNotAllowed: when the service lacks ``method``.
        """
        return self.call_context(method, args, params).result

    def call_context(self, method: str, args: tuple, params: Optional[dict] = None
                     ) -> HookContext:
        """Run ``method`` through its hooks and emit its event; the call's context (clients get
        ``context.dispatch``, REST answers with ``context.http``)."""
        fn = self.methods.get(method)
        if fn is None:
            raise errors.MethodNotAllowed(f'Method `{method}` is not supported by this endpoint.')
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            raise errors.BadRequest(f'params must be a dict, got {type(params).__name__}')
        self._app.ensure_setup()
        names = ARGUMENTS.get(method, ('data',))
        context = HookContext(self._app.owner, self, self.path, method, (*args, params),
                              params=params, event=METHOD_EVENTS.get(method))
        for name, value in zip(names, args):
            setattr(context, name, value)
        timeout, label = self._app.callback_timeout, f'{self.path}.{method}'

        def run_method(ctx: HookContext) -> None:
            call_args = tuple(getattr(ctx, name) for name in names) if names else ()
            ctx.result = invoke(fn, (*call_args, ctx.params), timeout, label=label)

        levels = self._levels(method)
        if levels:
            run_hooks(levels, context, run_method)
        else:
            run_method(context)
        event = context.event
        if event is not None:
            data = context.dispatch
            with emitting(context):  # publishers in this process get the call's context
                for item in (data if isinstance(data, list) else [data]):
                    try:
                        self.emit(event, item)
                    except ValueError as exc:  # a hook named an event the service lacks
                        log.error('%s; no event sent', exc)
                        break
        return context

    def _levels(self, method: str) -> List[Any]:
        app_hooks, own = self._app.hook_store, self._hooks
        cached = self._chains.get(method)
        if cached is not None and cached[0] == app_hooks.version and cached[1] == own.version:
            return cached[2]
        levels = [level for level in (app_hooks.level(method), own.level(method))
                  if not level.empty]
        self._chains[method] = (app_hooks.version, own.version, levels)
        return levels

    def _run(self, method: str, args: tuple, params: Optional[dict], callback: Optional[Callable]):
        if callback is None:
            return self.call(method, args, params)
        try:
            result = self.call(method, args, params)
        except Exception as exc:  # handed to the callback, as Feathers does
            callback(errors.from_exception(exc, self._app.debug), None)
            return None
        callback(None, result)
        return None

    def find(self, params: Optional[dict] = None, callback: Optional[Callable] = None) -> Any:
        return self._run('find', (), params, callback)

    def get(self, id: Any, params: Optional[dict] = None, callback: Optional[Callable] = None) -> Any:
        return self._run('get', (id,), params, callback)

    def create(self, data: Any, params: Optional[dict] = None,
               callback: Optional[Callable] = None) -> Any:
        return self._run('create', (data,), params, callback)

    def update(self, id: Any, data: Any, params: Optional[dict] = None,
               callback: Optional[Callable] = None) -> Any:
        return self._run('update', (id, data), params, callback)

    def patch(self, id: Any, data: Any, params: Optional[dict] = None,
              callback: Optional[Callable] = None) -> Any:
        return self._run('patch', (id, data), params, callback)

    def remove(self, id: Any, params: Optional[dict] = None,
               callback: Optional[Callable] = None) -> Any:
        return self._run('remove', (id,), params, callback)


assert set(ARGUMENTS) == set(METHODS)


class Application:
    """Services of one Flask app (or of no app yet), with setup and event publishing.

    :param callback_timeout: seconds a callback-style method may take.
    :param debug: when True, internal error messages reach clients.
    """

    def __init__(self, callback_timeout: Optional[float] = None, debug: bool = False) -> None:
        self.services: Dict[str, WrappedService] = {}
        #: (segments, service) of paths with ``:placeholders``, most literal segments first
        self._patterns: List[Tuple[List[str], WrappedService]] = []
        self.callback_timeout = callback_timeout
        self.debug = debug
        self._sinks: List[Publisher] = []
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
    def add_event_sink(self, sink: Publisher) -> None:
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
