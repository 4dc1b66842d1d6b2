"""Hooks seen from real clients: the app context in filters and Primus calls, async def methods
and hooks, Feathers' own client 5 and Primus, Flask-SQLAlchemy on every transport."""
from flask import Flask

from flask_feathers import Feathers, errors, rest, socketio
from flask_feathers.hooks import protect
from flask_feathers.testing import realtime_client


# -- the app context -----------------------------------------------------------------------------

def test_filters_and_primus_calls_run_in_the_app_context(live_server, node):
    from flask import current_app, g

    from flask_feathers import primus

    app = Flask('contexts')
    app.config['MARK'] = 'this app'
    api = Feathers(app)
    api.configure(primus({'transformer': 'websockets'}))
    seen = {}

    class Todos:
        def create(self, data, params):
            seen['call'] = current_app.config['MARK']
            g.touched = True
            return dict(data, id=1)

        def created(self, data, params):
            seen['filter'] = current_app.config['MARK']
            return data

    def hook(context):
        seen['hook'] = current_app.config['MARK']
    api.use('todos', Todos())
    api.service('todos').hooks(before={'create': hook})
    server = live_server(app)
    (ack,) = node(f"""
const Primus = require('primus');
const Socket = Primus.createSocket({{ transformer: 'websockets', plugin: {{ emitter: require('primus-emitter') }} }});
const primus = new Socket('{server.url}', {{ strategy: false }});
primus.on('todos created', (todo) => {{ out(todo); primus.end(); done(); }});
primus.on('open', () => primus.send('todos::create', {{ text: 'x' }}, {{}}, () => {{}}));
setTimeout(() => fail('no event'), 10000);
""")
    assert ack == {'text': 'x', 'id': 1}
    assert seen == {'call': 'this app', 'hook': 'this app', 'filter': 'this app'}



# -- async def ----------------------------------------------------------------------------------

def test_async_methods_hooks_and_filters_run_to_completion(app):
    import asyncio

    api = Feathers(app)
    api.configure(rest())
    api.configure(socketio())

    class AsyncTodos:
        def __init__(self):
            self.store = {}

        async def create(self, data, params):
            await asyncio.sleep(0)
            todo = dict(data, id=len(self.store) + 1)
            self.store[todo['id']] = todo
            return todo

        async def find(self, params):
            return list(self.store.values())

        async def created(self, data, params):
            await asyncio.sleep(0)
            return data if data.get('public') else None

    async def stamp(context):
        await asyncio.sleep(0)
        context.data = dict(context.data, stamped=True)
    api.use('todos', AsyncTodos())
    api.service('todos').hooks(before={'create': stamp})
    with realtime_client(api) as client:
        answer = app.test_client().post('/todos', json={'text': 'a', 'public': True})
        assert answer.status_code == 201
        assert answer.get_json() == {'text': 'a', 'public': True, 'stamped': True, 'id': 1}
        err, acked = client.call('todos', 'create', {'text': 'b'})
        assert err is None and acked['stamped'] is True
        assert [e['text'] for e in client.received('todos created')] == ['a']  # filter ran
        assert len(app.test_client().get('/todos').get_json()) == 2


# -- real clients --------------------------------------------------------------------------------

def test_feathers_client_5_and_primus_see_dispatch_and_hook_errors(live_server, node):
    from flask_feathers import MemoryService, primus

    app = Flask('hooks-js')
    api = Feathers(app)
    api.configure(socketio())
    api.configure(primus({'transformer': 'websockets'}))
    api.use('todos', MemoryService(paginate=None))

    def refuse(context):
        if context.data.get('refused'):
            raise errors.Forbidden('Not this one', data={'why': 'refused'})
    api.service('todos').hooks(before={'create': refuse}, after={'all': protect('secret')})
    server = live_server(app)
    out = node(f"""
const io = require('socket.io-client');
const {{ feathers }} = require('@feathersjs/feathers');
const socketio = require('@feathersjs/socketio-client');
const Primus = require('primus');
const Socket = Primus.createSocket({{ transformer: 'websockets', plugin: {{ emitter: require('primus-emitter') }} }});
const within = (p, ms, what) => Promise.race([p, new Promise((_, reject) =>
  setTimeout(() => reject(new Error('timed out waiting for ' + what)), ms))]);
(async () => {{
  const socket = io('{server.url}', {{ transports: ['websocket'], reconnection: false }});
  const app = feathers().configure(socketio(socket, {{ timeout: 5000 }}));
  const todos = app.service('todos');
  const event = within(new Promise((resolve) => todos.once('created', resolve)), 5000, 'event');
  out(await todos.create({{ text: 'a', secret: 's' }}));
  out(await event);
  try {{ await todos.create({{ refused: true }}); out('resolved!'); }} catch (err) {{
    out({{ name: err.name, code: err.code, message: err.message, data: err.data }});
  }}
  socket.close();
  const primus = new Socket('{server.url}', {{ strategy: false }});
  await within(new Promise((resolve) => primus.on('open', resolve)), 5000, 'primus open');
  const ack = (...args) => within(new Promise((resolve) =>
    primus.send(...args, (error, result) => resolve([error, result]))), 5000, 'ack');
  out(await ack('todos::create', {{ text: 'b', secret: 's' }}, {{}}));
  out(await ack('todos::create', {{ refused: true }}, {{}}));
  primus.end();
  done();
}})().catch((e) => fail(e && e.stack || e));
""")
    created, event, refused, primus_ok, primus_refused = out
    assert created == {'text': 'a', 'id': created['id']} and event == created
    assert refused == {'name': 'Forbidden', 'code': 403, 'message': 'Not this one',
                       'data': {'why': 'refused'}}
    assert primus_ok[0] is None and primus_ok[1] == {'text': 'b', 'id': primus_ok[1]['id']}
    assert primus_refused[0]['name'] == 'Forbidden' and primus_refused[0]['code'] == 403
    with app.app_context():  # the stored records keep the field; only clients miss it
        assert all('secret' in todo for todo in api.service('todos').find())


