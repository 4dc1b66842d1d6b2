"""Faults: the server's own failing code and clients that vanish, on live socket transports.

Filters that raise, hang or return something unserialisable; service callbacks never called or
called twice; a setup that raises; clients leaving mid-call and mid-broadcast; connect/disconnect
churn with threads and memory measured in a server subprocess.
"""
from __future__ import annotations

import json
import threading

import pytest
from flask import Flask

from flask_feathers import Feathers, MemoryService, primus, socketio
from support.clients import TOKEN, RawPrimus, RawSocketIO
from support.fuzz import ServerProcess
from support.waiting import wait_for


class FaultyTodos(MemoryService):
    """Each event's filter misbehaves in its own way for clients whose user is 'victim'."""

    def __init__(self):
        super().__init__(paginate=None)
        self.release = threading.Event()

    def _victim(self, params):
        return params['user']['name'] == 'victim'

    def created(self, data, params):
        if self._victim(params):
            raise RuntimeError('filter bug')
        return data

    def patched(self, data, params):
        if self._victim(params):
            self.release.wait(5)  # hangs past FEATHERS_FILTER_TIMEOUT
        return data

    def removed(self, data, params):
        return object() if self._victim(params) else data  # not JSON

    def never(self, data, params, callback):  # pragma: no cover - not a service method
        pass


class CallbackFaults:
    def find(self, params, callback):
        pass  # never calls back

    def create(self, data, params, callback):
        callback(None, dict(data, n=1))
        callback(None, dict(data, n=2))  # a second call is ignored

    def get(self, id, params, callback):
        callback(None, {'id': id})
        raise RuntimeError('raised after calling back')


def faulty_app():
    app = Flask('faults')
    app.config.update(FEATHERS_FILTER_TIMEOUT=0.3, FEATHERS_CALLBACK_TIMEOUT=0.5)
    api = Feathers(app)

    def setup_io(io):
        @io.use
        def auth(sock, next):
            sock.feathers['user'] = {'name': (sock.auth or {}).get('name', 'anon')}
            next()

    def setup_primus(server):
        @server.authorize
        def auth(req, done):
            req.feathers['user'] = {'name': req.args.get('name', 'anon')}
            done()
    api.configure(socketio(setup_io))
    api.configure(primus({'pingInterval': 0}, setup_primus))
    todos = FaultyTodos()
    api.use('todos', todos)
    api.use('cb', CallbackFaults())
    return app, api, todos


@pytest.fixture
def faulty(live_server):
    app, api, todos = faulty_app()
    server = live_server(app)
    yield server, api, todos
    todos.release.set()
    api.close()
    api.io.server.eio.shutdown()


def sio_client(port, name):
    client = RawSocketIO(port, {'name': name})
    assert client.connected
    return client


def events_named(client, name, count, timeout=5.0):
    out = []
    for _ in range(count):
        p = client.next_packet(lambda p: p.startswith('2[') and json.loads(p[1:])[0] == name,
                               timeout)
        out.append(json.loads(p[1:])[1])
    return out


def test_misbehaving_filters_skip_only_their_client(faulty):
    server, api, todos = faulty
    victim, good = sio_client(server.port, 'victim'), sio_client(server.port, 'good')
    pvictim, pgood = RawPrimus(server.port, 'x&name=victim'), RawPrimus(server.port, 'x&name=good')
    try:
        good.send('21["todos::create",{"a":1}]')
        error, record = good.ack(1)
        assert error is None
        rid = record['id']
        good.send(f'22["todos::patch",{json.dumps(rid)},{{"b":2}}]')
        assert good.ack(2)[0] is None
        good.send(f'23["todos::remove",{json.dumps(rid)}]')
        assert good.ack(3)[0] is None
        # the good clients get all three, in order, although the victim's filters raise, hang
        # past the filter timeout and return an object that is not JSON
        for name in ('todos created', 'todos patched', 'todos removed'):
            assert events_named(good, name, 1)[0]['id'] == rid
            frame = pgood.next_frame(lambda f: isinstance(f, dict) and
                                     f.get('data', [''])[0] == name)
            assert frame['data'][1]['id'] == rid
        assert api.state.dispatcher.wait_idle(30)
        # the victims got none of them, and their connections still work
        victim.send('21["todos::find",{}]')
        assert victim.ack(1) == [None, []]
        assert not [p for p in victim.pending if p.startswith('2[')]
        pvictim.send({'type': 0, 'data': ['todos::find', {}], 'id': 1})
        assert pvictim.ack(1) == [None, []]
        assert not [f for f in pvictim.pending if isinstance(f, dict) and f.get('type') == 0]
    finally:
        for c in (victim, good, pvictim, pgood):
            c.close()


