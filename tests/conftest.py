"""Shared fixtures: the fixture service in both calling styles, live servers, Node clients."""
from __future__ import annotations

import copy
import os
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

pytest.register_assert_rewrite('support')
from flask import Flask  # noqa: E402
from hypothesis import settings

# Hypothesis' per-example deadline measures wall time: on a loaded 2-core CI machine that is noise,
# not a finding. Examples stay bounded by max_examples and by pytest-timeout.
settings.register_profile('flask_feathers', deadline=None)
settings.load_profile('flask_feathers')
from werkzeug.serving import make_server

from flask_feathers import errors

from support.node import installed as node_clients_installed, run_node
from support.services import (mysql_engine, new_service, pg_engine, services,  # noqa: F401
                              sqlite_url)  # fixtures, for every test module
from support.waiting import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.path.join(HERE, 'artifacts')


# -- markers: what a test needs besides Python (registered in setup.cfg; --strict-markers) ---------
# The fast loop: scripts/test -m "not slow" (every test that needs a browser or Node is slow too).

#: fixtures that mean a peer
_FIXTURE_MARKS = {'node': ('node', 'slow'), 'browser': ('browser', 'slow'),
                  'page': ('browser', 'slow')}
#: test modules whose tests all need a peer, or take seconds each
_MODULE_MARKS = {
    'test_demo_browser': ('browser', 'slow'), 'test_primus_js': ('browser', 'slow'),
    'test_primus_restart': ('browser', 'slow'), 'test_docs': ('slow',),
    'test_abuse': ('node', 'slow'), 'test_authentication': ('node', 'slow'),
    'test_connection_idle': ('node', 'slow'), 'test_connection_shutdown': ('node', 'slow'),
    'test_connection_primus': ('node', 'slow'), 'test_connection_deflate': ('node', 'slow'),
    'test_connection_serving': ('node', 'slow'), 'test_multiprocess': ('node', 'redis', 'slow'),
    'test_adapter_suite': ('node', 'slow'),
    'test_fanout_redis': ('redis',), 'test_packaging': ('slow',),
    'test_deployment': ('redis', 'slow'), 'test_serving': ('slow',),
    'test_fuzz_transports': ('slow',), 'test_faults': ('slow',), 'test_gunicorn': ('slow',),
    'test_primus_protocol': ('slow',),
}


def pytest_collection_modifyitems(config: Any, items: List[Any]) -> None:
    for item in items:
        marks = set(_MODULE_MARKS.get(item.module.__name__.rpartition('.')[2], ()))
        for fixture in getattr(item, 'fixturenames', ()):
            marks.update(_FIXTURE_MARKS.get(fixture, ()))
        nodeid = item.nodeid.lower()
        if 'postgres' in nodeid:
            marks.update(('postgres', 'slow'))
        if 'mariadb' in nodeid or 'mysql' in nodeid:
            marks.update(('mariadb', 'slow'))
        if 'concurrent' in nodeid:
            marks.add('slow')
        for mark in sorted(marks):
            item.add_marker(mark)


# -- the shared fixture service --------------------------------------------------------------------

class ReturnTodos:
    """Todos in return style: return or raise."""

    def __init__(self) -> None:
        self.store: Dict[int, Dict[str, Any]] = {}
        self.next_id = 1
        self.lock = threading.Lock()
        self.calls: List[tuple] = []

    def _get(self, id: Any) -> Dict[str, Any]:
        try:
            return self.store[int(id)]
        except (KeyError, ValueError, TypeError):
            raise errors.NotFound(f'No record found for id {id!r}') from None

    def find(self, params):
        self.calls.append(('find', params))
        query = dict((params or {}).get('query') or {})
        items = list(self.store.values())
        for key, value in query.items():
            if not key.startswith('$'):
                items = [i for i in items if str(i.get(key)) == str(value)]
        return copy.deepcopy(items)

    def get(self, id, params):
        self.calls.append(('get', id, params))
        return copy.deepcopy(self._get(id))

    def create(self, data, params):
        self.calls.append(('create', data, params))
        if isinstance(data, list):
            return [self.create(item, params) for item in data]
        if 'fail' in data:
            raise errors.BadRequest('asked to fail', data={'field': 'fail'})
        with self.lock:
            record = dict(data, id=self.next_id)
            self.store[self.next_id] = record
            self.next_id += 1
        return copy.deepcopy(record)

    def update(self, id, data, params):
        self.calls.append(('update', id, data, params))
        current = self._get(id)
        record = dict(data, id=current['id'])
        self.store[current['id']] = record
        return copy.deepcopy(record)

    def patch(self, id, data, params):
        self.calls.append(('patch', id, data, params))
        current = self._get(id)
        current.update(data)
        return copy.deepcopy(current)

    def remove(self, id, params):
        self.calls.append(('remove', id, params))
        record = self._get(id)
        del self.store[record['id']]
        return record


