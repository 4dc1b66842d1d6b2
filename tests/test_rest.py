"""REST provider through Flask's test client and through a real Werkzeug server."""
import io
import json
import logging

import pytest
import requests
from flask import request

from flask_feathers import Feathers, errors, rest
from flask_feathers.providers.rest import parse_query


@pytest.fixture
def api(app, todos):
    api = Feathers(app)
    api.configure(rest())
    api.use('todos', todos)
    return api


@pytest.fixture
def client(app, api):
    return app.test_client()


def test_create_201_get_find_update_patch_remove(client):
    r = client.post('/todos', json={'text': 'a'})
    assert r.status_code == 201 and r.json == {'text': 'a', 'id': 1}
    assert client.get('/todos').json == [{'text': 'a', 'id': 1}]
    assert client.get('/todos/1').json == {'text': 'a', 'id': 1}
    r = client.put('/todos/1', json={'text': 'b'})
    assert r.status_code == 200 and r.json == {'text': 'b', 'id': 1}
    assert client.patch('/todos/1', json={'done': True}).json == {'text': 'b', 'id': 1,
                                                                  'done': True}
    r = client.delete('/todos/1')
    assert r.status_code == 200 and r.json['id'] == 1
    assert client.get('/todos').json == []


def test_falsy_result_answers_204_without_body(app, api):
    api.use('empty', {'find': lambda params: None, 'get': lambda id, params: False})
    client = app.test_client()
    for url in ('/empty', '/empty/1'):
        r = client.get(url)
        assert r.status_code == 204 and r.data == b''


def test_missing_method_is_405(app, api):
    api.use('readonly', {'find': lambda params: [1]})
    r = app.test_client().post('/readonly', json={})
    assert r.status_code == 405
    assert r.json == {'name': 'MethodNotAllowed', 'code': 405, 'className': 'method-not-allowed',
                      'message': 'Method `create` is not supported by this endpoint.'}


def test_unknown_service_is_404_json(client):
    r = client.get('/nothing/here')
    assert r.status_code == 404 and r.json['name'] == 'NotFound'


@pytest.mark.parametrize('cls', [c for c in errors.ERROR_CLASSES])
def test_every_error_status(app, api, cls):
    def fail(id, params):
        raise cls('failing on purpose', data={'id': id})
    api.use('failing', {'get': fail})
    r = app.test_client().get('/failing/7')
    assert r.status_code == cls.code
    assert r.json == {'name': cls.name, 'message': 'failing on purpose', 'code': cls.code,
                      'className': cls.class_name, 'data': {'id': '7'}}


def test_other_exception_is_500_without_traceback(app, api, caplog):
    def crash(params):
        raise RuntimeError('password=hunter2')
    api.use('crash', {'find': crash})
    with caplog.at_level(logging.ERROR):
        r = app.test_client().get('/crash')
    assert r.status_code == 500
    assert r.json['name'] == 'GeneralError'
    assert 'hunter2' not in r.get_data(as_text=True)
    assert 'Traceback' in caplog.text and 'hunter2' in caplog.text


def test_malformed_json_is_400(client):
    r = client.post('/todos', data='{"text": ', content_type='application/json')
    assert r.status_code == 400 and r.json['name'] == 'BadRequest'


@pytest.mark.parametrize('body', ['"just text"', '42', 'true', 'null'])
@pytest.mark.parametrize('verb,url', [('post', '/todos'), ('put', '/todos/1'),
                                      ('patch', '/todos/1')])
def test_data_that_is_not_an_object_is_400_as_on_the_sockets(client, todos, body, verb, url):
    client.post('/todos', json={'text': 'kept'})
    r = getattr(client, verb)(url, data=body, content_type='application/json')
    assert r.status_code == 400 and r.json['name'] == 'BadRequest'
    method = {'post': 'create', 'put': 'update', 'patch': 'patch'}[verb]
    assert r.json['message'].startswith(f'The data of `{method}` must be an object')
    assert client.get('/todos').json == [{'text': 'kept', 'id': 1}]


def test_a_list_is_data_for_create_only(client, todos):
    r = client.put('/todos/1', json=[{'text': 'a'}])
    assert r.status_code == 400 and 'got an array' in r.json['message']


@pytest.mark.parametrize('content_type', ['text/plain', 'multipart/form-data; boundary=xyz',
                                          'application/xml', 'text/plain; charset=utf-8'])
def test_a_body_neither_json_nor_a_form_is_415_naming_its_type(client, todos, content_type):
    r = client.post('/todos', data='{"text": "x"}', content_type=content_type)
    assert r.status_code == 415
    assert r.json['name'] == 'UnsupportedMediaType'
    assert r.json['className'] == 'unsupported-media-type'
    mimetype = content_type.split(';')[0]
    assert r.json['message'].startswith(f'The request body is {mimetype},')
    assert 'JSON' not in r.json['message'].split(',')[0]  # not "Invalid JSON": the type is wrong
    assert r.json['data'] == {'contentType': mimetype}
    assert client.get('/todos').json == []


