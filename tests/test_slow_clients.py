"""A client that stops reading is dropped once its queue is full, on both socket transports,
instead of growing the server's memory (and even with Primus pings turned off)."""
import base64
import os
import socket
import threading

import pytest
from flask import Flask

from flask_feathers import Feathers, MemoryService, primus, socketio
from flask_feathers.testing import wait_for_dispatch

BIG = 'x' * 60000


def raw_upgrade(port, path):
    """A WebSocket handshake on a plain TCP socket with a tiny receive buffer; then never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(('127.0.0.1', port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n'
                  f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n'
                  f'Sec-WebSocket-Version: 13\r\n\r\n').encode())
    head = b''
    while b'\r\n\r\n' not in head:
        chunk = sock.recv(1)
        assert chunk, 'handshake refused'
        head += chunk
    assert head.startswith(b'HTTP/1.1 101'), head
    return sock


def masked_text(text):
    payload = text.encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


def wait_gone(api, count, what):
    gone = threading.Event()
    api.on('disconnect', lambda conn: gone.set() if len(api.state.connections) <= count else None)
    if len(api.state.connections) <= count:
        return
    assert gone.wait(20), f'{what} was not dropped (still {len(api.state.connections)} connected)'


def assert_socket_ends(sock, what):
    """The server shut the socket down: once the client reads what was buffered, it sees the end
    (a server thread left blocked on the socket would keep it open)."""
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        pytest.fail(f'the server never closed the socket of {what}')
    except ConnectionResetError:
        pass


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
        assert_socket_ends(sock, 'the dropped Primus client')
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
        assert_socket_ends(sock, 'the dropped Socket.IO client')
    finally:
        sock.close()
