"""Hooks (flask_feathers/hooks.py): registration, Feathers 5's run order (checked against
@feathersjs/feathers itself, run in Node), result/dispatch/event/http semantics, on internal
calls, REST and Socket.IO, with both calling styles of services."""
import json
import threading

import pytest
from flask import Flask

from flask_feathers import Feathers, errors, rest, socketio
from flask_feathers.hooks import HookContext, disallow, protect
from flask_feathers.testing import realtime_client

# -- the order, against Feathers 5 ----------------------------------------------------------------

#: The same registrations in @feathersjs/feathers 5 (bundled in @feathersjs/client): what it logs
#: is the order this module must reproduce.
ORDER_JS = r"""
const { feathers } = require('@feathersjs/client');
const app = feathers();
const log = [];
const h = (name) => async () => { log.push(name); };
const a = (name) => async (ctx, next) => { log.push(name + '>'); await next(); log.push('<' + name); };
app.use('svc', { async create (data) { log.push('METHOD'); if (data.fail) throw new Error('boom'); return data; } });
app.hooks({ around: { all: [a('appAroundAll')], create: [a('appAroundCreate')] },
  before: { all: [h('appBeforeAll')], create: [h('appBeforeCreate')] },
  after: { all: [h('appAfterAll')], create: [h('appAfterCreate')] },
  error: { all: [h('appErrorAll')], create: [h('appErrorCreate')] } });
app.service('svc').hooks({ around: { all: [a('svcAroundAll')], create: [a('svcAroundCreate')] },
  before: { all: [h('svcBeforeAll'), h('svcBeforeAll2')], create: [h('svcBeforeCreate')] },
  after: { all: [h('svcAfterAll'), h('svcAfterAll2')], create: [h('svcAfterCreate')] },
  error: { all: [h('svcErrorAll')], create: [h('svcErrorCreate')] } });
(async () => {
  const out_ = {};
  await app.service('svc').create({});
  out_.ok = log.splice(0);
  try { await app.service('svc').create({ fail: true }); } catch (e) { out_.raised = e.message; }
  out_.err = log.splice(0);
  app.service('svc').hooks({ before: { create: [async (ctx) => { if (ctx.data.skip) ctx.result = { skipped: true }; }] } });
  out_.skipResult = await app.service('svc').create({ skip: true });
  out_.skip = log.splice(0);
  app.service('svc').hooks({ error: { create: [async (ctx) => { ctx.result = { recovered: ctx.error.message }; }] } });
  out_.recoverResult = await app.service('svc').create({ fail: true });
  out_.recover = log.splice(0);
  out(out_);
  done();
})();
"""


def build_order_app(log):
    app = Flask('order')
    api = Feathers(app)

    class Svc:
        def create(self, data, params):
            log.append('METHOD')
            if data.get('fail'):
                raise errors.BadRequest('boom')
            return data

    def h(name):
        def hook(context):
            log.append(name)
        hook.__name__ = name
        return hook

    def a(name):
        def hook(context, next):
            log.append(name + '>')
            next()
            log.append('<' + name)
        return hook

    api.use('svc', Svc())
    api.hooks({'around': {'all': [a('appAroundAll')], 'create': [a('appAroundCreate')]},
               'before': {'all': [h('appBeforeAll')], 'create': [h('appBeforeCreate')]},
               'after': {'all': [h('appAfterAll')], 'create': [h('appAfterCreate')]},
               'error': {'all': [h('appErrorAll')], 'create': [h('appErrorCreate')]}})
    api.service('svc').hooks(
        around={'all': a('svcAroundAll'), 'create': [a('svcAroundCreate')]},
        before={'all': [h('svcBeforeAll'), h('svcBeforeAll2')], 'create': h('svcBeforeCreate')},
        after={'all': [h('svcAfterAll'), h('svcAfterAll2')], 'create': [h('svcAfterCreate')]},
        error={'all': [h('svcErrorAll')], 'create': [h('svcErrorCreate')]})
    return app, api


