"""Hooks: Feathers 5's service pipeline (around, before, after and error hooks) in Python.

A hook is a function of the call's :class:`HookContext`: ``hook(context)`` for before, after and
error hooks (change the context in place, return None or a context), ``hook(context, next)`` for
around hooks (code before and after ``next()``). They are registered per method or for ``'all'``,
on a service (``api.service('todos').hooks(...)``) and on the app (``api.hooks(...)``), and run
for every call: REST, both socket transports and internal calls.

Run order for one call (checked against @feathersjs/feathers 5 itself, see docs/protocol.rst and
``tests/test_hooks.py``): the app's level wraps the service's, and within a level the around
hooks wrap the rest:

.. code-block:: text

    app around (all, method) > app before (all, method)
        service around (all, method) > service before (all, method)
            the method (skipped when a before hook set ``context.result``)
        service after (all, method) < service around
    app after (all, method) < app around

An error raised anywhere inside a level runs that level's error hooks (the method's, then
``'all'``), innermost level first; an error hook that sets ``context.result`` turns the error
into that result, and the call goes on outward (the outer levels' after hooks run). Events are
emitted after the whole chain (``context.event``; None sends none) with ``context.dispatch`` when
a hook set it, else ``context.result``; clients get ``dispatch`` too, internal callers
``result``.
"""
from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import errors
from ._validation import validator
from .service import is_async, run_awaitable

KINDS = ('around', 'before', 'after', 'error')

#: "not set" for context.result and context.dispatch (None is a result like any other)
_UNSET: Any = object()

Hook = Callable[..., Any]


class HookContext:
    """What a hook sees of one service call (attributes as in Feathers 5's ``HookContext``).

    ``app`` (the ``Feathers`` object), ``service`` (the wrapped service), ``path``, ``method``,
    ``type`` (``'around'``, ``'before'``, ``'after'`` or ``'error'``), ``arguments`` (the call's
    arguments, params last), ``id``, ``data``, ``params``, ``result``, ``dispatch`` (what clients
    get instead of ``result``), ``error``, ``event`` (the event to emit; None: none) and ``http``
    (``{'status': ..., 'headers': {...}, 'location': ...}`` for the REST answer).
    """

    __slots__ = ('app', 'service', 'path', 'method', 'type', 'arguments', 'id', 'data', 'params',
                 '_result', '_dispatch', 'error', 'event', 'http')

    def __init__(self, app: Any, service: Any, path: str, method: str, arguments: Tuple[Any, ...],
                 id: Any = None, data: Any = None, params: Optional[Dict[str, Any]] = None,
                 event: Optional[str] = None) -> None:
        self.app = app
        self.service = service
        self.path = path
        self.method = method
        self.type: Optional[str] = None
        self.arguments = arguments
        self.id = id
        self.data = data
        self.params: Dict[str, Any] = params if params is not None else {}
        self._result = _UNSET
        self._dispatch = _UNSET
        self.error: Optional[BaseException] = None
        self.event = event
        self.http: Dict[str, Any] = {}

    @property
    def result(self) -> Any:
        """The call's result (None until the method ran or a hook set one)."""
        return None if self._result is _UNSET else self._result

    @result.setter
    def result(self, value: Any) -> None:
        self._result = value

    @property
    def has_result(self) -> bool:
        """A result was set (by the method or a hook): a before hook that sets one skips the
        method; an error hook that sets one turns the error into it."""
        return self._result is not _UNSET

    @property
    def dispatch(self) -> Any:
        """What clients get (the REST body, the socket ack, the events); ``result`` unless a hook
        set it."""
        return self.result if self._dispatch is _UNSET else self._dispatch

    @dispatch.setter
    def dispatch(self, value: Any) -> None:
        self._dispatch = value

    def __repr__(self) -> str:
        return f'<HookContext {self.type} {self.path}.{self.method}>'


