"""The calling-style bridge, the wrapped service and its events."""
import logging
import threading

import pytest

from flask_feathers import errors
from flask_feathers.registry import Application, strip_path
from flask_feathers.service import METHOD_EVENTS, invoke, takes_callback


@pytest.fixture
def application():
    return Application(callback_timeout=5)


@pytest.mark.parametrize('raw,stripped', [
    ('todos', 'todos'), ('/todos', 'todos'), ('///a/b//', 'a/b'), ('api/v1/todos/', 'api/v1/todos'),
])
def test_path_stripping(application, raw, stripped, todos):
    assert strip_path(raw) == stripped
    application.use(raw, todos)
    assert application.service(stripped).path == stripped
    assert application.service('/' + stripped + '/') is application.service(stripped)


def test_all_methods_in_both_styles(application, todos):
    svc = application.use('todos', todos)
    created = svc.create({'text': 'a'})
    assert created == {'text': 'a', 'id': 1}
    assert svc.get(1) == created
    assert svc.find() == [created]
    assert svc.update(1, {'text': 'b'}) == {'text': 'b', 'id': 1}
    assert svc.patch(1, {'done': True}) == {'text': 'b', 'id': 1, 'done': True}
    assert svc.remove(1) == {'text': 'b', 'id': 1, 'done': True}
    with pytest.raises(errors.NotFound):
        svc.get(1)


def test_params_reach_the_service(application, todos):
    svc = application.use('todos', todos)
    svc.find({'query': {'a': 1}, 'user': 'u'})
    assert todos.calls[-1] == ('find', {'query': {'a': 1}, 'user': 'u'})
    svc.find()
    assert todos.calls[-1] == ('find', {})


def test_callback_argument_is_called_exactly_once(application, todos):
    svc = application.use('todos', todos)
    results = []
    assert svc.create({'x': 1}, {}, lambda err, res: results.append((err, res))) is None
    svc.get(99, None, lambda err, res: results.append((err, res)))
    assert results[0] == (None, {'x': 1, 'id': 1})
    assert isinstance(results[1][0], errors.NotFound) and results[1][1] is None
    assert len(results) == 2


def test_errors_raise_feathers_errors(application, todos):
    svc = application.use('todos', todos)
    with pytest.raises(errors.BadRequest) as info:
        svc.create({'fail': True})
    assert info.value.data == {'field': 'fail'}


def test_callback_from_another_thread():
    class Slow:
        def get(self, id, params, callback):
            threading.Timer(0.05, callback, (None, {'id': id})).start()
    app = Application(callback_timeout=5)
    assert app.use('slow', Slow()).get(3) == {'id': 3}


def test_callback_never_called_times_out():
    class Never:
        def find(self, params, callback):
            pass
    app = Application(callback_timeout=0.2)
    with pytest.raises(errors.Timeout) as info:
        app.use('never', Never()).find()
    assert 'never.find' in info.value.message


def test_second_callback_call_is_ignored_and_logged(caplog):
    class Twice:
        def create(self, data, params, callback):
            callback(None, {'first': True})
            callback(None, {'second': True})
    app = Application(callback_timeout=5)
    seen = []
    svc = app.use('twice', Twice())
    svc.on('created', seen.append)
    with caplog.at_level(logging.WARNING):
        assert svc.create({}) == {'first': True}
    assert seen == [{'first': True}]
    assert 'more than once' in caplog.text


def test_callback_error_dict_and_plain_exception():
    class Bad:
        def get(self, id, params, callback):
            callback({'name': 'Forbidden', 'message': 'no', 'code': 403})

        def find(self, params, callback):
            callback(ValueError('plain'))
    svc = Application().use('bad', Bad())
    with pytest.raises(errors.Forbidden):
        svc.get(1)
    with pytest.raises(ValueError):
        svc.find()
    out = []
    svc.find({}, lambda e, r: out.append(e))
    assert isinstance(out[0], errors.GeneralError)


def test_style_detection():
    class S:
        def a(self, data, params): pass
        def b(self, data, params, callback): pass
        def c(self, data, params, callback=None): pass
        def d(self, *args): pass
    s = S()
    assert not takes_callback(s.a, 2)
    assert takes_callback(s.b, 2)
    assert takes_callback(s.c, 2)
    assert not takes_callback(s.d, 2)
    assert invoke(lambda a, b: a + b, (1, 2)) == 3
    assert invoke(lambda a, cb: cb(None, a * 2), (4,)) == 8


def test_dict_of_callables_is_a_service():
    store = {}
    svc = Application().use('memo', {
        'create': lambda data, params, callback: callback(None, store.setdefault('x', data)),
        'get': lambda id, params: store[id],
    })
    assert svc.create({'a': 1}) == {'a': 1}
    assert svc.get('x') == {'a': 1}
    with pytest.raises(errors.MethodNotAllowed):
        svc.find()


