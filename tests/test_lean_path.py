"""The shortcuts of the REST call path (bench/run's `rest` scenario) answer exactly what the long
way did: the params' headers, the X-Service-Method header, request.feathers, results that are (or
are not) awaitable."""
import asyncio

from flask import Flask, Request, request
from hypothesis import given, strategies as st
from werkzeug.datastructures import EnvironHeaders

from flask_feathers import Feathers, rest
from flask_feathers.providers.rest import _headers
from flask_feathers.service import invoke

_names = st.sampled_from(['HTTP_HOST', 'HTTP_X_SERVICE_METHOD', 'HTTP_CONTENT_TYPE',
                          'HTTP_CONTENT_LENGTH', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'HTTP_',
                          'HTTP_ACCEPT__ENCODING', 'HTTP_X_A_B_C', 'REQUEST_METHOD', 'PATH_INFO',
                          'wsgi.version', 'HTTPS', 'HTTP_ÄÖ_ß', 'HTTP_lower_case'])


@given(st.dictionaries(_names | st.text(max_size=12), st.text(max_size=8), max_size=12))
def test_headers_are_what_werkzeug_reads_from_the_environ(environ):
    assert _headers(environ) == {k.lower(): v for k, v in EnvironHeaders(environ).items()}


def _app(todos):
    app = Flask('lean')
    api = Feathers(app)
    api.configure(rest())
    api.use('todos', todos)
    return app


def test_rest_params_headers_and_the_custom_method_header(todos):
    app = _app(todos)
    client = app.test_client()
    client.get('/todos', headers={'X-Custom-Thing': 'a', 'Accept': 'application/json'})
    headers = todos.calls[-1][-1]['headers']
    assert headers['x-custom-thing'] == 'a' and headers['accept'] == 'application/json'
    assert 'content-type' not in headers and 'content-length' not in headers
    client.post('/todos', json={'text': 'a'})
    headers = todos.calls[-1][-1]['headers']
    assert headers['content-type'] == 'application/json' and headers['content-length'] == '13'
    # X-Service-Method on a GET: a custom method is called with POST
    answer = client.get('/todos', headers={'X-Service-Method': 'find'})
    assert answer.status_code == 405


def test_request_feathers_is_left_alone_when_the_request_class_has_one(todos):
    class OwnRequest(Request):
        feathers = {'from': 'the class'}

    app = _app(todos)
    app.request_class = OwnRequest
    seen = []

    @app.before_request
    def look():
        seen.append(request.feathers)
    app.test_client().get('/todos')
    assert seen == [{'from': 'the class'}]
    assert todos.calls[-1][-1]['from'] == 'the class'


def test_invoke_awaits_what_is_awaitable_and_returns_plain_results():
    class AwaitableDict(dict):
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return 'awaited'

    async def coroutine():
        return [1]

    assert invoke(lambda params: [1, 2], ({},)) == [1, 2]
    assert invoke(lambda params: None, ({},)) is None
    assert invoke(lambda params: coroutine(), ({},)) == [1]  # a plain function returning one
    assert invoke(lambda params: AwaitableDict(), ({},)) == 'awaited'
