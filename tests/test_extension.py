"""The extension object: app factories, several apps, configuration, configure()."""
import pytest
from flask import Flask

from flask_feathers import Feathers, rest
from flask_feathers.extension import DEFAULTS


def create_app(api, name):
    app = Flask(name)
    api.init_app(app)
    return app


def test_app_factory_with_two_apps_in_one_process(todos):
    api = Feathers()
    api.configure(rest())
    api.use('todos', todos)            # before init_app: replayed on every app
    app1 = create_app(api, 'one')
    app2 = create_app(api, 'two')
    assert app1.extensions['feathers'] is not app2.extensions['feathers']
    seen1, seen2 = [], []
    with app1.app_context():
        api.service('todos').on('created', seen1.append)
    with app2.app_context():
        api.service('todos').on('created', seen2.append)
    app1.test_client().post('/todos', json={'a': 1})
    assert len(seen1) == 1 and seen2 == []
    app2.test_client().post('/todos', json={'a': 2})
    assert len(seen2) == 1
    assert app2.test_client().get('/todos').status_code == 200


def test_registration_after_init_reaches_every_app():
    api = Feathers()
    app1, app2 = create_app(api, 'a'), create_app(api, 'b')
    api.configure(rest())
    api.use('late', {'find': lambda params: ['ok']})
    for app in (app1, app2):
        assert app.test_client().get('/late').json == ['ok']


def test_config_defaults_are_set_and_respected():
    app = Flask('cfg')
    app.config['FEATHERS_CALLBACK_TIMEOUT'] = 0.1
    api = Feathers(app)
    for key in DEFAULTS:
        assert key in app.config
    assert api.state.application.callback_timeout == 0.1
    assert app.extensions['feathers'].application.callback_timeout == 0.1


def test_configure_calls_the_function_with_the_extension():
    api = Feathers()
    seen = []
    assert api.configure(seen.append) is api
    assert seen == [api]
    with pytest.raises(TypeError):
        api.configure('not callable')


def test_helpful_errors_for_misuse():
    api = Feathers()
    with pytest.raises(RuntimeError, match='init_app'):
        api.state
    with pytest.raises(TypeError, match='Flask application'):
        api.init_app(object())
    app = Flask('x')
    api.init_app(app)
    api.init_app(app)  # idempotent
    with pytest.raises(RuntimeError, match='already has a Feathers extension'):
        Feathers(app)
    with pytest.raises(RuntimeError, match='socketio'):
        api.io
    with pytest.raises(KeyError, match='api.use'):
        api.service('missing')


def test_setup_gets_the_extension_and_runs_on_first_use():
    calls = []

    class S:
        def setup(self, app, path):
            calls.append((app, path))

        def find(self, params):
            return []
    api = Feathers()
    api.use('/s/', S())
    app = Flask('setup')
    api.init_app(app)
    api.configure(rest())
    assert calls == []
    app.test_client().get('/s')
    assert calls == [(api, 's')]
    api.setup()
    assert len(calls) == 1


def test_several_apps_without_a_context_is_an_error_not_a_guess(todos):
    api = Feathers()
    api.use('todos', todos)
    app1, app2 = create_app(api, 'first'), create_app(api, 'second')
    with pytest.raises(RuntimeError, match='app_context'):
        api.service('todos')
    with app1.app_context():
        assert api.service('todos') is app1.extensions['feathers'].application.service('todos')
    with app2.app_context():
        assert api.service('todos') is app2.extensions['feathers'].application.service('todos')


def test_use_on_one_app_only():
    api = Feathers()
    app1, app2 = create_app(api, 'one'), create_app(api, 'two')
    api.configure(rest())
    api.use('own', {'find': lambda params: ['app2 only']}, app=app2)
    assert app2.test_client().get('/own').json == ['app2 only']
    assert app1.test_client().get('/own').status_code == 404


def test_a_collected_app_releases_its_state():
    import gc
    api = Feathers()
    app1 = create_app(api, 'kept')
    app2 = create_app(api, 'collected')
    api.close(app2)
    del app2
    gc.collect()
    assert api.state is app1.extensions['feathers']  # only one app left: no ambiguity


def test_every_set_up_call_reaches_every_app_once_in_order(todos):
    # Before init_app, after the first app, and on an app made later: services, app hooks,
    # service hooks, app publishers and connection listeners, each once per app.
    from _scaleout_harness import wait_for
    from flask_feathers.connections import Connection
    api = Feathers()
    calls = []
    api.use('todos', todos)
    api.hooks(before={'create': lambda ctx: calls.append(('app hook', ctx.path))})
    api.service('todos').hooks(before={'create': lambda ctx: calls.append(('svc hook', 1))})
    first = create_app(api, 'first')
    api.service('todos').hooks(before={'create': lambda ctx: calls.append(('svc hook', 2))})
    api.publish('created', lambda data, context: calls.append(('publisher', data['a'])))
    api.on('connection', lambda conn: calls.append(('connected', conn.id)))
    second = create_app(api, 'second')
    for app in (first, second):
        calls.clear()
        state = app.extensions['feathers']
        with app.app_context():
            api.service('todos').create({'a': 1})
        state.connections.add(Connection(f'c-{app.name}', 'test', {}, lambda e, d: None))
        wait_for(lambda: ('publisher', 1) in calls, 5, 'the app publisher')
        assert [c for c in calls if c[0] != 'publisher'] == [
            ('app hook', 'todos'), ('svc hook', 1), ('svc hook', 2),
            ('connected', f'c-{app.name}')], app.name
        assert calls.count(('publisher', 1)) == 1