class CallbackTodos:
    """The same todos in callback style; the callback is called from another thread."""

    def __init__(self) -> None:
        self.inner = ReturnTodos()

    @property
    def store(self):
        return self.inner.store

    @property
    def calls(self):
        return self.inner.calls

    def _later(self, fn, args, callback):
        def run():
            try:
                result = fn(*args)
            except Exception as exc:  # noqa: BLE001 - handed to the callback like Feathers
                callback(exc)
            else:
                callback(None, result)
        threading.Thread(target=run).start()

    def find(self, params, callback):
        self._later(self.inner.find, (params,), callback)

    def get(self, id, params, callback):
        self._later(self.inner.get, (id, params), callback)

    def create(self, data, params, callback):
        self._later(self.inner.create, (data, params), callback)

    def update(self, id, data, params, callback):
        self._later(self.inner.update, (id, data, params), callback)

    def patch(self, id, data, params, callback):
        self._later(self.inner.patch, (id, data, params), callback)

    def remove(self, id, params, callback):
        self._later(self.inner.remove, (id, params), callback)


SERVICE_STYLES = {'return': ReturnTodos, 'callback': CallbackTodos}


@pytest.fixture(params=sorted(SERVICE_STYLES))
def todos(request):
    """A fresh fixture todos service, once per calling style."""
    return SERVICE_STYLES[request.param]()


@pytest.fixture
def app() -> Flask:
    app = Flask('flask_feathers_test')
    app.config['TESTING'] = True
    return app


@pytest.fixture
def api(app: Flask, todos: Any) -> Any:
    """``todos`` (both calling styles) served over REST and Socket.IO; a test module that needs
    another set-up defines its own ``api``."""
    from flask_feathers import Feathers, rest, socketio
    api = Feathers(app)
    api.configure(rest())
    api.configure(socketio())
    api.use('todos', todos)
    return api


# -- live servers ----------------------------------------------------------------------------------

class LiveServer:
    """A Flask app served by Werkzeug's threaded server on 127.0.0.1 in a background thread."""

    def __init__(self, app: Flask, port: Optional[int] = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.server = make_server('127.0.0.1', self.port, app, threaded=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       kwargs={'poll_interval': 0.05})
        self.thread.start()

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def live_server() -> Iterator[Callable[[Flask], LiveServer]]:
    """``live_server(app)`` starts ``app`` on a free port; stopped after the test."""
    servers: List[LiveServer] = []

    def start(app: Flask, port: Optional[int] = None) -> LiveServer:
        server = LiveServer(app, port)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


# -- real JavaScript clients ------------------------------------------------------------------------

@pytest.fixture
def node() -> Callable[..., List[Any]]:
    """``node(script, timeout=30)``: run a Node script against live servers (see run_node)."""
    if not node_clients_installed():
        pytest.fail('the npm test clients are not installed: run scripts/test (it runs npm ci in '
                    'tests/js)')
    return run_node


# -- Socket.IO apps: the seed's company example (tests/test_socketio*.py, tests/test_testing.py) ----

USERS = [
    {'id': 1, 'username': 'alice', 'companyId': 1},
    {'id': 2, 'username': 'bob', 'companyId': 1},
    {'id': 3, 'username': 'carol', 'companyId': 2},
]


class Users:
    """The seed's users service: ``find`` by ``username``."""

    def find(self, params):
        query = (params or {}).get('query') or {}
        return [dict(u) for u in USERS
                if 'username' not in query or u['username'] == query['username']]


def same_company(data, params, callback):
    """The seed's filter: only clients of the record's company get the event."""
    callback(None, data if data.get('companyId') == params['user']['companyId'] else False)


@pytest.fixture
def company_app(todos):
    """``make(config=None, setup_io=None, **socketio_options)`` -> ``(app, api)``.

    Users and the fixture todos (with the seed's ``created``/``updated`` company filters) behind the
    seed's ``io.use`` middleware, which puts the user found by ``socket.auth['username']`` in
    ``socket.feathers['user']``. ``setup_io(io)`` runs after that middleware is registered. The
    dispatcher and Socket.IO's background task are stopped after the test.
    """
    from flask_feathers import Feathers, socketio

    made = []

    def make(config=None, setup_io=None, **options):
        app = Flask('flask_feathers_company')
        app.config['TESTING'] = True
        app.config.update(config or {})
        api = Feathers(app)

        def configure_io(io):
            @io.use
            def authorize(socket, next):
                username = (socket.auth or {}).get('username')
                user = api.service('users').find({'query': {'username': username}})
                if not username or not user:
                    return next(errors.NotAuthenticated('Not authenticated!'))
                socket.feathers['user'] = user[0]
                next()
            if setup_io is not None:
                setup_io(io)

        api.configure(socketio(configure_io, **options))
        api.use('users', Users())
        todos.created = same_company
        todos.updated = same_company
        api.use('todos', todos)
        made.append(app)
        return app, api
    yield make
    for app in made:
        state = app.extensions['feathers']
        state.dispatcher.close()
        state.io.server.eio.shutdown()


@pytest.fixture
def prebuilt_frames(monkeypatch) -> List[Any]:
    """The messages broadcasts framed once for all their clients (``transport.Message.wire``),
    in order."""
    from flask_feathers.transport import websocket

    built: List[Any] = []
    wire = websocket.Message.wire

    def recording(self: Any) -> bytes:
        if self._wire is None:
            built.append(self.data)
        return wire.fget(self)
    monkeypatch.setattr(websocket.Message, 'wire', property(recording))
    return built


@pytest.fixture
def stopped_apps():
    """Apps whose background work (dispatcher, engine.io) stops after the test."""
    states: List[Any] = []
    yield states.append
    for state in states:
        state.dispatcher.close()
        state.io.server.eio.shutdown()
