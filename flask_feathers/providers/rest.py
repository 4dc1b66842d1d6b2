"""REST provider: every service over HTTP (docs/protocol.rst, "REST").

One Blueprint with a catch-all route under the prefix, so services registered after ``rest()`` (even
after the first request) are served too. ``request.feathers`` is a dict the app's own
``before_request`` hooks may fill; it is merged into ``params``.

Request bodies: JSON (``application/json`` or any ``+json`` type, or a body sent with no content
type at all) or a URL-encoded form (parsed like the query string, values stay strings). Any other
content type with a body answers 415 ``UnsupportedMediaType``. The data of ``create``, ``update``
and ``patch`` follows the socket transports' rule: an object, or a list for ``create``.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, Optional, Tuple

import qs_codec
from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from .. import errors
from ..encoding import dumps
from ..extension import FeathersState, state_of
from ..service import js_falsy
from ._calls import _check_data as check_data  # the sockets' data rule, shared

log = logging.getLogger(__name__)

#: (HTTP verb, whether the URL has an id) -> service method.
ROUTES: Dict[Tuple[str, bool], str] = {
    ('GET', False): 'find',
    ('GET', True): 'get',
    ('POST', False): 'create',
    ('PUT', True): 'update',
    ('PATCH', True): 'patch',
    ('DELETE', True): 'remove',
    # Feathers allows these without an id: they act on every match of the query (multi).
    ('PUT', False): 'update',
    ('PATCH', False): 'patch',
    ('DELETE', False): 'remove',
}

#: Status of a successful call by method (a falsy result answers 204 instead).
SUCCESS_STATUS: Dict[str, int] = {'create': 201}
DEFAULT_SUCCESS_STATUS = 200
NO_CONTENT = 204

HTTP_METHODS = ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
_WITH_ID_ARGUMENT = ('get', 'update', 'patch', 'remove')


def parse_query(query_string: bytes) -> Dict[str, Any]:
    """Parse a query string like Node's ``qs``: nested keys, arrays, values stay strings."""
    text = query_string.decode('utf-8', 'replace') if isinstance(query_string, bytes) \
        else query_string
    if not text:
        return {}
    try:
        parsed = qs_codec.decode(text)
    except Exception as exc:
        raise errors.BadRequest(f'Invalid query string: {exc}') from exc
    return parsed if isinstance(parsed, dict) else {}


def _ensure_feathers() -> None:
    # Runs first among the app's before_request hooks, so the app's own hooks find the dict.
    # (The request object itself: one proxy lookup, and no AttributeError raised in hasattr.)
    req = request._get_current_object()  # type: ignore[attr-defined]
    if 'feathers' not in req.__dict__ and not hasattr(req, 'feathers'):
        req.feathers = {}


def _headers(environ: Dict[str, Any]) -> Dict[str, str]:
    """``{name.lower(): value for name, value in request.headers.items()}``, read from the WSGI
    environ directly (the same names and values, without Werkzeug's generators)."""
    headers: Dict[str, str] = {}
    for key, value in environ.items():
        if key[:5] == 'HTTP_':
            if key != 'HTTP_CONTENT_TYPE' and key != 'HTTP_CONTENT_LENGTH':
                headers[key[5:].replace('_', '-').title().lower()] = value
        elif (key == 'CONTENT_TYPE' or key == 'CONTENT_LENGTH') and value:
            headers[key.replace('_', '-').title().lower()] = value
    return headers


