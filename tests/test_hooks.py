"""Hooks (flask_feathers/hooks.py): registration, Feathers 5's run order (checked against
@feathersjs/feathers itself, run in Node), result/dispatch/event/http semantics, on internal
calls, REST and Socket.IO, with both calling styles of services. Hooks seen from real clients are
in test_hooks_clients.py, the schema checks of validate_data/validate_query in test_validation.py."""
import json
import threading

import pytest
from flask import Flask

from flask_feathers import Feathers, errors
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