def test_flask_sqlalchemy_works_in_services_hooks_and_filters_on_every_transport(
        tmp_path, live_server, node):
    from flask_sqlalchemy import SQLAlchemy

    from flask_feathers import primus

    app = Flask('sqla')
    app.config['SQLALCHEMY_DATABASE_URI'] = f"sqlite:///{tmp_path / 'notes.db'}"
    db = SQLAlchemy(app)

    class Note(db.Model):
        id = db.Column(db.Integer, primary_key=True)
        text = db.Column(db.String(80), nullable=False)

    class Banned(db.Model):
        word = db.Column(db.String(20), primary_key=True)

    with app.app_context():
        db.create_all()
        db.session.add(Banned(word='spam'))
        db.session.commit()

    api = Feathers(app)
    api.configure(rest())
    api.configure(socketio())
    api.configure(primus({'transformer': 'websockets'}))
    filtered = []

    class Notes:
        def find(self, params):
            return [{'id': n.id, 'text': n.text} for n in db.session.scalars(db.select(Note))]

        def create(self, data, params):
            note = Note(text=data['text'])
            db.session.add(note)
            db.session.commit()
            return {'id': note.id, 'text': note.text}

        def created(self, data, params):  # a filter, on a dispatcher worker
            filtered.append(db.session.get(Note, data['id']).text)
            return data

    def no_banned_words(context):  # a hook reading the database
        if db.session.get(Banned, context.data.get('text', '')) is not None:
            raise errors.BadRequest('Banned word')
    api.use('notes', Notes())
    api.service('notes').hooks(before={'create': no_banned_words})

    client = app.test_client()
    assert client.post('/notes', json={'text': 'rest'}).status_code == 201
    assert client.post('/notes', json={'text': 'spam'}).status_code == 400
    with realtime_client(api) as sio:
        assert sio.call('notes', 'create', {'text': 'socketio'})[0] is None
        assert sio.call('notes', 'create', {'text': 'spam'})[0]['name'] == 'BadRequest'
        assert [e['text'] for e in sio.received('notes created')] == ['socketio']
    server = live_server(app)
    (acks,) = node(f"""
const Primus = require('primus');
const Socket = Primus.createSocket({{ transformer: 'websockets', plugin: {{ emitter: require('primus-emitter') }} }});
const primus = new Socket('{server.url}', {{ strategy: false }});
const call = (...args) => new Promise((resolve) => primus.send(...args, (e, r) => resolve([e, r])));
// the event of its own create, which its filter let through: stay connected until it came
const heard = new Promise((resolve) => primus.on('notes created', resolve));
(async () => {{
  const made = await call('notes::create', {{ text: 'primus' }}, {{}});
  const banned = await call('notes::create', {{ text: 'spam' }}, {{}});
  await heard;
  out([made, banned[0] && banned[0].name]);
  primus.end();
  done();
}})();
setTimeout(() => fail('timed out'), 10000);
""")
    made, banned = acks
    assert made[0] is None and made[1]['text'] == 'primus' and banned == 'BadRequest'
    assert [n['text'] for n in client.get('/notes').get_json()] == ['rest', 'socketio', 'primus']
    from flask_feathers.testing import wait_for_dispatch
    wait_for_dispatch(app)
    # the filter ran once per connected client: the Socket.IO one, then the Primus one
    assert filtered == ['socketio', 'primus']
