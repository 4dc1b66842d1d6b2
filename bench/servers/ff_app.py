"""flask_feathers under test: Socket.IO and Primus, two in-memory todos services.

``todos`` has no event filter (the broadcast fast path); ``ktodos`` publishes to a channel per
company joined on connect (no per-client call); ``ctodos`` has the seed's company filter
``created(data, params)``, and sleeps 1 s first for a client that connected with ``slow=1``;
``ptodos`` does the same company check the Feathers 5 way: a publisher returning a filtered channel
(the very code of the Feathers 5 baseline).
The services do the same work as baseline A's handlers (a dict and a counter), so the comparison
measures the library, not a storage engine.

Usage: python ff_app.py PORT
"""
import itertools
import os
import sys
import threading
import time

from flask import Flask

from flask_feathers import Feathers, primus, socketio


class Todos:
    ids = itertools.count(1)
    lock = threading.Lock()

    def __init__(self):
        self.store = {}

    def create(self, data, params):
        with self.lock:
            todo = dict(data, id=next(self.ids))
            self.store[todo['id']] = todo
        return todo


class CompanyTodos(Todos):
    def created(self, data, params):
        user = params.get('user') or {}
        if user.get('slow'):
            time.sleep(1.0)
        return data if data.get('companyId') == user.get('companyId') else None


def _user(source):
    return {'companyId': int(source.get('companyId', 1)), 'slow': str(source.get('slow')) == '1'}


def setup_io(io):
    @io.use
    def auth(socket, next):
        socket.feathers['user'] = _user(socket.auth or {})
        next()


def setup_primus(server):
    @server.authorize
    def authorize(req, done):
        req.feathers['user'] = _user(req.args)
        done()


app = Flask(__name__)
# FEATHERS_FILTER_WORKERS from the environment, for experiments (default: the library's).
if os.environ.get('FEATHERS_FILTER_WORKERS'):
    app.config['FEATHERS_FILTER_WORKERS'] = int(os.environ['FEATHERS_FILTER_WORKERS'])
api = Feathers(app)
api.configure(socketio(setup_io))
api.configure(primus({'transformer': 'websockets'}, setup_primus))
api.use('todos', Todos())
api.use('ctodos', CompanyTodos())
api.use('ptodos', Todos())
api.use('ktodos', Todos())


@api.on('connection')
def join_everybody(connection):
    api.channel('everybody').join(connection)
    # ktodos: the Feathers 5 generator's pattern, a channel per company joined on connect
    api.channel(f"company/{connection.params['user']['companyId']}").join(connection)


@api.service('ktodos').publish('created')
def company_of_todo(data, context):
    return api.channel(f"company/{data.get('companyId')}")


@api.service('ptodos').publish('created')
def company_channel(data, context):
    return api.channel('everybody').filter(
        lambda connection: connection.params['user']['companyId'] == data.get('companyId'))


if __name__ == '__main__':
    port = int(sys.argv[1])
    print(f'READY {port}', flush=True)
    api.run(app, host='127.0.0.1', port=port, allow_unsafe_werkzeug=True, log_output=False)