class HookStore:
    """The hooks registered on one service or on the app: kind -> method (or ``'all'``) -> list,
    in registration order."""

    def __init__(self, owner: str, methods: Callable[[], Iterable[str]]) -> None:
        self.owner = owner
        #: the method names hooks may be registered for (besides 'all')
        self._methods = methods
        self.hooks: Dict[str, Dict[str, List[Hook]]] = {kind: {} for kind in KINDS}
        #: bumped on every registration (chains are cached against it)
        self.version = 0
        self._lock = threading.Lock()

    def register(self, spec: Optional[Mapping[str, Any]] = None, **kinds: Any) -> None:
        """``register({'before': {'all': [f]}})`` or ``register(before={'all': f})``."""
        if spec is not None and not isinstance(spec, Mapping):
            raise TypeError(f'hooks() takes a dict of kinds ({", ".join(KINDS)}), got '
                            f'{type(spec).__name__}')
        merged: List[Tuple[str, Any]] = list((spec or {}).items()) + list(kinds.items())
        methods = set(self._methods())
        staged: List[Tuple[str, str, List[Hook]]] = []
        for kind, by_method in merged:
            if kind not in KINDS:
                raise ValueError(f'unknown hook kind {kind!r} for {self.owner}; kinds are '
                                 f'{", ".join(KINDS)}')
            if not isinstance(by_method, Mapping):
                raise TypeError(f'hooks {kind!r} for {self.owner} must be a dict of method -> '
                                f'hook or list of hooks, got {type(by_method).__name__}')
            for method, fns in by_method.items():
                if method != 'all' and method not in methods:
                    known = ', '.join(sorted(methods)) or 'none'
                    raise ValueError(f'unknown method {method!r} in {kind!r} hooks for '
                                     f'{self.owner}; use \'all\' or one of: {known}')
                listed = list(fns) if isinstance(fns, (list, tuple)) else [fns]
                for fn in listed:
                    _check_hook(fn, kind, method, self.owner)
                staged.append((kind, method, listed))
        with self._lock:
            for kind, method, listed in staged:
                self.hooks[kind].setdefault(method, []).extend(listed)
            self.version += 1

    def level(self, method: str) -> '_Level':
        h = self.hooks
        # Error hooks come in two groups, the method's then 'all': one that turns the error into a
        # result ends the handling (Feathers 5 wraps each group as its own middleware).
        groups = [g for g in (h['error'].get(method, []), h['error'].get('all', [])) if g]
        return _Level(around=_both(h['around'], method), before=_both(h['before'], method),
                      after=_both(h['after'], method), error=groups)

    @property
    def empty(self) -> bool:
        return not any(self.hooks[kind] for kind in KINDS)


def _both(by_method: Dict[str, List[Hook]], method: str) -> List[Hook]:
    """``'all'`` hooks first, then the method's own."""
    return by_method.get('all', []) + by_method.get(method, [])


def _check_hook(fn: Any, kind: str, method: str, owner: str) -> None:
    if not callable(fn):
        raise TypeError(f'{kind} hook for {method!r} on {owner} is not callable: {fn!r}')
    if kind == 'around' and is_async(fn):
        raise TypeError(f'around hook {getattr(fn, "__name__", fn)!r} for {method!r} on {owner} '
                        f'is async; around hooks must be plain functions calling next() (async '
                        f'before, after and error hooks are fine)')


class _Level:
    __slots__ = ('around', 'before', 'after', 'error')

    def __init__(self, around: List[Hook], before: List[Hook], after: List[Hook],
                 error: List[List[Hook]]) -> None:
        self.around = around
        self.before = before
        self.after = after
        self.error = error

    @property
    def empty(self) -> bool:
        return not (self.around or self.before or self.after or self.error)


def run(levels: Sequence[_Level], context: HookContext, method: Callable[[HookContext], Any]
        ) -> HookContext:
    """Run ``method(context)`` (which sets ``context.result``) through ``levels`` (outermost
    first, see the module doc); returns the context, raises the error no hook turned into a
    result."""
    _run_level(levels, 0, context, method)
    return context


def _run_level(levels: Sequence[_Level], index: int, context: HookContext,
               method: Callable[[HookContext], Any]) -> None:
    if index == len(levels):
        if not context.has_result:
            method(context)
        return
    level = levels[index]

    def inner() -> None:
        try:
            for hook in level.before:
                context.type = 'before'
                _call(hook, context)
            _run_level(levels, index + 1, context, method)
            for hook in level.after:
                context.type = 'after'
                _call(hook, context)
        except Exception as exc:
            if not level.error:
                raise
            context.error = exc
            context._result = _UNSET
            for group in level.error:
                for hook in group:
                    context.type = 'error'
                    _call(hook, context)
                if context.has_result:
                    context.error = None
                    return
            error = context.error
            if error is exc or error is None:
                raise
            raise error

    _around(level.around, 0, context, inner)


def _around(hooks: List[Hook], index: int, context: HookContext, inner: Callable[[], None]) -> None:
    if index == len(hooks):
        inner()
        return
    called: List[bool] = []

    def next_() -> None:
        if called:
            raise RuntimeError('next() called twice by the around hook '
                               f'{getattr(hooks[index], "__name__", hooks[index])!r}')
        called.append(True)
        _around(hooks, index + 1, context, inner)
        context.type = 'around'

    context.type = 'around'
    returned = hooks[index](context, next_)
    _adopt(returned, context, hooks[index])