def test_run_order_matches_feathers_5_for_success_error_skip_and_recovery(node):
    (expected,) = node(ORDER_JS)
    log = []
    app, api = build_order_app(log)
    with app.app_context():
        svc = api.service('svc')
        seen = {}
        svc.create({})
        seen['ok'] = log[:]
        log.clear()
        with pytest.raises(errors.BadRequest) as raised:
            svc.create({'fail': True})
        seen['raised'] = raised.value.message
        seen['err'] = log[:]
        log.clear()

        def skip(context):
            if context.data.get('skip'):
                context.result = {'skipped': True}
        svc.hooks(before={'create': [skip]})
        seen['skipResult'] = svc.create({'skip': True})
        seen['skip'] = log[:]
        log.clear()

        def recover(context):
            context.result = {'recovered': context.error.message}
        svc.hooks(error={'create': [recover]})
        seen['recoverResult'] = svc.create({'fail': True})
        seen['recover'] = log[:]
    assert seen == expected


# -- registration --------------------------------------------------------------------------------

@pytest.fixture
def api(app, todos):
    api = Feathers(app)
    api.configure(rest())
    api.configure(socketio())
    api.use('todos', todos)
    return api


def test_unknown_kinds_and_methods_are_refused_naming_the_key(app, api):
    svc = api.service('todos')
    with pytest.raises(ValueError, match="unknown hook kind 'befor'"):
        svc.hooks(befor={'all': []})
    with pytest.raises(ValueError, match="unknown method 'craete'"):
        svc.hooks({'before': {'craete': [lambda c: None]}})
    with pytest.raises(ValueError, match="unknown method 'approve'"):
        api.hooks(after={'approve': lambda c: None})
    with pytest.raises(TypeError, match='not callable'):
        svc.hooks(before={'all': ['nope']})

    async def later(context, next):
        pass
    with pytest.raises(TypeError, match='around hooks must be plain functions'):
        svc.hooks(around={'all': later})
    # nothing of a refused registration was kept
    with app.app_context():
        assert api.service('todos').create({'text': 'x'})['text'] == 'x'


def test_a_hook_returning_something_else_than_a_context_is_a_clear_error(app, api):
    api.service('todos').hooks(before={'create': lambda context: 42})
    with app.app_context(), pytest.raises(TypeError, match='returned int'):
        api.service('todos').create({'text': 'x'})


def test_context_fields_and_changes_reach_the_method(app, api, todos):
    seen = {}

    def before(context):
        seen.update(type=context.type, path=context.path, method=context.method, id=context.id,
                    data=dict(context.data), app=context.app, provider=context.params.get('provider'),
                    n_args=len(context.arguments))
        context.data = dict(context.data, text='changed by a hook')
        context.params['marker'] = True
    api.service('todos').hooks(before={'patch': before})
    with app.app_context():
        created = api.service('todos').create({'text': 'a'})
        patched = api.service('todos').patch(created['id'], {'done': True})
    assert seen == {'type': 'before', 'path': 'todos', 'method': 'patch', 'id': created['id'],
                    'data': {'done': True}, 'app': api, 'provider': None, 'n_args': 3}
    assert patched['text'] == 'changed by a hook'
    assert todos.calls[-1][-1]['marker'] is True


# -- what clients get ----------------------------------------------------------------------------

def test_protect_hides_fields_from_clients_and_events_but_not_from_internal_calls(app, api):
    api.service('todos').hooks(after={'all': [protect('secret')]})
    with realtime_client(api) as client:
        err, acked = client.call('todos', 'create', {'text': 'a', 'secret': 's1'})
        assert err is None and 'secret' not in acked and acked['text'] == 'a'
        assert client.received('todos created') == [acked]
        rest_answer = app.test_client().post('/todos', json={'text': 'b', 'secret': 's2'})
        assert rest_answer.status_code == 201 and 'secret' not in rest_answer.get_json()
        listed = app.test_client().get('/todos').get_json()
        assert listed and all('secret' not in item for item in
                              (listed if isinstance(listed, list) else listed['data']))
        with app.app_context():
            internal = api.service('todos').create({'text': 'c', 'secret': 's3'})
        assert internal['secret'] == 's3'
        events = client.received('todos created')
        assert [e['text'] for e in events] == ['b', 'c']
        assert all('secret' not in e for e in events)


