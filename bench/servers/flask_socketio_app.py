"""Baseline A: the todos work written by hand on Flask-SocketIO (threading, simple-websocket).

What a user would write instead of flask_feathers: ``todos::create`` handlers that store the record,
answer the ack and broadcast ``todos created``; the company-filtered ``ctodos`` service uses one room
per company (the idiomatic hand-written filter). Like flask_feathers it sets TCP_NODELAY on every
accepted websocket and declines permessage-deflate, so the comparison is about the library's code.

Usage: python flask_socketio_app.py PORT
"""
import itertools
import socket
import sys
import threading

from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from flask import Flask, request
from flask_socketio import SocketIO, emit, join_room
import simple_websocket


class NoDelayWebSocket(SimpleWebSocketWSGI):
    """engineio's threading websocket: Nagle off, permessage-deflate declined."""

    def __call__(self, environ, start_response):
        environ = {k: v for k, v in environ.items() if k != 'HTTP_SEC_WEBSOCKET_EXTENSIONS'}
        sock = environ.get('werkzeug.socket') or environ.get('gunicorn.socket')
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ws = simple_websocket.Server(environ, max_message_size=1024 * 1024, **self.server_args)
        ret = self.app(self)
        if self.ws.mode == 'gunicorn':
            raise StopIteration()
        elif self.ws.mode == 'werkzeug':
            raise ConnectionError()
        return ret


app = Flask(__name__)
io = SocketIO(app, async_mode='threading')
io.server.eio._async = dict(io.server.eio._async, websocket=NoDelayWebSocket)

stores = {'todos': {}, 'ctodos': {}}
ids = itertools.count(1)
lock = threading.Lock()
users = {}  # sid -> {'companyId': ..}


@io.on('connect')
def on_connect(auth=None):
    user = {'companyId': int((auth or {}).get('companyId', 1))}
    users[request.sid] = user
    join_room(f"company-{user['companyId']}")


@io.on('disconnect')
def on_disconnect(reason=None):
    users.pop(request.sid, None)


def _create(path, data):
    if not isinstance(data, dict):
        return {'name': 'BadRequest', 'message': 'data must be an object', 'code': 400}, None
    with lock:
        todo = dict(data, id=next(ids))
        stores[path][todo['id']] = todo
    return None, todo


@io.on('todos::create')
def todos_create(data, query=None):
    error, todo = _create('todos', data)
    if error:
        return error
    emit('todos created', todo, broadcast=True)
    return None, todo


@io.on('ctodos::create')
def ctodos_create(data, query=None):
    error, todo = _create('ctodos', data)
    if error:
        return error
    emit('ctodos created', todo, to=f"company-{todo.get('companyId')}")
    return None, todo


if __name__ == '__main__':
    port = int(sys.argv[1])
    print(f'READY {port}', flush=True)
    io.run(app, host='127.0.0.1', port=port, allow_unsafe_werkzeug=True, log_output=False)
