"""A client that stops reading is dropped once its queue is full, on both socket transports,
instead of growing the server's memory (and even with Primus pings turned off)."""
import threading

import pytest
from flask import Flask

from flask_feathers import Feathers, MemoryService, primus, socketio
from flask_feathers.testing import wait_for_dispatch

from support.ws import assert_server_hung_up, masked_text, raw_upgrade

BIG = 'x' * 60000


def wait_gone(api, count, what):
    gone = threading.Event()
    api.on('disconnect', lambda conn: gone.set() if len(api.state.connections) <= count else None)
    if len(api.state.connections) <= count:
        return
    assert gone.wait(20), f'{what} was not dropped (still {len(api.state.connections)} connected)'


@pytest.fixture
def slow_app():
    app = Flask('slow')
    api = Feathers(app)
    api.configure(socketio(max_queue=16))
    api.configure(primus({'transformer': 'websockets', 'pingInterval': 0, 'maxQueue': 16}))
    api.use('todos', MemoryService(paginate=None))
    return app, api


def flood(api, n=400):
    with api.state.app.app_context():
        svc = api.service('todos')
        for i in range(n):
            svc.create({'text': BIG, 'i': i})
            if len(api.state.connections) == 0:
                break
        wait_for_dispatch(api, 20)


def test_a_primus_client_that_stops_reading_is_dropped(slow_app, live_server):
    app, api = slow_app
    server = live_server(app)
    sock = raw_upgrade(server.port, '/primus')
    try:
        assert len(api.state.connections) == 1
        flood(api)
        wait_gone(api, 0, 'the Primus client that stopped reading')
        assert_server_hung_up(sock, 'the dropped Primus client')
    finally:
        sock.close()


def test_a_socketio_client_that_stops_reading_is_dropped(slow_app, live_server):
    app, api = slow_app
    server = live_server(app)
    sock = raw_upgrade(server.port, '/socket.io/?EIO=4&transport=websocket')
    try:
        sock.sendall(masked_text('40'))          # socket.io CONNECT to the default namespace
        connected = threading.Event()
        api.on('connection', lambda conn: connected.set())
        assert connected.wait(10) or len(api.state.connections) == 1, 'never connected'
        flood(api)
        wait_gone(api, 0, 'the Socket.IO client that stopped reading')
        assert_server_hung_up(sock, 'the dropped Socket.IO client')
    finally:
        sock.close()
