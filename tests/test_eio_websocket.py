"""Direct writes to Socket.IO websocket clients (providers/_eio_websocket.py): a packet for a client
whose queue is empty is written by the sending thread; once the client's socket buffer is full the
rest goes through engine.io's queue and writer thread, and the client still gets everything, in
order."""
import json
import threading

import pytest
import socketio as socketio_client
from flask import Flask

from flask_feathers import Feathers, MemoryService, socketio
from flask_feathers.testing import wait_for_dispatch

from support.clients import in_order
from support.ws import (assert_events_in_order, events_to_fill_buffers, masked_text, raw_upgrade,
                     read_frames)

BODY = 'y' * 20000
EVENTS = events_to_fill_buffers(len(BODY))


@pytest.fixture
def app():
    app = Flask('direct')
    api = Feathers(app)
    api.configure(socketio(max_queue=10 * EVENTS))
    api.use('todos', MemoryService(paginate=None))
    return app


@pytest.fixture
def api(app):
    return app.extensions['feathers'].api


def connected_event(api, count):
    ready = threading.Event()
    api.on('connection', lambda conn: ready.set() if len(api.state.connections) >= count else None)
    return ready


def eio_queues(api):
    return [s.queue for s in api.io.server.eio.sockets.values()]


def test_websocket_clients_are_written_directly_polling_ones_through_the_queue(app, api,
                                                                              live_server):
    server = live_server(app)
    got = {'ws': [], 'polling': []}
    clients = []
    for name, transports in (('ws', ['websocket']), ('polling', ['polling', 'websocket'])):
        client = in_order(socketio_client.Client())
        client.on('todos created', lambda data, name=name: got[name].append(data['i']))
        client.connect(server.url, transports=transports, wait_timeout=10)
        clients.append(client)
    try:
        attached = sorted(q.ws is not None for q in eio_queues(api))
        assert attached == [False, True], 'only the client that opened as a websocket is direct'
        with app.app_context():
            for i in range(50):
                api.service('todos').create({'i': i})
        wait_for_dispatch(api, 10)
        for client in clients:  # an ack round trip after the events: they were all read by then
            client.call('todos::find', {}, timeout=10)
        assert got['ws'] == list(range(50))
        assert got['polling'] == list(range(50))
    finally:
        for client in clients:
            client.disconnect()


def test_order_is_kept_when_the_socket_buffer_fills_and_drains(app, api, live_server):
    server = live_server(app)
    ready = connected_event(api, 1)
    sock = raw_upgrade(server.port, '/socket.io/?EIO=4&transport=websocket')
    try:
        sock.sendall(masked_text('40'))
        assert ready.wait(10), 'the raw client never connected'
        # Events reach a client once it got its CONNECT packet: wait for it before the flood.
        opened, connect = read_frames(sock, 2, skip=(b'2',))
        assert opened.startswith('0{') and connect.startswith('40'), (opened, connect)
        (queue,) = eio_queues(api)
        assert queue.ws is not None, 'the raw websocket client is not written directly'
        with app.app_context():
            for i in range(EVENTS):  # MBs while the client does not read: never blocks
                api.service('todos').create({'i': i, 'body': BODY})
        wait_for_dispatch(api, 20)
        queued = queue.qsize()
        assert 0 < queued < EVENTS, (
            f'{queued} packets queued: the buffer should take the first events directly and '
            'queue the rest')
        frames = read_frames(sock, EVENTS, skip=(b'2',))  # b'2': engine.io's ping
        assert all(frame.startswith('42') for frame in frames), 'not all Socket.IO events'
        assert_events_in_order(frames, lambda frame: json.loads(frame[2:]), EVENTS, BODY)
    finally:
        sock.close()


@pytest.mark.parametrize('compression', [False, True])
def test_a_broadcast_is_framed_once_for_every_websocket_client(prebuilt_frames, live_server,
                                                                compression):
    """Server frames are not masked: without permessage-deflate every client gets the same
    websocket frame, built once per event."""
    built = prebuilt_frames
    app = Flask('frame_once')
    api = Feathers(app)
    api.configure(socketio(websocket_compression=compression))
    api.use('todos', MemoryService(paginate=None))
    server = live_server(app)
    got = [[] for _ in range(3)]
    clients = []
    try:
        for mine in got:
            client = in_order(socketio_client.Client())
            client.on('todos created', lambda data, mine=mine: mine.append(data['i']))
            client.connect(server.url, transports=['websocket'], wait_timeout=10)
            clients.append(client)
        with app.app_context():
            for i in range(20):
                api.service('todos').create({'i': i, 'text': 'é ' * i})
        wait_for_dispatch(api, 10)
        for client in clients:  # an ack round trip after the events: they were all read by then
            client.call('todos::find', {}, timeout=10)
        assert got == [list(range(20))] * 3
        # python-socketio's client offers no permessage-deflate: with compression allowed it
        # still shares the frame (only a connection that negotiated it frames its own).
        assert len(built) == 20, f'{len(built)} frames built for 20 events to 3 clients'
        assert all(data.startswith('42["todos created",') for data in built)
    finally:
        for client in clients:
            client.disconnect()


class _GoneSocket:
    """An engine.io socket that closed between the caller's look and its send."""

    def __init__(self):
        from flask_feathers.providers._eio_websocket import HubQueue
        self.queue = HubQueue()
        self.closed = True


class _PollingSocket:
    """An engine.io socket whose client is not on the connection layer (long-polling)."""

    def __init__(self):
        from flask_feathers.providers._eio_websocket import HubQueue
        self.queue = HubQueue()
        self.closed = False


def test_a_client_closing_during_a_broadcast_does_not_stop_it(app, api):
    """A socket that closed meanwhile is skipped and the others still get the event."""
    from flask_feathers.providers._eio_websocket import send_to_many

    rest = send_to_many(api.io.server, '/', 'todos created', {'id': 1},
                        [('gone', _GoneSocket()), ('polling', _PollingSocket())])
    assert rest == ['polling']


def test_closing_a_websocket_whose_client_reset_it_raises_nothing(app, api):
    """engine.io's writer thread closes the websocket as it ends; a client that reset the
    connection used to turn that into an unhandled exception printed by the thread."""
    websocket_class = api.io.server.eio._async['websocket']

    class Reset:
        connected = True

        def close(self):
            raise ConnectionResetError(104, 'Connection reset by peer')

    ws = websocket_class(lambda ws: None, api.io.server.eio)
    ws.ws = Reset()
    ws.close()  # no exception
