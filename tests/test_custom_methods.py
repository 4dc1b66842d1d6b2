"""Custom service methods (Feathers 5): ``api.use(path, svc, methods=[...])`` on every transport,
through hooks, and only what is listed reachable by clients."""
import pytest

from flask_feathers import Feathers, primus, rest, socketio
from flask_feathers.testing import realtime_client


class Todos:
    def __init__(self):
        self.store = {1: {'id': 1, 'text': 'a', 'approved': False}}

    def find(self, params):
        return list(self.store.values())

    def create(self, data, params):
        todo = dict(data, id=len(self.store) + 1)
        self.store[todo['id']] = todo
        return todo

    def remove(self, id, params):
        return self.store.pop(int(id))

    def approve(self, data, params):
        todo = self.store[int(data['id'])]
        todo['approved'] = True
        return dict(todo, by=(params.get('user') or {}).get('name'))

    def _private(self, data, params):  # never reachable
        return 'secret'

    def setup(self, app, path):
        pass


@pytest.fixture
def api(app):
    api = Feathers(app)
    api.configure(rest())
    api.configure(socketio())
    api.configure(primus({'transformer': 'websockets'}))
    api.use('todos', Todos(), methods=['find', 'create', 'approve'])
    return api


def test_registration_checks_what_is_listed(app):
    api = Feathers(app)
    with pytest.raises(TypeError, match="lists the method 'archive' but has no such method"):
        api.use('todos', Todos(), methods=['find', 'archive'])
    for bad in ('setup', '_private', '__class__', 'hooks'):
        with pytest.raises(ValueError, match='cannot be a client method'):
            api.use('todos', Todos(), methods=[bad])
    with pytest.raises(TypeError, match='must be a list of names'):
        api.use('todos', Todos(), methods='approve')
    assert 'todos' not in api.services


def test_internal_calls_go_through_hooks_and_emit_no_event(app, api):
    seen = []
    api.service('todos').hooks(before={'approve': lambda ctx: seen.append((ctx.method, ctx.data))})
    with realtime_client(api) as client, app.app_context():
        result = api.service('todos').approve({'id': 1}, {'user': {'name': 'Ann'}})
        assert result == {'id': 1, 'text': 'a', 'approved': True, 'by': 'Ann'}
        assert seen == [('approve', {'id': 1})]
        assert client.received() == []  # a custom method sends no event...

        def announce(ctx):
            ctx.event = 'approved'
        api.service('todos').hooks(after={'approve': announce})
        api.service('todos').approve({'id': 1})
    # ...unless a hook names one the service declares (this one does not: logged, none sent)
    with app.app_context():
        assert api.service('todos').remove(1)['id'] == 1  # not listed: internal calls still reach it


def test_rest_custom_method_with_the_header_and_what_clients_cannot_reach(app, api):
    client = app.test_client()
    answer = client.post('/todos', json={'id': 1}, headers={'X-Service-Method': 'approve'})
    assert answer.status_code == 200
    assert answer.get_json() == {'id': 1, 'text': 'a', 'approved': True, 'by': None}
    for name in ('setup', '_private', '__class__', 'remove', 'nope'):
        refused = client.post('/todos', json={}, headers={'X-Service-Method': name})
        assert refused.status_code == 405, (name, refused.get_data())
        assert refused.get_json()['name'] == 'MethodNotAllowed'
    assert client.delete('/todos/1').status_code == 405  # remove is not listed
    wrong = client.get('/todos', headers={'X-Service-Method': 'approve'})
    assert wrong.status_code == 405


def test_socketio_both_dialects_and_refusals(app, api):
    with realtime_client(api) as client:
        err, result = client.emit('todos::approve', {'id': 1}, {})
        assert err is None and result['approved'] is True
        err, result = client.emit('approve', 'todos', {'id': 1}, {})
        assert err is None and result['approved'] is True
        for name in ('setup', '_private', '__class__', 'remove'):
            err, result = client.emit(f'todos::{name}', {'id': 1}, {})
            assert result is None and err['name'] == 'MethodNotAllowed', (name, err)


def test_real_clients_call_a_custom_method(app, api, live_server, node):
    server = live_server(app)
    out = node(f"""
const io = require('socket.io-client');
const {{ feathers }} = require('@feathersjs/feathers');
const socketio = require('@feathersjs/socketio-client');
const rest = require('@feathersjs/rest-client');
const Primus = require('primus');
const Socket = Primus.createSocket({{ transformer: 'websockets', plugin: {{ emitter: require('primus-emitter') }} }});
(async () => {{
  // Feathers 5's way: the client-side service declares the custom method.
  const socket = io('{server.url}', {{ transports: ['websocket'], reconnection: false }});
  const sockets = socketio(socket, {{ timeout: 5000 }});
  const app = feathers().configure(sockets);
  app.use('todos', sockets.service('todos'), {{ methods: ['find', 'create', 'approve'] }});
  out(await app.service('todos').approve({{ id: 1 }}));
  socket.close();
  const connection = rest('{server.url}').fetch(fetch);
  const restApp = feathers().configure(connection);
  restApp.use('todos', connection.service('todos'), {{ methods: ['find', 'create', 'approve'] }});
  out(await restApp.service('todos').approve({{ id: 1 }}));
  const primus = new Socket('{server.url}', {{ strategy: false }});
  out(await new Promise((resolve) => primus.send('todos::approve', {{ id: 1 }}, {{}},
    (error, result) => resolve([error, result]))));
  out(await new Promise((resolve) => primus.send('todos::setup', {{}}, {{}},
    (error) => resolve(error && error.name))));
  primus.end();
  done();
}})().catch((e) => fail(e && e.stack || e));
""")
    approved = {'id': 1, 'text': 'a', 'approved': True, 'by': None}
    assert out == [approved, approved, [None, approved], 'MethodNotAllowed']


