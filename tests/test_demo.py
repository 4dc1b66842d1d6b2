"""The demo app (demo/): services, sign-in hooks and company filters over REST, Socket.IO and Primus.

The browser end of the demo is in test_demo_browser.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional

import pytest
import requests

# The demo package sits at the repository root, which a bare `pytest` does not put on sys.path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from demo import BUNDLED_SOCKETIO_CLIENT, api, close_app, create_app  # noqa: E402
from demo.services import DEMO_PASSWORDS  # noqa: E402
from flask_feathers import errors
from flask_feathers.testing import realtime_client, wait_for_dispatch

from support.clients import PrimusClient  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOCKETIO_MIN_JS = os.path.join(HERE, 'js', 'node_modules', 'socket.io-client', 'dist',
                               'socket.io.min.js')


@pytest.fixture
def make_app(tmp_path):
    """``make_app(config=None, **create_app_kwargs)``: a demo app on a database in tmp_path."""
    made = []

    def make(config: Optional[Dict[str, Any]] = None, **kwargs: Any):
        base = {'TESTING': True, 'SECRET_KEY': 'test-secret',
                'DEMO_DATABASE_URL': f"sqlite:///{tmp_path / 'todos.db'}"}
        app = create_app(dict(base, **(config or {})), **kwargs)
        made.append(app)
        return app
    yield make
    for app in made:
        close_app(app)


@pytest.fixture
def app(make_app):
    return make_app()


def signed_in(app, username: str):
    client = app.test_client()
    response = client.post('/login', data={'user': username,
                                           'password': DEMO_PASSWORDS[username]})
    assert response.status_code == 302, response.data
    return client


# -- sign-in and the page --------------------------------------------------------------------------

def test_page_offers_users_of_both_companies_until_signed_in(app):
    page = app.test_client().get('/').get_data(as_text=True)
    for username in ('alice', 'bob', 'carol', 'dave'):
        assert f'data-testid="signin-{username}"' in page
    assert 'Acme' in page and 'Globex' in page
    assert 'data-testid="todo-list"' not in page


def test_login_rejects_unknown_users_and_wrong_passwords_and_logout_forgets(app):
    client = app.test_client()
    for data in ({'user': 'mallory', 'password': 'x'}, {'user': 'carol', 'password': 'alice-demo'},
                 {'user': 'carol'}):
        response = client.post('/login', data=data)
        assert response.status_code == 401
        assert 'data-testid="signin-error">Invalid login<' in response.get_data(as_text=True)
    assert client.get('/todos').status_code == 401
    signed_in(app, 'carol')
    client.post('/login', data={'user': 'carol', 'password': 'carol-demo'})
    assert client.get('/todos').status_code == 200
    response = client.post('/logout?transport=socketio')
    assert response.status_code == 302 and response.location == '/?transport=socketio'
    assert client.get('/todos').status_code == 401


def test_page_renders_the_companys_todos_escaped(app):
    alice = signed_in(app, 'alice')
    alice.post('/todos', json={'text': '<script>alert(1)</script>'})
    signed_in(app, 'carol').post('/todos', json={'text': 'Globex secret'})
    page = alice.get('/').get_data(as_text=True)
    assert '&lt;script&gt;alert(1)&lt;/script&gt;' in page and '<script>alert' not in page
    assert 'Globex secret' not in page
    assert 'Alice' in page and 'data-testid="whoami"' in page
    assert '/primus/primus.js' in page and 'socket.io' not in page  # Primus is the default


def test_transport_choice_and_socketio_client_url(make_app):
    app = make_app()
    alice = signed_in(app, 'alice')
    page = alice.get('/?transport=socketio').get_data(as_text=True)
    # served by the demo itself (installed from npm by scripts/demo): no CDN
    assert '<script src="/socket.io-client.js"></script>' in page
    assert 'cdn.' not in page and '/primus/primus.js' not in page
    assert alice.get('/?transport=carrier-pigeon').status_code == 400

    custom = make_app({'SOCKETIO_CLIENT_URL': '/vendor/socket.io.js'})
    page = signed_in(custom, 'alice').get('/?transport=socketio').get_data(as_text=True)
    assert '<script src="/vendor/socket.io.js"></script>' in page


def test_the_socketio_client_is_served_by_the_demo(make_app):
    if not os.path.exists(BUNDLED_SOCKETIO_CLIENT):
        pytest.fail('demo/js/node_modules is missing: run scripts/test (npm ci in demo/js)')
    client = signed_in(make_app(), 'alice')
    response = client.get('/socket.io-client.js')
    assert response.status_code == 200 and response.mimetype == 'application/javascript'
    with open(BUNDLED_SOCKETIO_CLIENT, 'rb') as fh:
        assert response.data == fh.read()
    response.close()


def test_a_relative_client_file_is_taken_from_the_working_directory(make_app, monkeypatch):
    if not os.path.exists(SOCKETIO_MIN_JS):
        pytest.fail('tests/js/node_modules is missing: run scripts/test (npm ci in tests/js)')
    monkeypatch.chdir(os.path.dirname(SOCKETIO_MIN_JS))
    app = make_app({'SOCKETIO_CLIENT_FILE': os.path.basename(SOCKETIO_MIN_JS)})
    response = signed_in(app, 'alice').get('/socket.io-client.js')
    assert response.status_code == 200
    with open(SOCKETIO_MIN_JS, 'rb') as fh:
        assert response.data == fh.read()
    response.close()


def test_a_missing_client_file_stops_the_start_with_a_clear_error(make_app):
    with pytest.raises(RuntimeError, match="SOCKETIO_CLIENT_FILE 'no/such/socket.io.js' is not "
                                           "a file"):
        make_app({'SOCKETIO_CLIENT_FILE': 'no/such/socket.io.js'})


# -- REST: what docs/demo.rst's curl examples do ---------------------------------------------------

def test_rest_needs_a_signed_in_user(app):
    client = app.test_client()
    for method, url in (('get', '/todos'), ('post', '/todos'), ('get', '/todos/1'),
                        ('patch', '/todos/1'), ('delete', '/todos/1')):
        response = getattr(client, method)(url, json={'text': 'x'})
        assert response.status_code == 401, (method, url)
        assert response.json['name'] == 'NotAuthenticated'


def test_rest_company_comes_from_the_server_not_the_client(app):
    alice = signed_in(app, 'alice')
    response = alice.post('/todos', json={'text': ' Buy milk ', 'companyId': 2, 'author': 'eve',
                                          'done': True})
    assert response.status_code == 201
    assert response.json == {'id': 1, 'text': 'Buy milk', 'done': True, 'companyId': 1,
                             'author': 'alice'}
    carol = signed_in(app, 'carol')
    assert carol.get('/todos').json == []
    # Asking for another company's todos in the query changes nothing.
    assert carol.get('/todos?companyId=1').json == []
    assert carol.get('/todos?$or[0][companyId]=1&$or[1][id]=1').json == []
    assert [t['text'] for t in alice.get('/todos?companyId=2').json] == ['Buy milk']


def test_rest_other_companies_todos_are_not_found(app):
    alice = signed_in(app, 'alice')
    todo = alice.post('/todos', json={'text': 'Acme only'}).json
    carol = signed_in(app, 'carol')
    assert carol.get(f"/todos/{todo['id']}").status_code == 404
    assert carol.patch(f"/todos/{todo['id']}", json={'done': True}).status_code == 404
    assert carol.put(f"/todos/{todo['id']}", json={'text': 'mine now'}).status_code == 404
    assert carol.delete(f"/todos/{todo['id']}").status_code == 404
    assert alice.get(f"/todos/{todo['id']}").json == todo  # untouched
    bob = signed_in(app, 'bob')
    assert bob.get(f"/todos/{todo['id']}").json == todo  # same company


def test_rest_patch_update_remove(app):
    alice = signed_in(app, 'alice')
    todo = alice.post('/todos', json={'text': 'Write docs'}).json
    patched = alice.patch(f"/todos/{todo['id']}", json={'done': True, 'companyId': 2})
    assert patched.status_code == 200
    assert patched.json == dict(todo, done=True)  # companyId is not the client's to change
    # Form-encoded bodies and string booleans work too (curl -d done=false).
    assert alice.patch(f"/todos/{todo['id']}", data={'done': 'false'}).json['done'] is False
    updated = signed_in(app, 'bob').put(f"/todos/{todo['id']}", json={'text': 'Write more docs'})
    assert updated.json == {'id': todo['id'], 'text': 'Write more docs', 'done': False,
                            'companyId': 1, 'author': 'alice'}
    assert alice.delete(f"/todos/{todo['id']}").json == updated.json
    assert alice.get('/todos').json == []


@pytest.mark.parametrize('body, status', [
    ({}, 400), ({'text': '   '}, 400), ({'text': 5}, 400), ({'text': 'x' * 201}, 400),
    ([{'text': 'a'}, {'text': 'b'}], 400), ({'text': 'x' * 200}, 201)])
def test_rest_create_validates(app, body, status):
    response = signed_in(app, 'alice').post('/todos', json=body)
    assert response.status_code == status, response.json


def test_rest_multi_writes_are_refused(app):
    alice = signed_in(app, 'alice')
    alice.post('/todos', json={'text': 'one'})
    assert alice.patch('/todos', json={'done': True}).status_code == 405
    assert alice.delete('/todos').status_code == 405
    assert alice.patch('/todos/1', json={}).status_code == 400
    assert [t['done'] for t in alice.get('/todos').json] == [False]


def test_users_service(app):
    client = app.test_client()
    users = client.get('/users?companyId=1').json
    assert [u['username'] for u in users] == ['alice', 'bob']
    assert client.get('/users/3').json['company'] == 'Globex'
    assert client.get('/users/99').status_code == 404
    assert client.post('/users', json={'username': 'eve'}).status_code == 405


def test_internal_calls_name_their_company(app):
    with app.app_context():
        todos = api.service('todos')
        todo = todos.create({'text': 'from a cron job', 'companyId': 2})
        assert todo['companyId'] == 2 and todo['author'] is None
        with pytest.raises(errors.BadRequest, match='companyId'):
            todos.create({'text': 'whose?'})
    assert [t['text'] for t in signed_in(app, 'dave').get('/todos').json] == ['from a cron job']


def test_forged_session_cookie_is_no_sign_in(app, make_app):
    other = make_app({'SECRET_KEY': 'another-secret'})
    forged = signed_in(other, 'alice').get_cookie('session').value
    client = app.test_client()
    client.set_cookie('session', forged)
    assert client.get('/todos').status_code == 401


# -- persistence and several apps ------------------------------------------------------------------

def test_data_and_sign_in_survive_a_restart_in_the_instance_folder(tmp_path):
    instance = tmp_path / 'instance'
    first = create_app({'TESTING': True}, instance_path=str(instance))
    try:
        alice = signed_in(first, 'alice')
        alice.post('/todos', json={'text': 'survives'})
        cookie = alice.get_cookie('session').value
    finally:
        close_app(first)
    assert (instance / 'demo.db').exists() and (instance / 'secret_key').exists()
    second = create_app({'TESTING': True}, instance_path=str(instance))
    try:
        client = second.test_client()
        client.set_cookie('session', cookie)  # the same key signs it: still alice
        assert [t['text'] for t in client.get('/todos').json] == ['survives']
    finally:
        close_app(second)


def test_two_apps_in_one_process_keep_their_own_todos(make_app, tmp_path):
    one = make_app()
    two = make_app({'DEMO_DATABASE_URL': f"sqlite:///{tmp_path / 'other.db'}"})
    signed_in(one, 'alice').post('/todos', json={'text': 'in one'})
    assert signed_in(two, 'alice').get('/todos').json == []
    with two.app_context():
        api.service('todos').create({'text': 'in two', 'companyId': 1})
    assert [t['text'] for t in signed_in(one, 'alice').get('/todos').json] == ['in one']
    assert [t['text'] for t in signed_in(two, 'alice').get('/todos').json] == ['in two']


# -- Socket.IO: io.use reads the session cookie of the handshake -----------------------------------

def socket_client(app, username: Optional[str]):
    """Flask-SocketIO's test client; signing in first puts the session cookie in the handshake.

    ``api.io`` is the Socket.IO server of the *current* app: outside an app context it is the first
    app this extension was initialised on, hence the context.
    """
    flask_client = signed_in(app, username) if username else app.test_client()
    with app.app_context():
        return api.io.test_client(app, flask_test_client=flask_client)


def events(client, name: str) -> List[Any]:
    return [e['args'][0] for e in client.get_received() if e['name'] == name]


def test_socketio_refuses_a_handshake_without_sign_in(app):
    assert not socket_client(app, None).is_connected()


def test_socketio_news_on_connect(app):
    signed_in(app, 'alice').post('/todos', json={'text': 'open one'})
    alice = realtime_client(app, flask_test_client=signed_in(app, 'alice'))
    try:
        news = alice.received('news')
        assert news == [{'hello': 'Alice', 'company': 'Acme', 'open': 1,
                         'message': 'Welcome, Alice! Acme has 1 open todo.'}]
    finally:
        alice.disconnect()


def test_socketio_calls_and_company_filters(app):
    clients = {name: socket_client(app, name) for name in ('alice', 'bob', 'carol')}
    try:
        assert all(c.is_connected() for c in clients.values())
        for c in clients.values():
            c.get_received()  # drop the news
        alice, bob, carol = clients['alice'], clients['bob'], clients['carol']
        error, todo = alice.emit('todos::create', {'text': 'Ship it', 'companyId': 2}, {},
                                 callback=True)
        assert error is None
        assert todo == {'id': 1, 'text': 'Ship it', 'done': False, 'companyId': 1,
                        'author': 'alice'}
        error, patched = bob.emit('todos::patch', 1, {'done': True}, {}, callback=True)
        assert error is None and patched == dict(todo, done=True)
        error, updated = bob.emit('todos::update', 1, {'text': 'Shipped'}, {}, callback=True)
        assert error is None and updated['text'] == 'Shipped' and updated['done'] is False
        refused = carol.emit('todos::remove', 1, {}, callback=True)  # one ack argument: the error
        assert refused['name'] == 'NotFound'
        error, found = carol.emit('todos::find', {'companyId': 1}, callback=True)
        assert error is None and found == []
        error, removed = alice.emit('todos::remove', 1, {}, callback=True)
        assert error is None and removed == updated
        wait_for_dispatch(app)
        for c in (alice, bob):
            received = [(e['name'], e['args'][0]) for e in c.get_received()]
            assert received == [('todos created', todo), ('todos patched', patched),
                                ('todos updated', updated), ('todos removed', removed)]
        assert carol.get_received() == []
    finally:
        for c in clients.values():
            c.disconnect()


def test_socketio_typing_is_a_custom_event_for_the_rest_of_the_company(app):
    clients = {name: socket_client(app, name) for name in ('alice', 'bob', 'carol')}
    try:
        for c in clients.values():
            c.get_received()
        # Handlers run in background threads; asking for an ack waits until this one ran.
        clients['bob'].emit('typing', True, callback=True)
        clients['bob'].emit('typing', False, callback=True)
        wait_for_dispatch(app)
        bob = {'userId': 2, 'name': 'Bob', 'companyId': 1}
        assert events(clients['alice'], 'todos typing') == [dict(bob, typing=True),
                                                            dict(bob, typing=False)]
        assert clients['bob'].get_received() == []  # not to the typist himself
        assert clients['carol'].get_received() == []
    finally:
        for c in clients.values():
            c.disconnect()


# -- Primus: primus.authorize reads the cookie of the WebSocket upgrade ----------------------------

UPGRADE = {'Upgrade': 'websocket', 'Connection': 'Upgrade', 'Sec-WebSocket-Version': '13',
           'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=='}


def test_primus_refuses_an_upgrade_without_sign_in(app, live_server):
    server = live_server(app)
    for cookie in (None, 'forged.cookie.value'):
        headers = dict(UPGRADE, Cookie=f'session={cookie}') if cookie else UPGRADE
        with requests.get(server.url + '/primus', headers=headers, timeout=5) as response:
            assert response.status_code == 401
            assert response.json() == {'error': 'Not authenticated! Sign in on the demo page first'}


def test_primus_news_calls_filters_and_typing(app, live_server):
    server = live_server(app)
    cookies = {name: signed_in(app, name).get_cookie('session').value
               for name in ('alice', 'bob', 'carol')}
    clients = {name: PrimusClient(server.url, headers={'Cookie': f'session={cookie}'}, timeout=5)
               for name, cookie in cookies.items()}
    try:
        alice, bob, carol = clients['alice'], clients['bob'], clients['carol']
        assert alice.next_event() == ('news', [{
            'hello': 'Alice', 'company': 'Acme', 'open': 0,
            'message': 'Welcome, Alice! Acme has 0 open todos.'}])
        assert bob.next_event()[0] == 'news' and carol.next_event()[0] == 'news'
        error, todo = alice.call('todos::create', {'text': 'Over Primus', 'companyId': 2}, {})
        assert error is None and todo['companyId'] == 1 and todo['author'] == 'alice'
        error, patched = bob.call('todos::patch', todo['id'], {'done': True}, {})
        assert error is None and patched['done'] is True
        assert carol.call('todos::get', todo['id'], {})[0]['name'] == 'NotFound'
        bob.send('typing', True)
        for c in (alice, bob):
            assert c.next_event() == ('todos created', [todo])
            assert c.next_event() == ('todos patched', [patched])
        assert alice.next_event() == ('todos typing', [
            {'userId': 2, 'name': 'Bob', 'companyId': 1, 'typing': True}])
        # Carol's own todo is the last thing she hears: nothing of Acme's came before it.
        error, hers = carol.call('todos::create', {'text': 'Globex'}, {})
        assert error is None
        assert carol.next_event() == ('todos created', [hers])
        assert carol.pending() == []
        assert alice.call('todos::find', {})[1] == [patched]
        wait_for_dispatch(app)
        assert bob.pending() == []  # bob does not hear his own typing
    finally:
        for c in clients.values():
            c.close()


# -- docs/demo.rst's curl commands, run as written -------------------------------------------------

@pytest.mark.skipif(shutil.which('curl') is None, reason='curl is not installed')
def test_readme_curl_session(app, live_server, tmp_path):
    server = live_server(app)
    jar = str(tmp_path / 'cookies.txt')

    def curl(*args: str) -> Any:
        out = subprocess.run(['curl', '-sS', '-b', jar, '-c', jar, *args], capture_output=True,
                             text=True, timeout=15, check=True).stdout
        return json.loads(out) if out.strip().startswith(('{', '[')) else out

    curl('-d', 'user=alice', '-d', 'password=alice-demo', f'{server.url}/login')
    todo = curl('-H', 'Content-Type: application/json', '-d', '{"text": "Buy milk"}',
                f'{server.url}/todos')
    assert todo == {'id': 1, 'text': 'Buy milk', 'done': False, 'companyId': 1,
                    'author': 'alice'}
    assert curl('-X', 'PATCH', '-H', 'Content-Type: application/json', '-d', '{"done": true}',
                f'{server.url}/todos/1')['done'] is True
    assert curl(f'{server.url}/todos') == [dict(todo, done=True)]
    assert curl('-X', 'DELETE', f'{server.url}/todos/1')['id'] == 1
    assert curl(f'{server.url}/todos') == []
    curl('-X', 'POST', f'{server.url}/logout')
    assert curl(f'{server.url}/todos')['name'] == 'NotAuthenticated'


def test_clear_completed_is_a_custom_method_scoped_to_the_company(app):
    clients = {name: socket_client(app, name) for name in ('alice', 'bob', 'carol')}
    try:
        alice, bob, carol = clients['alice'], clients['bob'], clients['carol']
        _, keep = alice.emit('todos::create', {'text': 'keep'}, {}, callback=True)
        _, done = alice.emit('todos::create', {'text': 'done'}, {}, callback=True)
        alice.emit('todos::patch', done['id'], {'done': True}, {}, callback=True)
        _, theirs = carol.emit('todos::create', {'text': 'globex done'}, {}, callback=True)
        carol.emit('todos::patch', theirs['id'], {'done': True}, {}, callback=True)
        wait_for_dispatch(app)
        for c in clients.values():
            c.get_received()
        error, removed = bob.emit('todos::clear_completed', {}, {}, callback=True)
        assert error is None and [t['id'] for t in removed] == [done['id']]
        wait_for_dispatch(app)
        assert [(e['name'], e['args'][0]['id']) for e in alice.get_received()] == \
            [('todos removed', done['id'])]
        assert carol.get_received() == []
        error, left = carol.emit('todos::find', {}, callback=True)
        assert [t['text'] for t in left] == ['globex done']
        error, left = alice.emit('todos::find', {}, callback=True)
        assert [t['text'] for t in left] == ['keep'] and left[0]['id'] == keep['id']
        refused = carol.emit('todos::setup', {}, {}, callback=True)
        assert refused['name'] == 'MethodNotAllowed'
    finally:
        for c in clients.values():
            c.disconnect()
