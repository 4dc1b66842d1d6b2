"""The REST scenario's Python servers: one ``find`` returning 20 records as JSON, served by
gunicorn (``gthread`` worker) from ``create_app(variant)``:

- ``flask``: a bare Flask view returning the 20 records (``jsonify``), the baseline;
- ``ff``: flask_feathers, REST provider only, a ``todos`` service whose ``find`` returns them,
  no hooks;
- ``ff_hooks``: the same service with three small hooks: an around hook timing the call (into
  ``params``), a before hook checking the caller the way an authorization hook does, and an
  after hook removing the ``secret`` field from what the client gets (``hooks.protect``).

The records are made once at start (the service does no storage work): the comparison measures
the request path. Usage: ``gunicorn -k gthread 'rest_app:create_app("ff")'`` (bench.py does it).
"""
import time

from flask import Flask, jsonify

RECORDS = [{'id': i, 'text': f'todo number {i}', 'complete': i % 3 == 0, 'companyId': 1 + i % 2,
            'secret': f'hash-{i:04d}'} for i in range(1, 21)]


class Todos:
    def find(self, params):
        return RECORDS


def timing(context, next):
    started = time.perf_counter()
    next()
    context.params['took'] = time.perf_counter() - started


def require_provider(context):
    if context.params.get('provider') not in (None, 'rest', 'socketio', 'primus'):
        raise ValueError('unknown provider')


def create_app(variant: str) -> Flask:
    app = Flask(__name__)
    if variant == 'flask':
        @app.get('/todos')
        def todos():
            return jsonify(RECORDS)
        return app
    from flask_feathers import Feathers, hooks, rest
    api = Feathers(app)
    api.configure(rest())
    svc = api.use('todos', Todos())
    if variant == 'ff_hooks':
        svc.hooks(around={'all': [timing]}, before={'all': [require_provider]},
                  after={'all': [hooks.protect('secret')]})
    elif variant != 'ff':
        raise ValueError(f'unknown variant {variant!r}')
    return app