def test_protect_copies_what_it_strips_and_keeps_the_field_order():
    from collections import OrderedDict
    from types import MappingProxyType
    hook = protect('secret', 'token')
    records = [{'id': 1, 'secret': 's', 'text': 'a', 'token': 't'}, {'id': 2, 'text': 'b'},
               OrderedDict([('secret', 's'), ('id', 3)]), MappingProxyType({'id': 4, 'token': 't'}),
               'not a record']
    context = HookContext(None, None, 'todos', 'find', ({},))
    context.result = records
    assert hook(context) is None
    assert context.dispatch == [{'id': 1, 'text': 'a'}, {'id': 2, 'text': 'b'}, {'id': 3},
                                {'id': 4}, 'not a record']
    assert [list(item) for item in context.dispatch[:4]] == [['id', 'text'], ['id', 'text'],
                                                              ['id'], ['id']]
    assert all(type(item) is dict for item in context.dispatch[:4])
    # the result internal callers get is untouched, and no record is shared with it
    assert records[0] == {'id': 1, 'secret': 's', 'text': 'a', 'token': 't'}
    assert context.dispatch[1] is not records[1]
    page = {'total': 1, 'limit': 10, 'skip': 0, 'data': [{'id': 5, 'secret': 's'}]}
    context.dispatch = page
    hook(context)
    assert context.dispatch == {'total': 1, 'limit': 10, 'skip': 0, 'data': [{'id': 5}]}
    assert page['data'] == [{'id': 5, 'secret': 's'}]
    context.dispatch = {'id': 6, 'secret': 's'}
    hook(context)
    assert context.dispatch == {'id': 6}


def test_event_none_sends_no_event_and_http_shapes_the_rest_answer(app, api):
    def quiet(context):
        if context.data.get('quiet'):
            context.event = None
        context.http['status'] = 202
        context.http['headers'] = {'X-Hooked': 'yes'}
        context.http['location'] = '/todos/elsewhere'
    api.service('todos').hooks(before={'create': quiet})
    with realtime_client(api) as client:
        answer = app.test_client().post('/todos', json={'text': 'q', 'quiet': True})
        assert answer.status_code == 202
        assert answer.headers['X-Hooked'] == 'yes'
        assert answer.headers['Location'].endswith('/todos/elsewhere')
        app.test_client().post('/todos', json={'text': 'loud'})
        assert [e['text'] for e in client.received('todos created')] == ['loud']


def test_a_hook_error_reaches_rest_and_socket_clients_as_a_feathers_error(app, api):
    def require_user(context):
        if context.params.get('provider') and not context.params.get('user'):
            raise errors.NotAuthenticated('Sign in first')
    api.hooks(before={'all': [require_user]})
    answer = app.test_client().get('/todos')
    assert answer.status_code == 401
    assert answer.get_json()['name'] == 'NotAuthenticated'
    assert answer.get_json()['message'] == 'Sign in first'
    with realtime_client(api) as client:
        err, result = client.call('todos', 'find')
    assert result is None and err['name'] == 'NotAuthenticated' and err['code'] == 401
    with app.app_context():  # internal calls have no provider: let through
        assert api.service('todos').find() is not None


def test_disallow_external_leaves_internal_calls(app, api):
    api.service('todos').hooks(before={'remove': disallow('external')})
    with app.app_context():
        created = api.service('todos').create({'text': 'x'})
    answer = app.test_client().delete(f'/todos/{created["id"]}')
    assert answer.status_code == 405 and answer.get_json()['name'] == 'MethodNotAllowed'
    with app.app_context():
        assert api.service('todos').remove(created['id'])['id'] == created['id']


def test_dispatch_set_by_a_hook_is_what_acks_and_events_carry(app, api):
    def shape(context):
        context.dispatch = {'id': context.result['id'], 'shown': True}
    api.service('todos').hooks(after={'create': shape})
    with realtime_client(api) as client:
        err, acked = client.call('todos', 'create', {'text': 'x'})
        assert err is None and acked == {'id': acked['id'], 'shown': True}
        assert client.received('todos created') == [acked]
        with app.app_context():
            internal = api.service('todos').create({'text': 'y'})
        assert internal['text'] == 'y'
        assert client.received('todos created') == [{'id': internal['id'], 'shown': True}]


# -- app factories -------------------------------------------------------------------------------