def test_json_suffix_types_and_a_bare_body_are_read_as_json(client, todos):
    r = client.post('/todos', data='{"text": "a"}', content_type='application/merge-patch+json')
    assert r.status_code == 201 and r.json == {'text': 'a', 'id': 1}
    r = client.post('/todos', data='{"text": "b"}')  # no Content-Type at all
    assert r.status_code == 201 and r.json == {'text': 'b', 'id': 2}


def test_an_empty_body_of_any_type_is_empty_data(client, todos):
    r = client.post('/todos', data='', content_type='text/plain')
    assert r.status_code == 201 and r.json == {'id': 1}


def test_unserialisable_result_is_500(app, api):
    api.use('weird', {'find': lambda params: {'when': object()}})
    r = app.test_client().get('/weird')
    assert r.status_code == 500 and r.json['name'] == 'GeneralError'


def test_form_body_parses_like_qs(client, todos):
    r = client.post('/todos', data='text=a&tags[]=x&tags[]=y',
                    content_type='application/x-www-form-urlencoded')
    assert r.status_code == 201
    assert r.json == {'text': 'a', 'tags': ['x', 'y'], 'id': 1}


@pytest.mark.parametrize('qs,expected', [
    ('a[]=1&a[]=2&s[name]=-1&$limit=2', {'a': ['1', '2'], 's': {'name': '-1'}, '$limit': '2'}),
    ('a[b][c]=1', {'a': {'b': {'c': '1'}}}),
    ('name=Jo%20e&n=', {'name': 'Jo e', 'n': ''}),
    ('$sort[createdAt]=-1&$select[]=text', {'$sort': {'createdAt': '-1'}, '$select': ['text']}),
    ('x[$in][]=1&x[$in][]=2', {'x': {'$in': ['1', '2']}}),
    ('', {}),
])
def test_query_strings_parse_like_node_qs(qs, expected, client, todos):
    assert parse_query(qs.encode()) == expected
    client.get('/todos?' + qs)
    assert todos.calls[-1][-1]['query'] == expected


def test_params_have_provider_and_request_feathers(app, api, todos):
    @app.before_request
    def authenticate():
        request.feathers['user'] = {'name': 'David'}
        request.feathers['query'] = 'hook wins'
    client = app.test_client()
    client.get('/todos?user=spoof')
    params = todos.calls[-1][-1]
    assert params['provider'] == 'rest'
    assert params['user'] == {'name': 'David'}
    assert params['query'] == 'hook wins'


def test_request_feathers_exists_for_hooks_registered_before_init(todos):
    from flask import Flask
    app = Flask('early')
    seen = []

    @app.before_request
    def early():
        seen.append(dict(request.feathers))
        request.feathers['user'] = 'early'
    api = Feathers(app)
    api.configure(rest())
    api.use('todos', todos)
    app.test_client().get('/todos')
    assert seen == [{}]
    assert todos.calls[-1][-1]['user'] == 'early'


def test_internal_calls_have_no_provider(api, todos):
    api.service('todos').find()
    assert 'provider' not in todos.calls[-1][-1]


def test_services_registered_after_first_request(app, api, client):
    assert client.get('/todos').status_code == 200
    api.use('/late/', {'find': lambda params: ['late']})
    assert client.get('/late').json == ['late']


def test_nested_paths_and_prefix(app, todos):
    api = Feathers(app)
    api.configure(rest('/api/'))
    api.use('v1/todos', todos)
    client = app.test_client()
    assert client.post('/api/v1/todos', json={'a': 1}).status_code == 201
    assert client.get('/api/v1/todos/1').json == {'a': 1, 'id': 1}
    assert client.get('/v1/todos').status_code == 404


def test_other_routes_of_the_app_still_work(app, api):
    @app.route('/')
    def index():
        return 'home'

    @app.route('/login', methods=['POST'])
    def login():
        return 'ok'
    client = app.test_client()
    assert client.get('/').data == b'home'
    assert client.post('/login').data == b'ok'


def test_through_a_real_werkzeug_server(app, api, live_server):
    server = live_server(app)
    base = server.url
    r = requests.post(f'{base}/todos', json={'text': 'real'}, timeout=5)
    assert r.status_code == 201 and r.json() == {'text': 'real', 'id': 1}
    r = requests.get(f'{base}/todos', params={'text': 'real'}, timeout=5)
    assert r.json() == [{'text': 'real', 'id': 1}]
    r = requests.get(f'{base}/todos/5', timeout=5)
    assert r.status_code == 404 and r.headers['Content-Type'] == 'application/json'
    r = requests.post(f'{base}/todos', data=b'nope', headers={'Content-Type': 'application/json'},
                      timeout=5)
    assert r.status_code == 400
    r = requests.delete(f'{base}/todos/1', timeout=5)
    assert r.status_code == 200 and json.loads(r.text)['id'] == 1


