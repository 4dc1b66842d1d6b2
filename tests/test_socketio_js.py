"""Socket.IO provider against real JavaScript clients from npm.

socket.io-client 4 with the seed's snippets, @feathersjs/client 5 with @feathersjs/socketio-client
(modern dialect) and feathers-client 2.x over socket.io-client 4 (legacy dialect).
"""
import pytest

#: Shared by every script: bounded waits that fail the script with a message.
HELPERS = r"""
const URL = process.env.SERVER_URL;
const io = require('socket.io-client');
const within = (p, ms, what) => Promise.race([p, new Promise((_, reject) =>
  setTimeout(() => reject(new Error('timed out waiting for ' + what)), ms))]);
const next = (emitter, name, ms = 3000) =>
  within(new Promise((resolve) => emitter.once(name, resolve)), ms, name);
const connect = (auth) => {
  const socket = io(URL, { auth, transports: ['websocket'], reconnection: false });
  return within(new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => reject(err));
  }), 3000, 'connect').catch((err) => { socket.close(); throw err; });
};
const run = (main) => main().then(() => done(), (e) => fail(e && e.stack || e));
"""


@pytest.fixture
def server(company_app, live_server):
    app, api = company_app()
    return live_server(app)


def js(node, server, script, timeout=30):
    return node(HELPERS + script, timeout=timeout, env={'SERVER_URL': server.url})


def test_seed_snippets_with_socket_io_client(company_app, live_server, node):
    def setup_io(io):
        @io.on('my other event')
        def other(data):
            return {'got': data}

    app, api = company_app(setup_io=setup_io)
    server = live_server(app)
    out = js(node, server, r"""
run(async () => {
  const alice = await connect({ username: 'alice' });
  const carol = await connect({ username: 'carol' });
  const created = next(alice, 'todos created');
  const acked = await within(new Promise((resolve) =>
    alice.emit('todos::create', { text: 'I really have to iron', companyId: 1 }, {},
      (error, todo) => resolve([error, todo]))), 3000, 'create ack');
  out(acked);
  out(await created);
  // Carol (company 2) gets her own company's update, and nothing of company 1 before it.
  const seen = [];
  carol.onAny((name, data) => seen.push(name));
  const ackCarol = await within(new Promise((resolve) =>
    carol.emit('create', 'todos', { companyId: 2 }, {}, (e, r) => resolve(r))), 3000, 'ack');
  await within(new Promise((resolve) => { if (seen.length) resolve(); else carol.onAny(resolve); }),
    3000, 'carol created');
  out(seen);
  out(await within(new Promise((resolve) =>
    alice.emit('my other event', { my: 'data' }, resolve)), 3000, 'custom event ack'));
  out(await within(new Promise((resolve) =>
    alice.emit('todos::get', 99, {}, (error) => resolve(error))), 3000, 'NotFound'));
  try {
    await connect({ username: 'mallory' });
    fail('mallory was let in');
  } catch (err) {
    out({ message: err.message, data: err.data });
  }
  alice.close(); carol.close();
});
""")
    assert out[0] == [None, {'text': 'I really have to iron', 'companyId': 1, 'id': 1}]
    assert out[1] == out[0][1]
    assert out[2] == ['todos created']
    assert out[3] == {'got': {'my': 'data'}}
    assert out[4]['name'] == 'NotFound' and out[4]['code'] == 404
    assert out[5] == {'message': 'Not authenticated!', 'data': {
        'name': 'NotAuthenticated', 'message': 'Not authenticated!', 'code': 401,
        'className': 'not-authenticated'}}


