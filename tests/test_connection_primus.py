"""Primus on the connection layer: ``spark.on('data')`` gets what a client ``write``s, in order,
frames sent right after the handshake reach the listeners of the connection handler, and
``api.close()`` also closes a client that was still being admitted."""
from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any, Dict

import pytest
import simple_websocket
from flask import Flask

from flask_feathers import Feathers, primus

from support.node import CLIENTS
from support.ws import raw_upgrade, read_close_code


# -- Primus spark.on('data') -----------------------------------------------------------------

ECHO_WRITES = r"""
const p = new PrimusSocket(URL);
const echoes = [];
p.on('data', (data) => {
  if (data === 'listening') {  // the server's 'connection' handler attached its listener
    p.write({hello: 'world'}); p.write('plain text'); p.write([1, 2, 3]);
    return;
  }
  echoes.push(data);
  if (echoes.length === 3) { out({echoes}); p.end(); done(); }
});
setTimeout(() => fail('echoes so far: ' + JSON.stringify(echoes)), 10000);
"""


def test_primus_spark_data_listener_gets_what_clients_write(live_server, node):
    app = Flask('spark_data')
    api = Feathers(app)
    api.configure(primus({'transformer': 'websockets'}))
    got: 'queue.Queue[Any]' = queue.Queue()
    listening = threading.Semaphore(0)

    def on_connection(spark):
        def on_data(data):
            got.put(data)
            spark.write({'echo': data})
        spark.on('data', on_data)
        spark.write('listening')
        listening.release()
    api.primus.on('connection', on_connection)
    server = live_server(app)

    echoes = node(CLIENTS + ECHO_WRITES, env={'SERVER_URL': server.url}, timeout=20)[0]['echoes']
    expected = [{'hello': 'world'}, 'plain text', [1, 2, 3]]
    received = []
    for _ in expected:
        try:
            received.append(got.get(timeout=5))
        except queue.Empty:
            pytest.fail(f"spark.on('data') got {received}, not all of {expected}")
    key = json.dumps  # (in any order: each frame's listeners run on a worker of their own)
    assert sorted(map(key, received)) == sorted(map(key, expected))
    assert sorted(map(key, echoes)) == sorted(key({'echo': v}) for v in expected)

    # A plain websocket frame (what primus.write sends) from a client without the npm library.
    assert listening.acquire(timeout=10)
    ws = simple_websocket.Client.connect(server.url.replace('http', 'ws') + '/primus')
    try:
        assert listening.acquire(timeout=10), "the 'connection' handler never ran"
        ws.send(json.dumps({'raw': 'frame', 'n': 1}))
        try:
            assert got.get(timeout=5) == {'raw': 'frame', 'n': 1}
        except queue.Empty:
            pytest.fail("a raw data frame never reached spark.on('data')")
    finally:
        ws.close()

# -- Primus admission and ordering --------------------------------------------------------------

def primus_app_with(on_connection):
    app = Flask('primus_bugs')
    api = Feathers(app)
    api.configure(primus({'transformer': 'websockets'}))
    api.primus.on('connection', on_connection)
    return app


def test_frames_sent_right_after_the_handshake_reach_the_listeners_of_the_connection_handler(
        live_server):
    """Primus emits 'connection' before it reads the spark's first frame: listeners a handler
    attaches (even after a lookup) see everything the client sends."""
    got: 'queue.Queue' = queue.Queue()

    def on_connection(spark):
        time.sleep(0.05)  # a lookup before the listeners are attached
        spark.on('data', got.put)
        spark.on('my other event', lambda data, reply: reply('got it'))
    server = live_server(primus_app_with(on_connection))
    ws = simple_websocket.Client.connect(server.url.replace('http', 'ws') + '/primus')
    try:
        ws.send(json.dumps({'n': 1}))
        ws.send(json.dumps({'type': 0, 'data': ['my other event', {}], 'id': 1}))
        try:
            assert got.get(timeout=5) == {'n': 1}
        except queue.Empty:
            raise AssertionError("the first write never reached spark.on('data')") from None
        while True:
            frame = json.loads(ws.receive(timeout=5))
            if isinstance(frame, dict):
                break
        assert frame == {'type': 1, 'id': 1, 'data': ['got it']}, frame
    finally:
        ws.close()


def test_spark_data_listeners_get_a_clients_writes_in_order(live_server):
    got = []
    done = threading.Event()
    ready = threading.Event()

    def on_connection(spark):
        def on_data(data):
            got.append(data)
            if len(got) == 500:
                done.set()
        spark.on('data', on_data)
        ready.set()
    server = live_server(primus_app_with(on_connection))
    ws = simple_websocket.Client.connect(server.url.replace('http', 'ws') + '/primus')
    try:
        assert ready.wait(10)
        for i in range(500):
            ws.send(json.dumps(i))
        assert done.wait(10), f'{len(got)} of 500 writes arrived'
        assert got == list(range(500)), [i for i, n in enumerate(got) if n != i][:10]
    finally:
        ws.close()


def test_api_close_also_closes_a_client_that_was_still_being_admitted(live_server):
    """A Primus client inside the app's 'connection' listeners when api.close() runs finishes
    its handshake afterwards: it is closed with 1001 as it starts, not left open."""
    app = Flask('close_race')
    api = Feathers(app)
    api.configure(primus({'transformer': 'websockets'}))
    entered, go_on = threading.Event(), threading.Event()

    def slow(conn):
        entered.set()
        go_on.wait(10)  # e.g. a lookup in api.on('connection')
    api.on('connection', slow)
    server = live_server(app)
    result: Dict[str, Any] = {}

    def open_one() -> None:
        try:
            result['sock'] = raw_upgrade(server.port, '/primus')
        except BaseException as exc:  # reported below, not as an unhandled thread exception
            result['error'] = exc
    opener = threading.Thread(target=open_one, daemon=True)
    opener.start()
    assert entered.wait(10), 'the client never reached the connection listener'
    closer = threading.Thread(target=api.close, daemon=True)
    closer.start()
    closer.join(10)
    go_on.set()
    opener.join(10)
    assert 'sock' in result, f"the handshake never completed: {result.get('error')!r}"
    try:
        assert read_close_code(result['sock']) == 1001
    finally:
        result['sock'].close()


#: ``python server.py PORT``: api.run with 2 s for a connection's first request head.
