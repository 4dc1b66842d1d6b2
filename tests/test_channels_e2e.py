"""Channels and publishers end to end, with socket.io-client, Primus and @feathersjs/client 5.

The app follows the Feathers 5 generator's pattern: every new connection joins ``anonymous``; signing
in (``authentication::create``) moves it to ``authenticated`` and a per-company channel; todos are
published to their company's channel, everything else to ``authenticated``.
"""
import threading

import pytest
from flask import Flask

from flask_feathers import Feathers, MemoryService, errors, primus, socketio

USERS = {'alice': {'name': 'alice', 'companyId': 1}, 'bob': {'name': 'bob', 'companyId': 1},
         'carol': {'name': 'carol', 'companyId': 2}}

HEADER = """
const { io } = require('socket.io-client');
const Primus = require('primus');
const PrimusSocket = Primus.createSocket({transformer: 'websockets',
                                          plugin: {emitter: require('primus-emitter')}});
const timeout = (ms, why) => setTimeout(() => fail('timed out: ' + why), ms);
const connect = (url) => new Promise((res) => {
  const s = io(url, {transports: ['websocket']}); s.on('connect', () => res(s)); });
const call = (s, ...args) => new Promise((res) => s.emit(...args, (e, r) => res([e, r])));
const pcall = (s, ...args) => new Promise((res) => s.send(...args, (e, r) => res([e, r])));
const popen = (url) => new Promise((res) => { const p = new PrimusSocket(url); p.on('open', () => res(p)); });
"""


class Authentication:
    def __init__(self, api):
        self.api = api

    def create(self, data, params):
        user = USERS.get(data.get('user'))
        if user is None:
            raise errors.NotAuthenticated('Unknown user')
        connection = params.get('connection')
        if connection is not None:
            connection.params['user'] = user
            self.api.channel('anonymous').leave(connection)
            self.api.channel('authenticated').join(connection)
            self.api.channel(f"company/{user['companyId']}").join(connection)
        return {'user': user}


class FilteredTodos(MemoryService):
    """MemoryService plus a seed-style filter, to check it runs only for chosen connections."""

    def __init__(self):
        super().__init__(paginate=None)
        self.filter_calls = []
        self.lock = threading.Lock()

    def patched(self, data, params):
        with self.lock:
            self.filter_calls.append(params.get('user', {}).get('name'))
        return data if params.get('user', {}).get('name') != 'bob' else None


@pytest.fixture
def channel_app():
    app = Flask('channels_e2e')
    api = Feathers(app)
    api.configure(socketio())
    api.configure(primus({'transformer': 'websockets'}))
    api.on('connection', lambda connection: api.channel('anonymous').join(connection))
    api.use('authentication', Authentication(api))
    todos = FilteredTodos()
    api.use('todos', todos)
    api.publish(lambda data, context: api.channel('authenticated'))
    api.service('todos').publish('created', lambda data, context: api.channel(
        f"company/{data['companyId']}"))
    return app, api, todos


def test_generator_pattern_over_socketio_and_primus(channel_app, live_server, node):
    app, api, todos = channel_app
    server = live_server(app)
    out = node(HEADER + f"""
    timeout(15000, 'channel events');
    (async () => {{
      const url = '{server.url}';
      const alice = await connect(url), carol = await connect(url), anon = await connect(url);
      const bob = await popen(url);                       // bob is on Primus
      const got = {{alice: [], bob: [], carol: [], anon: []}};
      for (const [name, s] of [['alice', alice], ['carol', carol], ['anon', anon], ['bob', bob]]) {{
        s.on('todos created', (t) => got[name].push('created ' + t.text));
        s.on('todos patched', (t) => got[name].push('patched ' + t.text));
      }}
      out(await call(alice, 'create', 'authentication', {{user: 'alice'}}, {{}}));
      out(await call(carol, 'authentication::create', {{user: 'carol'}}, {{}}));
      out(await pcall(bob, 'authentication::create', {{user: 'bob'}}, {{}}));
      await call(alice, 'todos::create', {{text: 'acme', companyId: 1}}, {{}});
      await call(carol, 'todos::create', {{text: 'globex', companyId: 2}}, {{}});
      await call(carol, 'todos::patch', 1, {{text: 'acme done'}}, {{}});
      await call(alice, 'todos::create', {{text: 'last', companyId: 1}}, {{}});
      setTimeout(() => {{ out(got); [alice, carol, anon].forEach((s) => s.close()); bob.end(); done(); }}, 300);
    }})();
    """)
    assert [o[1]['user']['name'] for o in out[:3]] == ['alice', 'carol', 'bob']
    got = out[3]
    assert got['alice'] == ['created acme', 'patched acme done', 'created last']
    # bob (Primus, same company) gets the company's todos; the patched filter refuses him
    assert got['bob'] == ['created acme', 'created last']
    assert got['carol'] == ['created globex', 'patched acme done']
    assert got['anon'] == []
    # the filter ran only for the connections the publisher chose (the three signed-in ones)
    assert sorted(todos.filter_calls) == ['alice', 'bob', 'carol']


