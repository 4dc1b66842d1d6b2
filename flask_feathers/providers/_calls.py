"""What both socket providers share: parse a call in either dialect, build params, run it, shape
the ack (docs/protocol.rst, the Socket.IO dialects and "Errors").

Legacy dialect: event ``'todos::create'``, arguments ``data, query``.
Modern dialect: event ``'create'``, arguments ``'todos', data, query``.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .. import errors
from ..connections import Connection
from ..encoding import jsonable
from ..registry import Application
from ..service import ARGUMENTS, METHODS, PARAMS_POSITION

log = logging.getLogger(__name__)

#: Separator of the legacy dialect's event names.
LEGACY_SEPARATOR = '::'

#: Types a service id may have on the wire.
ID_TYPES = (str, int, float)


class Call(NamedTuple):
    path: str
    method: str
    args: Tuple[Any, ...]
    query: Dict[str, Any]


def is_call(event: Any, args: Sequence[Any], application: Optional[Application] = None) -> bool:
    """Whether ``event`` names a service call in either dialect (vs. a custom event): a standard
    method, the legacy ``'path::method'``, or a custom method the service at ``args[0]`` lists."""
    if not isinstance(event, str):
        return False
    if LEGACY_SEPARATOR in event or event in METHODS:
        return True
    if application is None or not args or not isinstance(args[0], str):
        return False
    wrapped, _ = application.resolve(args[0].strip('/'))
    return wrapped is not None and event in wrapped.exposed


def call_target(event: str, args: Sequence[Any]) -> Tuple[str, str]:
    """The ``(path, method)`` a call names, in either dialect."""
    if LEGACY_SEPARATOR in event:
        path, _, method = event.rpartition(LEGACY_SEPARATOR)
        return path.strip('/'), method
    if not args or not isinstance(args[0], str):
        raise errors.BadRequest(f'`{event}` needs the service path as its first argument')
    return args[0].strip('/'), event


def parse_call(event: str, args: Sequence[Any]) -> Call:
    """Turn an event and its arguments (ack excluded) into a :class:`Call`.

    :raises errors.FeathersError: BadRequest, NotFound or MethodNotAllowed for a malformed call.
    """
    path, method = call_target(event, args)
    if LEGACY_SEPARATOR not in event:
        args = args[1:]  # the modern dialect's first argument was the path
    if method not in METHODS:
        return _custom_call(path, method, args)
    position = PARAMS_POSITION[method]
    if len(args) > position + 1:
        raise errors.BadRequest(f'Too many arguments for `{method}`: expected at most '
                                f'{position + 1}, got {len(args)}')
    names = ARGUMENTS[method]
    if len(args) < len(names):
        missing = names[len(args)]
        raise errors.BadRequest(f'`{method}` is missing its `{missing}` argument')
    positional = tuple(args[:position])
    for name, value in zip(names, positional):
        if name == 'id':
            _check_id(method, value)
        else:
            _check_data(method, value)
    query = args[position] if len(args) > position else None
    if query is None:
        query = {}
    elif not isinstance(query, dict):
        raise errors.BadRequest(f'The query of `{method}` must be an object, got '
                                f'{_type_name(query)}')
    return Call(path, method, positional, query)


def _custom_call(path: str, method: str, args: Sequence[Any]) -> Call:
    """A custom method's call: ``data, query`` like ``create`` (whether the service lists the
    method is checked when it runs)."""
    if not method.isidentifier() or method.startswith('_'):
        raise errors.MethodNotAllowed(f'Method `{method}` is not a service method')
    if len(args) > 2:
        raise errors.BadRequest(f'Too many arguments for `{method}`: expected at most 2, got '
                                f'{len(args)}')
    data = args[0] if args else {}
    query = args[1] if len(args) > 1 and args[1] is not None else {}
    if not isinstance(query, dict):
        raise errors.BadRequest(f'The query of `{method}` must be an object, got '
                                f'{_type_name(query)}')
    return Call(path, method, (data,), query)


def _check_id(method: str, value: Any) -> None:
    if value is None:
        if method in ('patch', 'remove'):
            return  # acts on every match of the query, if the service allows it
        raise errors.BadRequest(f'`{method}` needs an id, got null')
    if isinstance(value, bool) or not isinstance(value, ID_TYPES):
        raise errors.BadRequest(f'The id of `{method}` must be a string or a number, got '
                                f'{_type_name(value)}')


def _check_data(method: str, value: Any) -> None:
    if isinstance(value, dict):
        return
    if method == 'create' and isinstance(value, list):
        return
    raise errors.BadRequest(f'The data of `{method}` must be an object, got {_type_name(value)}')


def _type_name(value: Any) -> str:
    return {dict: 'an object', list: 'an array', str: 'a string', bool: 'a boolean',
            type(None): 'null'}.get(type(value), f'a {type(value).__name__}')


def build_params(query: Dict[str, Any], connection: Connection) -> Dict[str, Any]:
    """``{'query': query, 'headers': ..., **connection.params, 'connection': connection}``.

    The connection's own params win on a clash, so a client can never set ``user`` or
    ``provider``; ``params['connection']`` is the :class:`Connection` (Feathers 5's
    ``params.connection``), e.g. to move it between channels on sign-in.
    """
    params: Dict[str, Any] = {'query': query}
    environ = connection.extra.get('environ')
    if environ is not None:
        params['headers'] = headers_of(environ)
    params.update(connection.params)
    params['connection'] = connection
    return params


def headers_of(environ: Dict[str, Any]) -> Dict[str, str]:
    """The request headers of a WSGI environ, by lower-case name (``params['headers']``, as in
    Feathers 5): the handshake's on Socket.IO, the upgrade request's on Primus."""
    headers = {key[5:].replace('_', '-').lower(): value for key, value in environ.items()
               if key.startswith('HTTP_') and isinstance(value, str)}
    for key, name in (('CONTENT_TYPE', 'content-type'), ('CONTENT_LENGTH', 'content-length')):
        if environ.get(key):
            headers[name] = environ[key]
    return headers


def run_call(application: Application, connection: Connection, event: str,
             args: Sequence[Any]) -> List[Any]:
    """Run one call from ``connection``; return the ack arguments.

    ``[None, result]`` on success, ``[error_dict]`` on failure. Never raises.
    """
    debug = application.debug
    try:
        path, method = call_target(event, args)
        wrapped, route = application.resolve(path)
        if wrapped is None:
            raise errors.NotFound(f"Service '{path}' not found")
        wrapped.check_exposed(method)  # before its arguments: nothing of an unlisted method
        call = parse_call(event, args)
        params = build_params(call.query, connection)
        if route:
            params['route'] = route
        result = wrapped.call_context(call.method, call.args, params).dispatch
        try:
            result = jsonable(result)
        except (TypeError, ValueError, RecursionError) as exc:
            log.error('result of %s.%s is not JSON serialisable: %s', call.path, call.method, exc)
            raise errors.GeneralError('The service returned a result that cannot be sent as '
                                      'JSON') from None
        return [None, result]
    except Exception as exc:
        return [errors.to_wire(exc, debug)]


def unknown_event_error(event: Any) -> List[Any]:
    """The ack for an event that is neither a service call nor handled by the app."""
    return [errors.NotFound(f'No handler for event {event!r}').to_dict()]
