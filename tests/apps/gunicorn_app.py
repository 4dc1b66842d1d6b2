"""A small app for the gunicorn test: ``gunicorn -k gthread --chdir tests/apps gunicorn_app:app``."""
from flask import Flask

from flask_feathers import Feathers, MemoryService, errors, primus, rest, socketio

app = Flask(__name__)
api = Feathers(app)
api.configure(rest())


def setup_io(io):
    @io.use
    def authorize(socket, next):
        if not (socket.auth or {}).get('user'):
            return next(errors.NotAuthenticated('Not authenticated!'))
        socket.feathers['user'] = socket.auth['user']
        next()


def setup_primus(server):
    @server.authorize
    def authorize(req, done):
        if not req.args.get('user'):
            return done(errors.NotAuthenticated('Not authenticated!'))
        req.feathers['user'] = req.args['user']
        done()


api.configure(socketio(setup_io))
api.configure(primus({'transformer': 'websockets', 'pingInterval': 1000}, setup_primus))
api.use('todos', MemoryService(paginate=None))