class RestProvider:
    """Serves every service of an app under ``prefix``."""

    name = 'rest'

    def __init__(self, prefix: str = '') -> None:
        if not isinstance(prefix, str):
            raise TypeError(f'rest(prefix) takes a string, got {type(prefix).__name__}')
        self.prefix = '/' + prefix.strip('/') if prefix.strip('/') else ''

    def attach(self, api: Any, state: FeathersState) -> None:
        app = state.app
        if app is None:
            raise RuntimeError('the Flask app of this Feathers state is gone')
        if 'rest' in state.providers:
            raise RuntimeError('the REST provider is configured twice on this app')
        state.providers['rest'] = self
        app.before_request_funcs.setdefault(None, []).insert(0, _ensure_feathers)
        bp = Blueprint(f'feathers_rest{self.prefix.replace("/", "_")}', __name__)
        view = self._view
        bp.add_url_rule(f'{self.prefix}/<path:path>', 'service', view, methods=HTTP_METHODS,
                        strict_slashes=False)
        app.register_blueprint(bp)

    # -- the view -------------------------------------------------------------------------------
    def _view(self, path: str) -> Response:
        state = state_of(current_app)
        try:
            return self._handle(state, path)
        except Exception as exc:
            return error_response(exc, state.debug)

    def _handle(self, state: FeathersState, path: str) -> Response:
        application = state.application
        stripped = path.strip('/')
        wrapped, route = application.resolve(stripped)
        id_: Optional[str] = None
        if wrapped is None and '/' in stripped:
            service_path, _, id_ = stripped.rpartition('/')
            wrapped, route = application.resolve(service_path)
        if wrapped is None:
            raise errors.NotFound(f"Page not found: no service at '{stripped}'")
        custom = request.environ.get('HTTP_X_SERVICE_METHOD')  # the X-Service-Method header
        if custom:
            # Feathers 5's custom methods: POST /todos with X-Service-Method: approve.
            if request.method != 'POST' or id_ is not None:
                raise errors.MethodNotAllowed(f'A custom method is called with POST {request.path} '
                                              f'and no id')
            method = custom
        else:
            method = ROUTES.get((request.method, id_ is not None))
        if method is None:
            raise errors.MethodNotAllowed(
                f'{request.method} is not allowed on {request.path}')
        wrapped.check_exposed(method)
        params: Dict[str, Any] = {'query': parse_query(request.query_string), 'provider': 'rest',
                                  'headers': _headers(request.environ)}
        if route:
            params['route'] = route  # users/:userId/messages -> {'userId': '42'}
        auth = application.authentication()
        if auth is not None:  # Authorization: Bearer <token> (docs/authentication.rst)
            found = auth.service.parse(params['headers'])
            if found is not None:
                params['authentication'] = found
        params.update(getattr(request, 'feathers', None) or {})
        args: Tuple[Any, ...] = (id_,) if method in _WITH_ID_ARGUMENT else ()
        if method in ('create', 'update', 'patch') or custom:
            data = _body(state)
            if not custom:
                check_data(method, data)
            args = args + (data,)
        context = wrapped.call_context(method, args, params)
        result = context.dispatch
        http = context.http
        status = http.get('status')
        if js_falsy(result):
            response = Response(status=status or NO_CONTENT)
        else:
            response = json_response(result, status or SUCCESS_STATUS.get(method,
                                                                           DEFAULT_SUCCESS_STATUS))
            # (a custom method answers 200: only `create` answers 201)
        for name, value in (http.get('headers') or {}).items():
            response.headers[name] = value
        if http.get('location'):
            response.headers['Location'] = http['location']
        return response


#: The content type of a URL-encoded form body.
FORM_TYPE = 'application/x-www-form-urlencoded'


def _is_json_type(mimetype: str) -> bool:
    # '' too: a body sent without a content type (curl --data-binary, a bare script) is read as
    # JSON, the only format the socket transports know
    return mimetype in ('', 'application/json') or mimetype.endswith('+json')


def _body(state: FeathersState) -> Any:
    raw = _read_body(state)
    if not raw:
        return {}
    mimetype = request.mimetype
    if mimetype == FORM_TYPE:
        return parse_query(raw)
    if not _is_json_type(mimetype):
        raise errors.UnsupportedMediaType(
            f'The request body is {mimetype}, which this server does not read: send JSON '
            f'(Content-Type: application/json) or a form ({FORM_TYPE})',
            data={'contentType': mimetype})
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise errors.BadRequest(f'Invalid JSON in the request body: {exc}') from None


def _read_body(state: FeathersState) -> bytes:
    """The request body, refused with 413 past the limit: by its Content-Length before anything
    is read, a chunked one as soon as it passes the limit."""
    limit = current_app.config.get('MAX_CONTENT_LENGTH')
    if limit is None:
        limit = state.max_body
    length = request.content_length
    if length is not None and length > limit:
        _too_large(length, limit)
    if getattr(request, '_cached_data', None) is not None:  # the app read it already
        return request.get_data(cache=True)
    chunks = []
    size = 0
    try:
        stream = request.stream
        while True:
            chunk = stream.read(min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                _too_large(None, limit)
    except RequestEntityTooLarge:  # Flask's own MAX_CONTENT_LENGTH check
        _too_large(length, limit)
    raw = b''.join(chunks)
    request._cached_data = raw  # request.get_data() sees it
    return raw


def _too_large(length: Optional[int], limit: int) -> None:
    log.info('REST body of %s refused on %s %s (limit %d bytes)',
             f'{length} bytes' if length is not None else 'more than the limit', request.method,
             request.path, limit)
    raise errors.PayloadTooLarge(f'The request body is larger than {limit} bytes')


def json_response(value: Any, status: int) -> Response:
    """A JSON response; an unserialisable value becomes a GeneralError 500 (and a log line)."""
    try:
        body = dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        log.error('service result is not JSON serialisable: %s', exc)
        return error_response(errors.GeneralError('The service returned a result that cannot be '
                                                  'sent as JSON'), False)
    return Response(body, status=status, mimetype='application/json')


def error_response(exc: BaseException, debug: bool) -> Response:
    """The JSON error response for ``exc``, with ``status = code``."""
    error = errors.from_exception(exc, debug)
    return Response(json.dumps(error.to_dict(), default=str), status=error.code,
                    mimetype='application/json')


def rest(prefix: str = '') -> Callable[[Any], None]:
    """``api.configure(rest())``: serve every service over REST under ``prefix``."""
    provider = RestProvider(prefix)

    def configure(api: Any) -> None:
        api.add_provider(provider)
    return configure

