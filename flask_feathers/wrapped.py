"""A registered service as the rest of the application sees it: :class:`WrappedService`.

The wrapper gives every service the same face: the six methods (return style, or a
``callback(error, result)``), listed custom methods, hooks, events and publishers. Each call runs
through the app's and the service's hook chain, then emits its event (:mod:`flask_feathers.events`).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import errors
from .events import ServiceEvents
from .hooks import HookContext, HookStore, emitting, run as run_hooks
from .service import ARGUMENTS, METHOD_EVENTS, METHODS, invoke, member, service_methods

if TYPE_CHECKING:
    from .application import Application
    from .hooks import _Level as Level

log = logging.getLogger(__name__)

Params = Dict[str, Any]
#: ``callback(error, result)`` of the callback calling style.
Callback = Callable[[Optional[Exception], Any], Any]


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
        self._chains: Dict[str, Tuple[int, int, List[Level]]] = {}

    def __repr__(self) -> str:
        return f'<WrappedService {self.path!r} {sorted(self.methods)}>'

    def __getattr__(self, name: str) -> Any:
        # A listed custom method runs through the hooks like the standard ones.
        if not name.startswith('_') and name in self.__dict__.get('methods', ()) and \
                name not in ARGUMENTS:
            def custom(data: Any = None, params: Optional[Params] = None,
                       callback: Optional[Callback] = None) -> Any:
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

    def call(self, method: str, args: Tuple[Any, ...], params: Optional[Params] = None) -> Any:
        """Run ``method`` with positional ``args`` (without params) through its hooks; return
        the result (what an internal caller gets) or raise.

        :raises errors.MethodNotAllowed: when the service lacks ``method``.
        """
        return self.call_context(method, args, params).result

    def call_context(self, method: str, args: Tuple[Any, ...], params: Optional[Params] = None
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

    def _levels(self, method: str) -> List[Level]:
        app_hooks, own = self._app.hook_store, self._hooks
        cached = self._chains.get(method)
        if cached is not None and cached[0] == app_hooks.version and cached[1] == own.version:
            return cached[2]
        levels = [level for level in (app_hooks.level(method), own.level(method))
                  if not level.empty]
        self._chains[method] = (app_hooks.version, own.version, levels)
        return levels

    def _run(self, method: str, args: Tuple[Any, ...], params: Optional[Params],
             callback: Optional[Callback]) -> Any:
        if callback is None:
            return self.call(method, args, params)
        try:
            result = self.call(method, args, params)
        except Exception as exc:  # handed to the callback, as Feathers does
            callback(errors.from_exception(exc, self._app.debug), None)
            return None
        callback(None, result)
        return None

    def find(self, params: Optional[Params] = None, callback: Optional[Callback] = None) -> Any:
        return self._run('find', (), params, callback)

    def get(self, id: Any, params: Optional[Params] = None,
            callback: Optional[Callback] = None) -> Any:
        return self._run('get', (id,), params, callback)

    def create(self, data: Any, params: Optional[Params] = None,
               callback: Optional[Callback] = None) -> Any:
        return self._run('create', (data,), params, callback)

    def update(self, id: Any, data: Any, params: Optional[Params] = None,
               callback: Optional[Callback] = None) -> Any:
        return self._run('update', (id, data), params, callback)

    def patch(self, id: Any, data: Any, params: Optional[Params] = None,
              callback: Optional[Callback] = None) -> Any:
        return self._run('patch', (id, data), params, callback)

    def remove(self, id: Any, params: Optional[Params] = None,
               callback: Optional[Callback] = None) -> Any:
        return self._run('remove', (id,), params, callback)


assert set(ARGUMENTS) == set(METHODS)


