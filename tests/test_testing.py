"""flask_feathers.testing: the helpers shipped for users' tests, and the example module of
docs/testing.rst."""
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from flask import Flask

from conftest import USERS, same_company
from flask_feathers import Feathers, errors, rest
from flask_feathers.testing import (FakeConnection, RealtimeTestClient, realtime_client,
                                    run_filter, wait_for_dispatch)

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs',
                    'testing.rst')


def test_run_filter_both_styles_and_the_js_rules(todos):
    todo = {'id': 1, 'companyId': 2}
    todos.created = same_company  # callback style
    assert run_filter(todos, 'created', todo, {'user': USERS[2]}) == todo
    assert run_filter(todos, 'created', todo, {'user': USERS[0]}) is None
    todos.patched = lambda data, params: True
    assert run_filter(todos, 'patched', todo) == todo
    todos.removed = lambda data, params: dict(data, seen=params['provider'])
    assert run_filter(todos, 'removed', todo) == dict(todo, seen='socketio')
    assert run_filter(todos, 'updated', todo) == todo, 'no filter: the data unchanged'
    assert run_filter({'created': lambda d, p: 0}, 'created', todo) is None


def test_run_filter_accepts_the_wrapped_service_and_raises_filter_errors(app, todos):
    api = Feathers(app)
    todos.created = lambda data, params: params['user']['companyId']
    wrapped = api.use('todos', todos)
    assert run_filter(wrapped, 'created', {'id': 1}, {'user': USERS[2]}) == 2
    with pytest.raises(KeyError):
        run_filter(wrapped, 'created', {'id': 1}, {})


def test_run_filter_times_out_a_callback_that_never_comes():
    with pytest.raises(errors.Timeout):
        run_filter({'created': lambda d, p, cb: None}, 'created', {}, timeout=0.05)


def test_fake_connection_records_and_waits():
    conn = FakeConnection({'user': 'u'})
    assert conn.params == {'user': 'u'} and conn.provider == 'test'
    assert FakeConnection().id != conn.id
    threading.Thread(target=conn.send, args=('todos created', {'id': 1})).start()
    assert conn.wait_for(1, timeout=10) == [('todos created', {'id': 1})]
    conn.send('todos removed', {'id': 1})
    assert conn.events('todos removed') == [{'id': 1}]
    assert conn.events() == [{'id': 1}, {'id': 1}]
    with pytest.raises(TimeoutError, match='received 2 of 3'):
        conn.wait_for(3, timeout=0.01)


def test_fake_connection_receives_dispatched_events(company_app):
    app, api = company_app()
    carol = FakeConnection({'provider': 'test', 'user': USERS[2]})
    alice = FakeConnection({'provider': 'test', 'user': USERS[0]})
    api.state.connections.add(carol)
    api.state.connections.add(alice)
    api.service('todos').create({'companyId': 2})
    wait_for_dispatch(app)
    assert carol.events('todos created') == [{'companyId': 2, 'id': 1}]
    assert alice.sent == []


def test_wait_for_dispatch_times_out_with_an_explanation(company_app, todos):
    gate = threading.Event()
    app, api = company_app({'FEATHERS_FILTER_TIMEOUT': 5})
    todos.created = lambda data, params: gate.wait(5) and data
    api.state.connections.add(FakeConnection())
    api.service('todos').create({'companyId': 1})
    try:
        with pytest.raises(TimeoutError, match='1 deliveries pending.*FEATHERS_FILTER_TIMEOUT'):
            wait_for_dispatch(api, timeout=0.05)
    finally:
        gate.set()
    wait_for_dispatch(api)


def test_wait_for_dispatch_needs_the_extension_or_app():
    with pytest.raises(TypeError, match='Feathers extension or a Flask app'):
        wait_for_dispatch(object())
    with pytest.raises(RuntimeError, match='not initialised'):
        wait_for_dispatch(Flask('bare'))


def test_realtime_client_calls_and_received(company_app):
    app, api = company_app()
    with realtime_client(app, auth={'username': 'alice'}) as client:
        assert isinstance(client, RealtimeTestClient) and client.connected
        assert client.params['user'] == USERS[0]
        todos = client.service('todos')
        assert todos.create({'companyId': 1}) == (None, {'companyId': 1, 'id': 1})
        assert todos.get(1) == (None, {'companyId': 1, 'id': 1})
        assert todos.find({'companyId': 1}) == (None, [{'companyId': 1, 'id': 1}])
        error, result = todos.get(2)
        assert result is None and error['name'] == 'NotFound'
        assert client.call('todos', 'patch', 1, {'a': 1})[1]['a'] == 1
        assert client.received('todos created') == [{'companyId': 1, 'id': 1}]
        assert client.received() == [('todos patched', {'companyId': 1, 'id': 1, 'a': 1})]
        with pytest.raises(AttributeError, match='not a service method'):
            todos.frobnicate
    assert not client.connected


def test_realtime_client_needs_socketio(app):
    api = Feathers(app)
    api.configure(rest())
    with pytest.raises(RuntimeError, match='Socket.IO is not configured'):
        realtime_client(api)


def test_the_docs_example_module_runs(tmp_path):
    with open(DOCS, encoding='utf-8') as f:
        text = f.read().split('\nA test module\n-------------\n', 1)[1]
    block = text.split('.. code-block:: python\n', 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith('    '):
            break
        lines.append(line)
    (tmp_path / 'test_app.py').write_text(textwrap.dedent('\n'.join(lines)))
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-W', 'error',
         str(tmp_path / 'test_app.py')],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '4 passed' in proc.stdout