def test_feathers_client_5(server, node):
    out = js(node, server, r"""
const { feathers } = require('@feathersjs/feathers');
const socketio = require('@feathersjs/socketio-client');
const errors = require('@feathersjs/errors');
run(async () => {
  const socket = await connect({ username: 'alice' });
  const app = feathers().configure(socketio(socket, { timeout: 3000 }));
  const todos = app.service('todos');
  const created = within(new Promise((resolve) => todos.once('created', resolve)), 3000,
    'service created event');
  const todo = await todos.create({ text: 'a', companyId: 1 });
  out(todo);
  out(await created);
  out(await todos.get(todo.id));
  out(await todos.find({ query: { text: 'a' } }));
  out(await todos.update(todo.id, { text: 'b', companyId: 1 }));
  out(await todos.patch(todo.id, { done: true }));
  out(await todos.remove(todo.id));
  const caught = [];
  for (const call of [() => todos.get(todo.id), () => app.service('nothing').find(),
                      () => todos.create({ fail: true }), () => app.service('users').remove(1)]) {
    try { await call(); caught.push('resolved!'); } catch (err) {
      caught.push({ name: err.name, code: err.code, message: err.message, data: err.data,
                    isNotFound: err instanceof errors.NotFound,
                    isBadRequest: err instanceof errors.BadRequest,
                    isFeathersError: err instanceof errors.FeathersError });
    }
  }
  out(caught);
  socket.close();
});
""")
    todo = {'text': 'a', 'companyId': 1, 'id': 1}
    assert out[:4] == [todo, todo, todo, [todo]]
    assert out[4] == {'text': 'b', 'companyId': 1, 'id': 1}
    assert out[5] == {'text': 'b', 'companyId': 1, 'id': 1, 'done': True}
    assert out[6] == out[5]
    not_found, no_service, bad, not_allowed = out[7]
    assert not_found['name'] == 'NotFound' and not_found['code'] == 404
    assert not_found['isNotFound'] and not_found['isFeathersError']
    assert no_service['isNotFound'] and 'nothing' in no_service['message']
    assert bad['isBadRequest'] and bad['data'] == {'field': 'fail'}
    assert not_allowed['name'] == 'MethodNotAllowed' and not_allowed['code'] == 405
    assert not_allowed['isFeathersError'] and not not_allowed['isNotFound']


def test_feathers_client_2_legacy_dialect(server, node):
    out = js(node, server, r"""
const feathers = require('feathers-client');
run(async () => {
  const socket = await connect({ username: 'bob' });
  const app = feathers().configure(feathers.socketio(socket));
  const todos = app.service('todos');
  const created = within(new Promise((resolve) => todos.once('created', resolve)), 3000,
    'service created event');
  const updated = within(new Promise((resolve) => todos.once('updated', resolve)), 3000,
    'service updated event');
  const todo = await todos.create({ text: 'a', companyId: 1 });
  out(todo);
  out(await created);
  out(await todos.get(todo.id));
  out(await todos.find({ query: { companyId: 1 } }));
  out(await todos.update(todo.id, { text: 'b', companyId: 1 }));
  out(await updated);
  out(await todos.patch(todo.id, { done: true }));
  out(await todos.remove(todo.id));
  try { await todos.get(todo.id); out('resolved!'); } catch (err) {
    out({ name: err.name, code: err.code, className: err.className });
  }
  try { await app.service('nothing').find(); out('resolved!'); } catch (err) {
    out({ name: err.name, code: err.code });
  }
  socket.close();
});
""")
    todo = {'text': 'a', 'companyId': 1, 'id': 1}
    assert out[:4] == [todo, todo, todo, [todo]]
    assert out[4] == out[5] == {'text': 'b', 'companyId': 1, 'id': 1}
    assert out[6] == {'text': 'b', 'companyId': 1, 'id': 1, 'done': True}
    assert out[7] == out[6]
    assert out[8] == {'name': 'NotFound', 'code': 404, 'className': 'not-found'}
    assert out[9] == {'name': 'NotFound', 'code': 404}


def test_company_filter_reaches_the_same_company_only(server, node):
    out = js(node, server, r"""
run(async () => {
  const [alice, bob, carol] = await Promise.all(
    ['alice', 'bob', 'carol'].map((username) => connect({ username })));
  const log = { alice: [], bob: [], carol: [] };
  for (const [name, s] of Object.entries({ alice, bob, carol })) {
    s.onAny((event, data) => log[name].push([event, data.companyId, data.text]));
  }
  const call = (s, ...args) => within(new Promise((resolve) => s.emit(...args, (e, r) =>
    resolve(r))), 3000, args[0]);
  const t1 = await call(alice, 'todos::create', { text: 'x', companyId: 1 }, {});
  await call(bob, 'todos::update', t1.id, { text: 'y', companyId: 1 }, {});
  await call(carol, 'todos::create', { text: 'z', companyId: 2 }, {});
  // Carol's own event is the last one everybody of company 2 gets; company 1 waits for its 2.
  const until = (name, n) => within(new Promise((resolve) => {
    const check = () => (log[name].length >= n ? resolve() : setTimeout(check, 5));
    check();
  }), 3000, name + ' events');
  await Promise.all([until('alice', 2), until('bob', 2), until('carol', 1)]);
  out(log);
  [alice, bob, carol].forEach((s) => s.close());
});
""")
    company1 = [['todos created', 1, 'x'], ['todos updated', 1, 'y']]
    assert out[0] == {'alice': company1, 'bob': company1,
                      'carol': [['todos created', 2, 'z']]}
