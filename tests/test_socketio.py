"""Socket.IO provider: Flask-SocketIO's test client, and python-socketio clients on a live server."""
import queue
import random
import threading
import time

import flask
import pytest
import socketio as python_socketio

from conftest import USERS
from support.clients import in_order
from support.waiting import wait_for
from flask_feathers import errors
from flask_feathers.testing import realtime_client, wait_for_dispatch

ALICE = {'username': 'alice'}  # company 1
BOB = {'username': 'bob'}  # company 1
CAROL = {'username': 'carol'}  # company 2


# -- a python-socketio peer on a live server --------------------------------------------------------

class Peer:
    """A python-socketio client that records every event and every ack id it gets."""

    def __init__(self, url, auth=None):
        self.events = queue.Queue()
        self.ack_ids = []
        self.sio = in_order(python_socketio.Client(reconnection=False))
        original = self.sio._handle_ack

        def handle_ack(namespace, id, data):
            self.ack_ids.append(id)
            return original(namespace, id, data)
        self.sio._handle_ack = handle_ack
        self.sio.on('*', lambda event, *args: self.events.put(
            (event, args[0] if len(args) == 1 else list(args))))
        self.sio.connect(url, auth=auth, transports=['websocket'], wait_timeout=5)

    def call(self, event, *args, timeout=5.0):
        """Emit with an ack; return ``(error, result)``."""
        ack = self.sio.call(event, args, timeout=timeout)
        if isinstance(ack, tuple):
            return ack[0], ack[1]
        return ack, None

    def next_event(self, name, timeout=5.0):
        """The data of the next event called ``name`` (others before it are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event, data = self.events.get(timeout=max(left, 0))
            except queue.Empty:
                raise AssertionError(f'no {name!r} event within {timeout:g} s') from None
            if event == name:
                return data

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def close(self):
        if self.sio.connected:
            self.sio.disconnect()
        self.sio.shutdown()


@pytest.fixture
def peers(live_server):
    """``connect(app, auth)`` -> a connected :class:`Peer`; all closed after the test."""
    made = []
    servers = {}

    def connect(app, auth=None):
        if app not in servers:
            servers[app] = live_server(app)
        peer = Peer(servers[app].url, auth)
        made.append(peer)
        return peer
    yield connect
    for peer in made:
        peer.close()


# -- calls through Flask-SocketIO's test client -----------------------------------------------------

def test_calls_in_both_dialects(company_app, todos):
    app, api = company_app()
    with realtime_client(api, auth=ALICE) as client:
        assert client.connected
        assert client.emit('todos::create', {'text': 'a', 'companyId': 1}, {}) == \
            (None, {'text': 'a', 'companyId': 1, 'id': 1})
        assert client.emit('create', 'todos', {'text': 'b', 'companyId': 1}, {}) == \
            (None, {'text': 'b', 'companyId': 1, 'id': 2})
        assert client.emit('todos::get', 1, {}) == (None, {'text': 'a', 'companyId': 1, 'id': 1})
        assert client.emit('get', 'todos', 2) == (None, {'text': 'b', 'companyId': 1, 'id': 2})
        assert client.emit('todos::find', {'text': 'b'})[1] == [todos.store[2]]
        assert client.emit('find', 'todos', {})[1] == list(todos.store.values())
        assert client.emit('todos::update', 1, {'text': 'A', 'companyId': 1}, {})[1] == \
            {'text': 'A', 'companyId': 1, 'id': 1}
        assert client.emit('patch', 'todos', 2, {'done': True}, {})[1]['done'] is True
        assert client.emit('todos::remove', 1, {})[1]['id'] == 1
        assert client.emit('remove', 'todos', 2)[1]['id'] == 2
        assert todos.store == {}
        events = client.received()
    assert [name for name, _ in events] == [
        'todos created', 'todos created', 'todos updated', 'todos patched', 'todos removed',
        'todos removed']


def test_client_params_are_the_query_only(company_app, todos):
    app, api = company_app()
    with realtime_client(api, auth=ALICE) as client:
        spoof = {'user': {'id': 99, 'companyId': 2}, 'provider': 'rest', 'done': 'x'}
        assert client.emit('todos::find', spoof) == (None, [])
        assert client.emit('create', 'todos', {'companyId': 1}, dict(spoof))[0] is None
    (_, find_params), (_, _, create_params) = todos.calls
    for params in (find_params, create_params):
        assert params['query'] == spoof
        assert params['user'] == USERS[0]
        assert params['provider'] == 'socketio'
        # and the handshake's headers (Feathers 5's params.headers), set by the server
        assert set(params) - {'connection'} == {'query', 'user', 'provider', 'headers'}
        assert all(name == name.lower() for name in params['headers'])


@pytest.mark.parametrize('event, args, name, message', [
    ('nothing::find', ({},), 'NotFound', "Service 'nothing' not found"),
    ('find', ('nothing', {}), 'NotFound', "Service 'nothing' not found"),
    ('todos::frobnicate', ({},), 'MethodNotAllowed', 'frobnicate'),
    ('todos::get', (1, {}, {}), 'BadRequest', 'Too many arguments'),
    ('todos::find', ({}, {}), 'BadRequest', 'Too many arguments'),
    ('todos::create', ('text', {}), 'BadRequest', 'must be an object'),
    ('todos::update', (1, [1], {}), 'BadRequest', 'must be an object'),
    ('todos::patch', (1, None, {}), 'BadRequest', 'must be an object'),
    ('todos::get', (), 'BadRequest', 'missing its `id`'),
    ('todos::update', (None, {}, {}), 'BadRequest', 'needs an id'),
    ('todos::get', ({'a': 1}, {}), 'BadRequest', 'id of `get`'),
    ('todos::find', ('q',), 'BadRequest', 'query of `find` must be an object'),
    ('create', (), 'BadRequest', 'service path'),
    ('todos::get', (404, {}), 'NotFound', 'No record found'),
    ('todos::create', ({'fail': 1}, {}), 'BadRequest', 'asked to fail'),
    ('users::remove', (1, {}), 'MethodNotAllowed', 'not supported'),
    ('my unknown event', ({},), 'NotFound', 'No handler'),
])
def test_bad_calls_are_answered_with_errors(company_app, event, args, name, message):
    app, api = company_app()
    with realtime_client(api, auth=ALICE) as client:
        error, result = client.emit(event, *args)
    assert result is None
    assert error['name'] == name, error
    assert message in error['message'], error
    assert error['code'] == getattr(errors, name).code


def test_service_error_keeps_its_data(company_app):
    app, api = company_app()
    with realtime_client(api, auth=ALICE) as client:
        error, _ = client.call('todos', 'create', {'fail': True})
    assert error == {'name': 'BadRequest', 'message': 'asked to fail', 'code': 400,
                     'className': 'bad-request', 'data': {'field': 'fail'}}


def test_internal_errors_do_not_leak(company_app):
    def boom(params):
        raise KeyError('secret detail')

    app, api = company_app()
    api.use('broken', {'find': boom})
    with realtime_client(api, auth=ALICE) as client:
        error, _ = client.call('broken', 'find')
    assert error['name'] == 'GeneralError' and 'secret' not in error['message']


def test_services_registered_after_clients_connected(company_app):
    app, api = company_app()
    with realtime_client(api, auth=ALICE) as client:
        assert client.call('late', 'find')[0]['name'] == 'NotFound'
        api.use('late', {'find': lambda params: ['here'],
                         'create': lambda data, params: dict(data, late=True)})
        assert client.call('late', 'find') == (None, ['here'])
        assert client.emit('create', 'late', {'a': 1}) == (None, {'a': 1, 'late': True})
        assert client.received('late created') == [{'a': 1, 'late': True}]


def test_company_filter_with_the_test_client(company_app):
    app, api = company_app()
    clients = {who['username']: realtime_client(api, auth=who) for who in (ALICE, BOB, CAROL)}
    try:
        alice, bob, carol = clients['alice'], clients['bob'], clients['carol']
        assert alice.params['user'] == USERS[0] and carol.params['user'] == USERS[2]
        _, todo = alice.service('todos').create({'text': 'x', 'companyId': 1})
        alice.service('todos').update(todo['id'], {'text': 'y', 'companyId': 1})
        _, other = carol.service('todos').create({'text': 'z', 'companyId': 2})
        for client in (alice, bob):
            assert client.received() == [
                ('todos created', todo), ('todos updated', {'text': 'y', 'companyId': 1, 'id': 1})]
        assert carol.received() == [('todos created', other)]
    finally:
        for client in clients.values():
            client.disconnect()


def test_custom_service_event_is_filtered(company_app):
    class Chat:
        events = ['typing']

        def create(self, data, params):
            return data

        def typing(self, data, params):
            return data if data['companyId'] == params['user']['companyId'] else None

    app, api = company_app()
    chat = api.use('chat', Chat())
    with realtime_client(api, auth=ALICE) as alice, realtime_client(api, auth=CAROL) as carol:
        chat.emit('typing', {'companyId': 2, 'who': 'carol'})
        assert carol.received('chat typing') == [{'companyId': 2, 'who': 'carol'}]
        assert alice.received('chat typing') == []


def test_disconnect_removes_the_connection(company_app):
    app, api = company_app()
    client = realtime_client(api, auth=ALICE)
    assert len(api.state.connections) == 1
    client.disconnect()
    assert len(api.state.connections) == 0


# -- io.use middleware and the user's own handlers ---------------------------------------------------

def test_refused_connection_is_not_registered(company_app):
    app, api = company_app()
    client = realtime_client(api, auth={'username': 'mallory'})
    assert not client.connected
    assert len(api.state.connections) == 0
    with pytest.raises(RuntimeError, match='not connected'):
        client.call('todos', 'find')


@pytest.mark.parametrize('behaviour', ['raises', 'next_error', 'returns_false_in_connect',
                                       'never_calls_next'])
def test_middleware_failures_refuse(company_app, behaviour, caplog):
    def setup_io(io):
        if behaviour == 'raises':
            @io.use
            def crash(socket, next):
                raise ValueError('middleware crashed')
        elif behaviour == 'next_error':
            io.use(lambda socket, next: next(errors.Forbidden('no way')))
        elif behaviour == 'never_calls_next':
            io.use(lambda socket, next: None)
        else:
            io.on('connect')(lambda auth: False)

    app, api = company_app({'FEATHERS_CALLBACK_TIMEOUT': 0.2}, setup_io)
    client = realtime_client(api, auth=ALICE)
    assert not client.connected
    assert len(api.state.connections) == 0


def test_middleware_runs_in_order_then_the_users_connect_handler(company_app):
    order = []

    def setup_io(io):
        @io.use
        def second(socket, next):
            order.append(('middleware', socket.feathers['user']['username'],
                          socket.request.headers.get('X-Test')))
            socket.feathers['extra'] = 'set by middleware'
            # next() from another thread, a little later
            threading.Thread(target=next).start()

        @io.on('connect')
        def connect(auth):
            order.append(('connect', auth['username'], flask.request.sid is not None))

        @io.on('disconnect')
        def disconnect():
            order.append(('disconnect',))

    app, api = company_app(setup_io=setup_io)
    client = realtime_client(api, auth=ALICE, headers={'X-Test': 'yes'})
    assert client.connected
    assert client.params['extra'] == 'set by middleware'
    client.disconnect()
    assert order == [('middleware', 'alice', 'yes'), ('connect', 'alice', True),
                     ('disconnect',)]


def test_custom_events_still_work(company_app):
    got = []

    def setup_io(io):
        @io.on('my other event')
        def other(data):
            got.append(data)
            return 'thanks'

    app, api = company_app(setup_io=setup_io)
    with realtime_client(api, auth=ALICE) as client:
        assert client.client.emit('my other event', {'my': 'data'}, callback=True) == 'thanks'
    assert got == [{'my': 'data'}]


# -- live server, python-socketio clients ----------------------------------------------------------

def test_live_company_example(company_app, peers):
    app, api = company_app()
    alice, bob, carol = peers(app, ALICE), peers(app, BOB), peers(app, CAROL)
    err, todo = alice.call('todos::create', {'text': 'x', 'companyId': 1}, {})
    assert err is None
    assert alice.next_event('todos created') == todo
    assert bob.next_event('todos created') == todo
    alice.call('todos::update', todo['id'], {'text': 'y', 'companyId': 1}, {})
    assert bob.next_event('todos updated') == {'text': 'y', 'companyId': 1, 'id': todo['id']}
    # Carol's events arrive in order: once her own company's event is here, company 1's two
    # events would have come before it.
    err, mine = carol.call('create', 'todos', {'text': 'c', 'companyId': 2}, {})
    assert carol.next_event('todos created') == mine
    assert carol.drain() == []
    assert alice.next_event('todos updated')['text'] == 'y'
    for peer in (alice, bob, carol):
        assert len(peer.ack_ids) == len(set(peer.ack_ids)), 'an ack arrived twice'


def test_live_filter_sends_a_changed_copy(company_app, peers, todos):
    def patched(data, params):
        return dict(data, seenBy=params['user']['username'], secret=None)

    app, api = company_app()
    todos.patched = patched
    alice, carol = peers(app, ALICE), peers(app, CAROL)
    _, todo = alice.call('todos::create', {'text': 'x', 'companyId': 1, 'secret': 's'}, {})
    _, result = alice.call('todos::patch', todo['id'], {'done': True}, {})
    assert result['secret'] == 's', 'the caller\'s ack is the unfiltered result'
    assert alice.next_event('todos patched') == dict(result, seenBy='alice', secret=None)
    assert carol.next_event('todos patched') == dict(result, seenBy='carol', secret=None)
    assert todos.store[todo['id']]['secret'] == 's', 'the filter changed the stored record'


@pytest.mark.parametrize('failure', ['raises', 'sleeps'])
def test_live_failing_filter_skips_one_client_others_are_prompt(company_app, peers, todos,
                                                                 failure, caplog):
    release = threading.Event()

    def removed(data, params):
        if params['user']['username'] == 'carol':
            if failure == 'raises':
                raise RuntimeError('filter bug for carol')
            release.wait(5)  # hangs far past FEATHERS_FILTER_TIMEOUT
        return data

    app, api = company_app({'FEATHERS_FILTER_TIMEOUT': 2.0})
    todos.removed = removed
    alice, bob, carol = peers(app, ALICE), peers(app, BOB), peers(app, CAROL)
    try:
        _, todo = alice.call('todos::create', {'companyId': 2}, {})
        carol.next_event('todos created')
        alice.call('todos::remove', todo['id'], {})
        for peer in (alice, bob):
            assert peer.next_event('todos removed', timeout=10) == todo
        # checked by order: they had it while carol's filter still hung (not yet skipped)
        if failure == 'sleeps':
            assert 'took longer' not in caplog.text, \
                'the others got the event only after carol\'s filter was skipped'
    finally:
        release.set()
    # carol gets the next event (after her skipped one) and never the skipped one
    alice.call('create', 'todos', {'companyId': 2}, {})
    assert carol.next_event('todos created', timeout=10)['companyId'] == 2
    assert all(name != 'todos removed' for name, _ in carol.drain())


def test_live_order_of_200_rapid_events_with_parallel_filters(company_app, peers, todos):
    rnd = random.Random(42)
    lock = threading.Lock()

    def patched(data, params):
        with lock:
            delay = rnd.uniform(0, 0.002)
        time.sleep(delay)  # filters finish out of order
        return dict(data, to=params['user']['username'])

    app, api = company_app({'FEATHERS_FILTER_WORKERS': 6})
    todos.patched = patched
    clients = [peers(app, who) for who in (ALICE, BOB, CAROL)]
    service = api.service('todos')
    with app.app_context():
        todo = service.create({'n': -1, 'companyId': 1})
        for n in range(200):
            service.patch(todo['id'], {'n': n})
    for peer, who in zip(clients, ('alice', 'bob', 'carol')):
        got = [peer.next_event('todos patched') for _ in range(200)]
        assert [d['n'] for d in got] == list(range(200)), f'{who} got events out of order'
        assert {d['to'] for d in got} == {who}
    wait_for_dispatch(api, 5)


def test_live_refusal_and_middleware_that_never_calls_next(company_app, live_server):
    def setup_io(io):
        @io.use
        def stall(socket, next):
            if (socket.auth or {}).get('stall'):
                return  # never calls next
            next()

    app, api = company_app({'FEATHERS_CALLBACK_TIMEOUT': 0.3}, setup_io)
    server = live_server(app)
    for auth, expected in (({'username': 'mallory'}, 'Not authenticated!'),
                           ({'username': 'alice', 'stall': True}, 'callback within 0.3 s')):
        sio = in_order(python_socketio.Client(reconnection=False))
        errors_seen = []
        sio.on('connect_error', errors_seen.append)
        try:
            with pytest.raises(python_socketio.exceptions.ConnectionError):
                sio.connect(server.url, auth=auth, transports=['websocket'], wait_timeout=10)
        finally:
            sio.shutdown()
        assert errors_seen and expected in errors_seen[0]['message'], errors_seen
    assert len(api.state.connections) == 0


def test_live_calls_are_answered_while_an_earlier_slow_call_runs(company_app, peers):
    release = threading.Event()
    entered = threading.Event()

    def slow_find(params):
        entered.set()
        if not release.wait(30):
            raise errors.Timeout('never released')
        return ['slow']

    app, api = company_app()
    api.use('slow', {'find': slow_find})
    alice = peers(app, ALICE)
    slow_ack = queue.Queue()
    alice.sio.emit('slow::find', ({},), callback=lambda *a: slow_ack.put(a))
    assert entered.wait(10)
    try:
        # isolation, not speed: the answer comes while the slow call still hangs (it is released
        # only after this one returned)
        assert alice.call('todos::find', {}, timeout=20) == (None, [])
    finally:
        release.set()
    assert slow_ack.get(timeout=10) == (None, ['slow'])


def test_live_custom_event_and_disconnect(company_app, peers):
    got = queue.Queue()

    def setup_io(io):
        @io.on('my other event')
        def other(data):
            got.put((flask.request.sid, data))
            return 'ok'

    app, api = company_app(setup_io=setup_io)
    alice = peers(app, ALICE)
    assert alice.sio.call('my other event', {'my': 'data'}, timeout=10) == 'ok'
    assert got.get(timeout=10)[1] == {'my': 'data'}  # put before the handler answered
    assert len(api.state.connections) == 1
    alice.close()
    wait_for(lambda: len(api.state.connections) == 0, 10, 'the connection to leave the registry',
             lambda: len(api.state.connections))


def test_connect_handlers_find_the_feathers_params_on_the_session(app, todos):
    import flask

    from flask_feathers import Feathers, socketio
    seen = []

    def setup_io(io):
        @io.use
        def authorize(socket, next):
            socket.feathers['user'] = {'name': 'alice'}
            next()

        @io.on('connect')
        def connected(auth):
            seen.append(flask.session.get('feathers'))
    api = Feathers(app)
    api.configure(socketio(setup_io))
    api.use('todos', todos)
    client = api.io.test_client(app)
    assert client.is_connected()
    assert seen == [{'provider': 'socketio', 'user': {'name': 'alice'}}]
    client.disconnect()


def test_socket_calls_do_not_raise_a_routing_error_in_their_request_context(app):
    # Flask-SocketIO runs every event in a request context of the connection's environ; its URL
    # matched no rule, so each call built and kept a NotFound (a few percent of a call's CPU).
    import flask
    from flask_feathers import Feathers, socketio
    from flask_feathers.testing import realtime_client

    api = Feathers(app)
    api.configure(socketio())
    seen = []

    class Probe:
        def find(self, params):
            seen.append(flask.request.routing_exception)
            return []
    api.use('probe', Probe())
    with realtime_client(api) as client:
        assert client.call('probe', 'find') == (None, [])
    assert seen == [None]