def test_app_and_service_hooks_registered_before_init_app_reach_every_app(todos):
    api = Feathers()
    api.use('todos', todos)
    seen = []
    api.hooks(before={'all': lambda context: seen.append(('app', context.method))})
    api.service('todos').hooks(before={'create': lambda context: seen.append(('svc', 'create'))})
    apps = [Flask('one'), Flask('two')]
    for flask_app in apps:
        api.init_app(flask_app)
    for flask_app in apps:
        with flask_app.app_context():
            api.service('todos').create({'text': flask_app.name})
    assert seen == [('app', 'create'), ('svc', 'create')] * 2


def test_hooks_run_once_per_call_under_concurrency(app, api):
    counts = {'before': 0}
    lock = threading.Lock()

    def count(context):
        with lock:
            counts['before'] += 1
    api.service('todos').hooks(before={'create': count})
    with app.app_context():
        ctx = app.app_context

        def work():
            with ctx():
                for _ in range(20):
                    api.service('todos').create({'text': 't'})
        threads = [threading.Thread(target=work) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert counts['before'] == 100


def test_context_repr_and_defaults():
    context = HookContext(None, None, 'todos', 'find', ({},))
    assert repr(context) == '<HookContext None todos.find>'
    assert context.result is None and not context.has_result and context.dispatch is None
    context.result = None
    assert context.has_result
    assert json.dumps(context.http) == '{}'


# -- validation ----------------------------------------------------------------------------------

def test_validate_data_with_a_pydantic_model_coerces_and_names_bad_fields(app, api):
    from pydantic import BaseModel

    from flask_feathers.hooks import validate_data

    class TodoIn(BaseModel):
        text: str
        priority: int = 1

    api.service('todos').hooks(before={'create': validate_data(TodoIn)})
    good = app.test_client().post('/todos', json={'text': 'x', 'priority': '3'})
    assert good.status_code == 201 and good.get_json()['priority'] == 3
    bad = app.test_client().post('/todos', json={'priority': 'high'})
    assert bad.status_code == 400
    body = bad.get_json()
    assert body['name'] == 'BadRequest' and body['message'] == 'Invalid data'
    assert set(body['errors']) == {'text', 'priority'}
    with realtime_client(api) as client:
        err, result = client.call('todos', 'create', {'text': 5})
    assert result is None and err['code'] == 400 and set(err['errors']) == {'text'}


def test_validate_query_with_a_json_schema(app, api):
    from flask_feathers.hooks import validate_query

    schema = {'type': 'object', 'properties': {'done': {'enum': ['true', 'false']}},
              'additionalProperties': False}
    api.service('todos').hooks(before={'find': validate_query(schema)})
    assert app.test_client().get('/todos?done=true').status_code == 200
    bad = app.test_client().get('/todos?done=maybe&other=1')
    assert bad.status_code == 400
    assert bad.get_json()['message'] == 'Invalid query'
    assert set(bad.get_json()['errors']) == {'done', ''}


def test_validation_hooks_refuse_what_is_not_a_schema():
    from flask_feathers.hooks import validate_data, validate_query

    with pytest.raises(TypeError, match='pydantic model class or a JSON Schema dict'):
        validate_data('todo')
    with pytest.raises(ValueError, match='not a valid JSON Schema'):
        validate_query({'type': 'no-such-type'})


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


def test_publishers_get_the_calls_hook_context(app, api):
    seen = []

    @api.service('todos').publish('created')
    def to_callers_company(data, context):
        seen.append((type(context).__name__, context.method, context.params.get('provider'),
                     context.params.get('marker'), context.result == data))
        return api.channel('everybody')

    @api.on('connection')
    def join(connection):
        api.channel('everybody').join(connection)

    def mark(context):
        context.params['marker'] = 'set by a hook'
    api.service('todos').hooks(before={'create': mark})
    with realtime_client(api) as client:
        app.test_client().post('/todos', json={'text': 'a'})
        assert [e['text'] for e in client.received('todos created')] == ['a']
    assert seen == [('HookContext', 'create', 'rest', 'set by a hook', True)]

    # an event emitted by hand has no call behind it: a context with path, event and data
    seen.clear()

    @api.service('todos').publish('patched')
    def by_hand(data, context):
        seen.append((context.path, context.event, context['data'], context.params))
        return None
    with app.app_context():
        api.service('todos').emit('patched', {'id': 9})
    assert seen == [('todos', 'patched', {'id': 9}, {})]