def test_service_callbacks_never_called_or_called_twice(faulty):
    server, api, todos = faulty
    client = sio_client(server.port, 'good')
    try:
        client.send('21["cb::find",{}]')
        error = client.ack(1, timeout=5)[0]
        assert error['name'] == 'Timeout'
        client.send('22["cb::create",{"x":1}]')
        assert client.ack(2) == [None, {'x': 1, 'n': 1}]
        client.send('23["cb::get",5]')
        assert client.ack(3) == [None, {'id': 5}]
        client.send('24["cb::find",{}]')  # still one ack per call, the connection still works
        assert client.ack(4)[0]['name'] == 'Timeout'
        assert not [p for p in client.pending if p.startswith('3')], 'a second ack was sent'
    finally:
        client.close()


def test_service_whose_setup_raises(live_server):
    app = Flask('setup')
    api = Feathers(app)
    api.configure(socketio())

    class Broken:
        def setup(self, app, path):
            raise ValueError('cannot reach the database at 10.0.0.5')

        def find(self, params):
            return []
    api.use('broken', Broken())
    server = live_server(app)
    client = RawSocketIO(server.port, {})
    try:
        for ack_id in (1, 2):  # every call fails cleanly, and again on the next try
            client.send(f'2{ack_id}["broken::find",{{}}]')
            error = client.ack(ack_id)[0]
            assert error['name'] == 'GeneralError' and '10.0.0.5' not in json.dumps(error)
    finally:
        client.close()
        api.io.server.eio.shutdown()


def test_clients_leaving_mid_call_and_mid_broadcast(faulty):
    server, api, todos = faulty
    release = threading.Event()

    class Slow:
        def find(self, params):
            release.wait(5)
            return []
    api.use('slow', Slow())
    watcher = sio_client(server.port, 'good')
    try:
        leavers = []
        for i in range(20):
            c = sio_client(server.port, 'good') if i % 2 else RawPrimus(server.port, 'x&name=good')
            if i % 2:
                c.send('21["slow::find",{}]')
            else:
                c.send({'type': 0, 'data': ['slow::find', {}], 'id': 1})
            leavers.append(c)
        for c in leavers[:10]:
            c.close()  # gone mid-call
        release.set()
        for n in range(50):  # broadcasts while the others go
            if n == 10:
                for c in leavers[10:]:
                    c.close()
            watcher.send(f'2{n + 1}["todos::create",{{"n":{n}}}]')
            assert watcher.ack(n + 1)[0] is None
        assert [e['n'] for e in events_named(watcher, 'todos created', 50)] == list(range(50))
        assert api.state.dispatcher.wait_idle(30)
        wait_for(lambda: len(api.state.connections) <= 1, 10, 'the left clients to leave the registry',
                 lambda: len(api.state.connections))
        assert len(api.state.connections) == 1, 'left clients are still registered'
    finally:
        release.set()
        watcher.close()


def test_connect_disconnect_churn_leaks_no_threads_or_memory():
    """2,000 connections opened and closed (half Socket.IO, half Primus) in a subprocess: its
    threads and RSS come back to their level within a bounded wait."""
    server = ServerProcess()
    try:
        base = server.stats()
        rounds = 1000
        for i in range(rounds):
            s = RawSocketIO(server.port, {'token': TOKEN})
            assert s.connected
            s.close()
            p = RawPrimus(server.port)
            assert p.ws.accepted
            p.close()
        assert server.alive()
        after = server.wait_stats(
            lambda st: st['connections'] == 0 and st['threads'] <= base['threads'] + 3 and
            st['rss_kb'] <= base['rss_kb'] + 15 * 1024, 30,
            f'threads and RSS back to their level ({base})')
        print(f"\nchurn: {2 * rounds} connections; threads {base['threads']} -> "
              f"{after['threads']}, RSS {base['rss_kb'] / 1024:.0f} -> "
              f"{after['rss_kb'] / 1024:.0f} MiB")
    finally:
        server.stop()