def _call(hook: Hook, context: HookContext) -> None:
    returned = hook(context)
    if returned is None:  # the usual answer: nothing more to check
        return
    if inspect.isawaitable(returned):  # an async def hook: run to completion on this thread
        returned = run_awaitable(returned, f'hook {getattr(hook, "__name__", hook)!r}')
    _adopt(returned, context, hook)


def _adopt(returned: Any, context: HookContext, hook: Hook) -> None:
    if returned is None or returned is context:
        return
    if isinstance(returned, HookContext):
        for name in HookContext.__slots__:
            setattr(context, name, getattr(returned, name))
        return
    raise TypeError(f'hook {getattr(hook, "__name__", hook)!r} returned {type(returned).__name__}; '
                    f'a hook changes the context in place and returns None (or a context)')


# -- the context of the events a call emits -----------------------------------------------------

_emitting = threading.local()


class emitting:
    """``with emitting(context):`` while a call's events are emitted on this thread, so the
    publishers that choose their channels (in this process, without a message queue between) get
    the call's hook context, as in Feathers 5."""

    __slots__ = ('context', 'previous')

    def __init__(self, context: HookContext) -> None:
        self.context = context

    def __enter__(self) -> None:
        self.previous = getattr(_emitting, 'context', None)
        _emitting.context = self.context

    def __exit__(self, *exc: Any) -> None:
        _emitting.context = self.previous


def emitting_context() -> Optional[HookContext]:
    """The hook context of the call whose events this thread emits now, if any."""
    return getattr(_emitting, 'context', None)


# -- ready-made hooks ---------------------------------------------------------------------------

def disallow(*providers: str) -> Hook:
    """A before hook refusing calls from ``providers`` (``'rest'``, ``'socketio'``,
    ``'primus'``; ``'external'`` = every client; no argument = every call, internal ones too)
    with MethodNotAllowed."""
    wanted = set(providers)

    def disallow_hook(context: HookContext) -> None:
        provider = context.params.get('provider')
        if not wanted or provider in wanted or ('external' in wanted and provider):
            raise errors.MethodNotAllowed(f'Provider \'{provider}\' can not call '
                                          f'\'{context.method}\'' if provider else
                                          f'\'{context.method}\' can not be called')
    return disallow_hook


def protect(*fields: str) -> Hook:
    """An after hook removing ``fields`` from what clients get (``context.dispatch``; the result
    internal callers get keeps them), for one record, a list or a page (``{'data': [...]}``)."""
    names = frozenset(fields)

    def strip(item: Any) -> Any:
        if type(item) is dict:  # the common case, fast: a copy less the fields (order kept)
            copy = item.copy()
            for name in names:
                if name in copy:
                    del copy[name]
            return copy
        if isinstance(item, Mapping):
            return {k: v for k, v in item.items() if k not in names}
        return item

    def protect_hook(context: HookContext) -> None:
        value = context.dispatch
        if isinstance(value, list):
            context.dispatch = [strip(item) for item in value]
        elif isinstance(value, Mapping) and isinstance(value.get('data'), list) and \
                'total' in value:
            context.dispatch = dict(value, data=[strip(item) for item in value['data']])
        else:
            context.dispatch = strip(value)
    return protect_hook


def validate_data(schema: Any) -> Hook:
    """A before hook validating ``context.data`` against ``schema``: a pydantic model class (the
    data becomes the model's ``model_dump()``, coerced and with defaults) or a JSON Schema dict.
    A failure raises BadRequest whose ``errors`` maps each bad field (dotted path, ``''`` for the
    whole value) to its message. Needs the ``schema`` extra (``pip install
    flask-feathers[schema]``)."""
    check = validator(schema, 'validate_data')

    def validate_data_hook(context: HookContext) -> None:
        context.data = check(context.data, 'Invalid data')
    return validate_data_hook


def validate_query(schema: Any) -> Hook:
    """A before hook validating ``params['query']`` like :func:`validate_data` (remember that
    REST query values arrive as strings: a pydantic model converts them, a JSON Schema does not).
    """
    check = validator(schema, 'validate_query')

    def validate_query_hook(context: HookContext) -> None:
        context.params['query'] = check(context.params.get('query') or {}, 'Invalid query')
    return validate_query_hook


__all__ = ['HookContext', 'HookStore', 'KINDS', 'disallow', 'emitting', 'emitting_context',
           'protect', 'run', 'validate_data', 'validate_query']