def test_params_headers_on_every_transport(app, api, live_server):
    import json

    import simple_websocket

    seen = []
    api.service('todos').hooks(before={'find': lambda ctx: seen.append(
        (ctx.params.get('provider'), (ctx.params.get('headers') or {}).get('authorization')))})
    assert app.test_client().get('/todos', headers={'Authorization': 'Bearer rest'}).status_code \
        == 200
    with realtime_client(api, headers={'Authorization': 'Bearer sio'}) as client:
        assert client.call('todos', 'find')[0] is None
    server = live_server(app)
    ws = simple_websocket.Client.connect(f'ws://127.0.0.1:{server.port}/primus',
                                         headers={'Authorization': 'Bearer primus'})
    try:
        ws.send(json.dumps({'type': 0, 'data': ['todos::find', {}], 'id': 1}))
        while True:
            frame = json.loads(ws.receive(timeout=10))
            if isinstance(frame, dict) and frame.get('type') == 1:
                break
    finally:
        ws.close()
    assert seen == [('rest', 'Bearer rest'), ('socketio', 'Bearer sio'),
                    ('primus', 'Bearer primus')]
    with app.app_context():  # internal calls have none
        api.service('todos').find()
    assert seen[-1] == (None, None)


# -- route placeholders --------------------------------------------------------------------------

class Messages:
    def __init__(self):
        self.store = []

    def find(self, params):
        return [m for m in self.store if m['userId'] == params['route']['userId']]

    def create(self, data, params):
        message = dict(data, userId=params['route']['userId'], id=len(self.store) + 1)
        self.store.append(message)
        return message


def test_route_placeholders_on_every_transport_and_events_keep_the_registered_path(
        app, api, live_server, node):
    api.use('users/:userId/messages', Messages())
    api.use('users/me/messages', {'find': lambda params: ['the literal path wins']})
    client = app.test_client()
    created = client.post('/users/42/messages', json={'text': 'hi'})
    assert created.status_code == 201 and created.get_json()['userId'] == '42'
    assert client.get('/users/42/messages').get_json() == [created.get_json()]
    assert client.get('/users/7/messages').get_json() == []
    assert client.get('/users/me/messages').get_json() == ['the literal path wins']
    assert client.get('/users/42/nothing').status_code == 404
    with realtime_client(api) as sio:
        err, made = sio.emit('create', 'users/42/messages', {'text': 'socket'}, {})
        assert err is None and made['userId'] == '42'
        err, found = sio.emit('users/42/messages::find', {})
        assert err is None and [m['text'] for m in found] == ['hi', 'socket']
        assert sio.received('users/:userId/messages created') == [made]
    server = live_server(app)
    (ack,) = node(f"""
const Primus = require('primus');
const Socket = Primus.createSocket({{ transformer: 'websockets', plugin: {{ emitter: require('primus-emitter') }} }});
const primus = new Socket('{server.url}', {{ strategy: false }});
primus.send('users/9/messages::create', {{ text: 'primus' }}, {{}}, (error, result) => {{
  out([error, result]); primus.end(); done();
}});
setTimeout(() => fail('no ack'), 10000);
""")
    assert ack[0] is None and ack[1]['userId'] == '9'
    with app.app_context():  # internal calls name the registered path and pass the route
        internal = api.service('users/:userId/messages').find({'route': {'userId': '9'}})
    assert [m['text'] for m in internal] == ['primus']


def test_socket_io_client_calls_custom_methods_and_placeholders_in_both_dialects(
        app, api, live_server, node):
    api.use('users/:userId/messages', Messages())
    server = live_server(app)
    out = node(f"""
const io = require('socket.io-client');
const socket = io('{server.url}', {{ transports: ['websocket'], reconnection: false }});
const call = (...args) => new Promise((resolve) => socket.emit(...args, (e, r) => resolve([e, r])));
socket.on('connect', async () => {{
  out(await call('approve', 'todos', {{ id: 1 }}, {{}}));
  out(await call('todos::approve', {{ id: 1 }}, {{}}));
  out(await call('create', 'users/5/messages', {{ text: 'x' }}, {{}}));
  out(await call('users/5/messages::find', {{}}));
  out((await call('todos::__class__', {{}}, {{}}))[0].name);
  out((await call('_private', 'todos', {{}}, {{}})));
  socket.close();
  done();
}});
setTimeout(() => fail('timed out'), 10000);
""")
    approved = {'id': 1, 'text': 'a', 'approved': True, 'by': None}
    assert out[0] == [None, approved] and out[1] == [None, approved]
    assert out[2][0] is None and out[2][1]['userId'] == '5'
    assert out[3] == [None, [out[2][1]]]
    assert out[4] == 'MethodNotAllowed'
    # not even a call: an unknown event without a handler answers NotFound
    assert out[5][0]['name'] == 'NotFound'