@pytest.mark.parametrize('thing', [object(), {'nothing': 1}, 42, {'find': 'not callable'}])
def test_non_services_are_refused_with_a_clear_type_error(thing):
    with pytest.raises(TypeError, match='at least one of the methods find, get, create'):
        Application().use('x', thing)


def test_unknown_service_lookup_names_the_known_ones(todos):
    app = Application()
    app.use('todos', todos)
    with pytest.raises(KeyError, match="'todos'"):
        app.service('nope')


# -- events -------------------------------------------------------------------------------------

def test_events_per_method_none_on_error_none_for_reads(application, todos):
    svc = application.use('todos', todos)
    seen = []
    for event in METHOD_EVENTS.values():
        svc.on(event, lambda data, event=event: seen.append((event, data['id'])))
    svc.create({'a': 1})
    svc.find()
    svc.get(1)
    svc.update(1, {'b': 1})
    svc.patch(1, {'c': 1})
    svc.remove(1)
    with pytest.raises(errors.NotFound):
        svc.remove(1)
    with pytest.raises(errors.BadRequest):
        svc.create({'fail': 1})
    assert seen == [('created', 1), ('updated', 1), ('patched', 1), ('removed', 1)]


def test_one_event_per_list_element(application, todos):
    svc = application.use('todos', todos)
    seen = []
    svc.on('created', seen.append)
    svc.create([{'a': 1}, {'a': 2}])
    assert [d['id'] for d in seen] == [1, 2]


def test_custom_events_must_be_declared():
    class Chat:
        events = ['typing']
        def create(self, data, params):
            return data
    app = Application()
    published = []
    app.add_event_sink(lambda path, event, data: published.append((path, event, data)))
    svc = app.use('chat', Chat())
    heard = []
    svc.on('typing', heard.append)
    svc.emit('typing', {'who': 'a'})
    assert heard == [{'who': 'a'}]
    assert published == [('chat', 'typing', {'who': 'a'})]
    with pytest.raises(ValueError, match="events = \\['shouting'\\]"):
        svc.emit('shouting', {})
    assert svc.events == ('created', 'updated', 'patched', 'removed', 'typing')


def test_a_raising_listener_does_not_break_the_call(application, todos, caplog):
    svc = application.use('todos', todos)
    svc.on('created', lambda data: 1 / 0)
    assert svc.create({'a': 1})['id'] == 1
    assert 'ZeroDivisionError' in caplog.text


def test_once_and_off(application, todos):
    svc = application.use('todos', todos)
    once, always = [], []
    svc.once('created', once.append)
    svc.on('created', always.append)
    svc.create({})
    svc.create({})
    svc.off('created', always.append)
    svc.create({})
    assert len(once) == 1 and len(always) == 2


# -- setup --------------------------------------------------------------------------------------

def test_setup_runs_once_in_order_and_late_registrations_get_it_at_once():
    calls = []

    class S:
        def __init__(self, name):
            self.name = name

        def setup(self, app, path):
            calls.append((self.name, path, app))

        def find(self, params):
            return []
    app = Application()
    app.use('/a/', S('a'))
    app.use('b', S('b'))
    assert calls == []
    app.ensure_setup()
    app.ensure_setup()
    assert calls == [('a', 'a', app), ('b', 'b', app)]
    app.use('c', S('c'))
    assert calls[-1] == ('c', 'c', app)
    assert len(calls) == 3


def test_first_call_runs_setup():
    calls = []

    class S:
        def setup(self, app, path):
            calls.append(path)

        def find(self, params):
            return calls
    app = Application()
    assert app.use('s', S()).find() == ['s']


def test_failing_setup_names_the_service():
    class S:
        def setup(self, app, path):
            raise ValueError('no database')

        def find(self, params):
            return []
    app = Application()
    app.use('broken', S())
    with pytest.raises(RuntimeError, match="'broken' failed: no database"):
        app.ensure_setup()


def test_caller_decides_the_style_once():
    from flask_feathers.service import caller

    def returns(data, params):
        return data

    assert caller(returns, 2) is returns, 'a return-style function is called as it is'

    def calls_back(data, params, callback):
        callback(None, {'seen': data})

    assert caller(calls_back, 2)(1, {}) == {'seen': 1}

    def never_calls_back(data, params, callback):
        pass

    with pytest.raises(errors.Timeout, match='my filter did not call its callback within 0.05 s'):
        caller(never_calls_back, 2, 0.05, 'my filter')(1, {})