def test_dates_decimals_and_uuids_travel_as_json(app, api):
    import datetime
    import decimal
    import uuid
    value = {'when': datetime.datetime(2026, 11, 24, 15, 0, 1), 'day': datetime.date(2026, 1, 2),
             'price': decimal.Decimal('1.25'), 'exact': decimal.Decimal('0.1000000000000000055511'),
             'key': uuid.UUID(int=5), 'tags': ('a', 'b')}
    api.use('typed', {'get': lambda id, params: value})
    assert app.test_client().get('/typed/1').json == {
        'when': '2026-11-24T15:00:01', 'day': '2026-01-02', 'price': 1.25,
        'exact': '0.1000000000000000055511', 'key': '00000000-0000-0000-0000-000000000005',
        'tags': ['a', 'b']}



def test_a_body_over_the_limit_is_413_in_the_feathers_shape_before_it_is_read(app, api,
                                                                            live_server):
    import socket
    server = live_server(app)
    before = requests.get(server.url + '/todos', timeout=30).json()
    # The default limit is 1 MiB: a declared 2 MiB body is refused by its header; the client
    # sends only the first 64 KiB, so the answer cannot have waited for the rest.
    sock = socket.create_connection(('127.0.0.1', server.port), timeout=30)
    try:
        sock.sendall(b'POST /todos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                     b'Content-Length: 2097152\r\n\r\n' + b' ' * 65536)
        answer = b''
        while not (b'\r\n\r\n' in answer and answer.rstrip().endswith(b'}')):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    finally:
        sock.close()
    head, _, body = answer.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 413'), head
    error = json.loads(body)
    assert error['code'] == 413 and error['name'] == 'PayloadTooLarge', error
    assert error['message'] == 'The request body is larger than 1048576 bytes'
    assert requests.get(server.url + '/todos', timeout=30).json() == before


@pytest.mark.parametrize('chunked', [False, True])
def test_the_body_limit_is_a_setting_and_counts_chunked_bodies(todos, chunked):
    from flask import Flask
    app = Flask('limit')
    app.config['FEATHERS_MAX_BODY'] = 100
    api = Feathers(app)
    api.configure(rest())
    api.use('todos', todos)
    client = app.test_client()
    small = json.dumps({'text': 'x' * 50}).encode()
    big = json.dumps({'text': 'x' * 200}).encode()

    def post(body):
        if chunked:  # no Content-Length: the server reads until the body ends
            return client.post('/todos', input_stream=io.BytesIO(body),
                               headers={'Content-Type': 'application/json',
                                        'Transfer-Encoding': 'chunked'},
                               environ_overrides={'wsgi.input_terminated': True})
        return client.post('/todos', data=body, content_type='application/json')
    assert post(small).status_code == 201
    refused = post(big)
    assert refused.status_code == 413, refused.get_data()
    assert refused.get_json()['name'] == 'PayloadTooLarge'
    assert refused.get_json()['message'] == 'The request body is larger than 100 bytes'


def test_flask_max_content_length_wins_over_the_feathers_limit(todos):
    from flask import Flask
    app = Flask('mcl')
    app.config['MAX_CONTENT_LENGTH'] = 10 * 1024 * 1024
    api = Feathers(app)
    api.configure(rest())
    api.use('todos', todos)
    body = json.dumps({'text': 'x' * (2 * 1024 * 1024)})
    answer = app.test_client().post('/todos', data=body, content_type='application/json')
    assert answer.status_code == 201  # 2 MiB: over Feathers' default, under the app's own limit
    app.config['MAX_CONTENT_LENGTH'] = 1000
    answer = app.test_client().post('/todos', data=body, content_type='application/json')
    assert answer.status_code == 413 and answer.get_json()['code'] == 413


def test_a_negative_body_limit_is_refused_at_init():
    from flask import Flask
    app = Flask('neg')
    app.config['FEATHERS_MAX_BODY'] = -1
    with pytest.raises(ValueError, match='FEATHERS_MAX_BODY'):
        Feathers(app)


def test_api_run_with_rest_only_takes_the_flask_socketio_options(monkeypatch):
    from flask import Flask
    app = Flask('rest-only')
    api = Feathers(app)
    api.configure(rest())
    seen = {}
    monkeypatch.setattr(app, 'run', lambda **kwargs: seen.update(kwargs))
    api.run(app, host='127.0.0.1', port=5999, allow_unsafe_werkzeug=True, log_output=False,
            debug=False, use_reloader=False)
    assert seen == {'host': '127.0.0.1', 'port': 5999, 'debug': False, 'use_reloader': False,
                    'threaded': True}
    assert logging.getLogger('werkzeug').level == logging.WARNING