def test_union_without_duplicates_and_leave_on_disconnect(channel_app, live_server, node):
    app, api, todos = channel_app
    api.service('todos').publish('created', lambda data, context: [
        api.channel('authenticated'), api.channel(f"company/{data['companyId']}"),
        api.channel('authenticated', f"company/{data['companyId']}")])
    server = live_server(app)
    joined = threading.Event()
    left = threading.Event()
    api.on('connection', lambda c: joined.set())
    api.on('disconnect', lambda c: left.set())
    out = node(HEADER + f"""
    timeout(10000, 'union');
    (async () => {{
      const alice = await connect('{server.url}');
      let n = 0;
      alice.on('todos created', () => n++);
      await call(alice, 'authentication::create', {{user: 'alice'}}, {{}});
      await call(alice, 'todos::create', {{text: 'once', companyId: 1}}, {{}});
      await call(alice, 'todos::find', {{}});
      setTimeout(() => {{ out({{n}}); alice.close(); done(); }}, 200);
    }})();
    """)
    assert out == [{'n': 1}]
    assert joined.is_set()
    assert left.wait(15), 'no disconnect seen'
    assert api.channel('authenticated').length == 0
    assert api.channel('company/1').length == 0
    assert set(api.channels) >= {'anonymous', 'authenticated', 'company/1'}


def test_per_channel_payloads(channel_app, live_server, node):
    app, api, todos = channel_app
    api.service('todos').publish('created', lambda data, context: [
        api.channel(f"company/{data['companyId']}"),
        api.channel('authenticated').send({'id': data['id'], 'redacted': True})])
    server = live_server(app)
    out = node(HEADER + f"""
    timeout(10000, 'payloads');
    (async () => {{
      const alice = await connect('{server.url}'), carol = await connect('{server.url}');
      const got = {{}};
      alice.on('todos created', (t) => got.alice = t);
      carol.on('todos created', (t) => got.carol = t);
      await call(alice, 'authentication::create', {{user: 'alice'}}, {{}});
      await call(carol, 'authentication::create', {{user: 'carol'}}, {{}});
      await call(alice, 'todos::create', {{text: 'secret plan', companyId: 1}}, {{}});
      setTimeout(() => {{ out(got); alice.close(); carol.close(); done(); }}, 300);
    }})();
    """)
    assert out == [{'alice': {'text': 'secret plan', 'companyId': 1, 'id': 1},
                    'carol': {'id': 1, 'redacted': True}}]


def test_feathers_5_client_with_channels(channel_app, live_server, node):
    app, api, todos = channel_app
    server = live_server(app)
    out = node(HEADER + f"""
    timeout(10000, 'feathers 5');
    const {{ feathers }} = require('@feathersjs/feathers');
    const socketioClient = require('@feathersjs/socketio-client');
    const client = (s) => feathers().configure(socketioClient(s));
    (async () => {{
      const a = io('{server.url}', {{transports: ['websocket']}});
      const c = io('{server.url}', {{transports: ['websocket']}});
      const alice = client(a), carol = client(c);
      const got = {{alice: [], carol: []}};
      alice.service('todos').on('created', (t) => got.alice.push(t.text));
      carol.service('todos').on('created', (t) => got.carol.push(t.text));
      await alice.service('authentication').create({{user: 'alice'}});
      await carol.service('authentication').create({{user: 'carol'}});
      try {{ await carol.service('authentication').create({{user: 'mallory'}}); fail('mallory'); }}
      catch (e) {{ out({{error: e.name, code: e.code}}); }}
      await alice.service('todos').create({{text: 'for acme', companyId: 1}});
      await carol.service('todos').create({{text: 'for globex', companyId: 2}});
      setTimeout(() => {{ out(got); a.close(); c.close(); done(); }}, 300);
    }})();
    """)
    assert out == [{'error': 'NotAuthenticated', 'code': 401},
                   {'alice': ['for acme'], 'carol': ['for globex']}]


def test_publisher_precedence_end_to_end(channel_app, live_server, node):
    app, api, todos = channel_app
    api.publish('created', lambda data, context: None)            # app event: below service ones
    api.service('todos').publish(lambda data, context: api.channel('anonymous'))  # service *
    server = live_server(app)
    out = node(HEADER + f"""
    timeout(10000, 'precedence');
    (async () => {{
      const anon = await connect('{server.url}'), alice = await connect('{server.url}');
      const got = {{anon: [], alice: []}};
      for (const [n, s] of [['anon', anon], ['alice', alice]]) {{
        s.on('todos created', (t) => got[n].push('created'));
        s.on('todos removed', (t) => got[n].push('removed'));
      }}
      await call(alice, 'authentication::create', {{user: 'alice'}}, {{}});
      await call(alice, 'todos::create', {{text: 'x', companyId: 1}}, {{}});
      await call(alice, 'todos::remove', 1, {{}});
      setTimeout(() => {{ out(got); anon.close(); alice.close(); done(); }}, 300);
    }})();
    """)
    # created: service event publisher (company/1) wins; removed: service catch-all (anonymous)
    assert out == [{'anon': ['removed'], 'alice': ['created']}]


def test_a_raising_publisher_sends_nothing_and_is_logged(channel_app, caplog):
    app, api, todos = channel_app
    api.service('todos').publish('created', lambda data, context: 1 / 0)
    with app.app_context():
        client = api.io.test_client(app)
        client.emit('todos::create', {'text': 'x', 'companyId': 1}, {}, callback=True)
        api.state.dispatcher.wait_idle(30)
        assert client.get_received() == []
        client.disconnect()
    assert 'publisher for' in caplog.text and 'ZeroDivisionError' in caplog.text
