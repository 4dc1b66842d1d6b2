"""Service method table and the one bridge between the two calling styles.

Service authors write each method either in *callback style*
(``def create(self, data, params, callback)``, calling ``callback(error, result)`` once, maybe later
and from another thread) or in *return style* (``def create(self, data, params)``, returning or
raising). :func:`invoke` is the only place that tells them apart; the wrapped service, event filters
and everything else call through it.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Tuple, TypeVar

from . import errors
from ._waits import blocking

log = logging.getLogger(__name__)

T = TypeVar('T')

#: The six service methods, in Feathers' order.
METHODS: Tuple[str, ...] = ('find', 'get', 'create', 'update', 'patch', 'remove')

#: The positional arguments each method takes before ``params``.
ARGUMENTS: Dict[str, Tuple[str, ...]] = {
    'find': (),
    'get': ('id',),
    'create': ('data',),
    'update': ('id', 'data'),
    'patch': ('id', 'data'),
    'remove': ('id',),
}

#: Index of ``params`` in each method's argument list (and of the query on the wire).
PARAMS_POSITION: Dict[str, int] = {method: len(args) for method, args in ARGUMENTS.items()}

#: Method -> the event it emits on success.
METHOD_EVENTS: Dict[str, str] = {
    'create': 'created',
    'update': 'updated',
    'patch': 'patched',
    'remove': 'removed',
}

#: The standard service events.
STANDARD_EVENTS: Tuple[str, ...] = tuple(METHOD_EVENTS.values())

#: Default seconds a callback-style method may take before the call fails with Timeout.
DEFAULT_CALLBACK_TIMEOUT = 30.0


def is_service(obj: Any) -> bool:
    """True for an object or dict that has at least one of the six methods."""
    return bool(service_methods(obj))


def service_methods(obj: Any) -> Dict[str, Callable[..., Any]]:
    """The callable service methods of ``obj`` (an object or a dict of callables), by name."""
    found: Dict[str, Callable[..., Any]] = {}
    for name in METHODS:
        fn = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if callable(fn):
            found[name] = fn
    return found


def member(obj: Any, name: str) -> Optional[Callable[..., Any]]:
    """A callable attribute (or dict entry) of a service, or None."""
    fn = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    return fn if callable(fn) else None


_STYLE_CACHE: Dict[Any, bool] = {}
_STYLE_LOCK = threading.Lock()


def takes_callback(fn: Callable[..., Any], n_args: int) -> bool:
    """Whether ``fn`` wants a trailing callback after ``n_args`` positional arguments.

    Decided by the signature: callback style when it has room for at least one positional argument
    more than the call passes (``def create(self, data, params, callback)``); ``*args`` alone counts
    as return style.
    """
    key = (getattr(fn, '__func__', fn), n_args)
    cached = _STYLE_CACHE.get(key)
    if cached is not None:
        return cached
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    positional = [p for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    result = len(positional) > n_args
    with _STYLE_LOCK:
        _STYLE_CACHE[key] = result
    return result


class _Callback:
    """A callback that accepts its first call only and wakes the waiting caller.

    One lock, held from the start and released by the first call, is both the "called" flag
    for another thread and what the caller waits on (an ``Event`` costs a Condition and two
    more locks, on every ``io.use`` and ``primus.authorize`` of every connection)."""

    __slots__ = ('_done', '_first', 'error', 'result', 'label')

    def __init__(self, label: str) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        #: popped by the first call only (list.pop is atomic)
        self._first = [True]
        self.error: Any = None
        self.result: Any = None
        self.label = label

    def __call__(self, error: Any = None, result: Any = None, *_: Any) -> None:
        try:
            self._first.pop()
        except IndexError:
            log.warning('%s called its callback more than once; the extra call was ignored',
                        self.label)
            return
        self.error, self.result = error, result
        self._done.release()

    @property
    def called(self) -> bool:
        return not self._first

    def wait(self, timeout: Optional[float]) -> bool:
        if not self._done.locked():
            return True
        with blocking():  # for another thread to call back
            return self._done.acquire(timeout=-1 if timeout is None else timeout)


#: result types that are never awaitable (exact types: a subclass may define ``__await__``)
_PLAIN_TYPES = frozenset({list, dict, str, int, float, bool, type(None), tuple, bytes})


def invoke(fn: Callable[..., Any], args: Tuple[Any, ...], timeout: Optional[float] = None,
           label: str = 'service method') -> Any:
    """Call ``fn(*args)`` in whichever style it is written and return its result or raise.

    For callback style, waits up to ``timeout`` seconds (None: :data:`DEFAULT_CALLBACK_TIMEOUT`) for
    the callback, then raises :class:`errors.Timeout`. An error passed to the callback is raised
    (a FeathersError as it is; a wire dict is converted; anything else is raised unchanged).
    """
    if not takes_callback(fn, len(args)):
        result = fn(*args)
        if type(result) in _PLAIN_TYPES:  # the usual results: nothing to await (a cheap check)
            return result
        return run_awaitable(result, label) if inspect.isawaitable(result) else result
    callback = _Callback(label)
    try:
        fn(*args, callback)
    except BaseException:
        if callback.called:
            log.exception('%s raised after calling its callback; the exception was ignored', label)
        else:
            raise
    if not callback.wait(DEFAULT_CALLBACK_TIMEOUT if timeout is None else timeout):
        raise errors.Timeout(f'{label} did not call its callback within '
                             f'{DEFAULT_CALLBACK_TIMEOUT if timeout is None else timeout:g} s')
    if callback.error:
        error = callback.error
        if isinstance(error, BaseException):
            raise error
        raise errors.convert(error)
    return callback.result


def caller(fn: Callable[..., Any], n_args: int, timeout: Optional[float] = None,
           label: str = 'service method') -> Callable[..., Any]:
    """A function of ``n_args`` arguments that calls ``fn`` the way :func:`invoke` does: ``fn``
    itself when it is written in return style, so a function called many times (an event filter,
    once per client) decides its style once."""
    if not takes_callback(fn, n_args):
        if is_async(fn):
            return lambda *args: run_awaitable(fn(*args), label)
        return fn
    return lambda *args: invoke(fn, args, timeout, label=label)


def is_async(fn: Any) -> bool:
    """``fn`` is an ``async def`` function (or an object whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(fn) or \
        inspect.iscoroutinefunction(getattr(fn, '__call__', None))


def run_awaitable(awaitable: Awaitable[T], label: str = 'service method') -> T:
    """Run what an ``async def`` method, hook or filter returned to completion on this worker
    thread (its own event loop, as Flask runs an async view), and return its result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        close = getattr(awaitable, 'close', None)
        if close is not None:
            close()
        raise RuntimeError(f'{label} is async and was called from a running event loop; '
                           f'flask_feathers runs async code on its worker threads only')

    async def wait() -> T:
        return await awaitable
    return asyncio.run(wait())


def js_falsy(value: Any) -> bool:
    """Falsiness as JavaScript sees it: None, False, 0, NaN and '' (an empty list or dict is not)."""
    if value is None or value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != value or value == 0
    return isinstance(value, str) and value == ''
