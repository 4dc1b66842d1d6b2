"""Idle connections of both transports hold no thread of their own and leave nothing behind in
any registry once they close; clients that vanish without closing (no close frame, no FIN) are
dropped by the hub's timers while well-behaved clients stay connected (the connection layer,
flask_feathers/transport/)."""
from __future__ import annotations

import socket
import threading
from typing import List

from flask_feathers import transport

from support.node import Node
from support.waiting import open_fds, wait_for
from support.ws import assert_server_hung_up, masked_close
from support.connections import (THREADS_PER_200, close_all, levels, make_app, raw_primus,
                                 raw_socketio, thread_names)


# -- idle connections hold no thread ----------------------------------------------------------

def test_idle_connections_hold_no_thread_and_leave_no_trace(live_server, stopped_apps):
    app, api, state = make_app('threads_per_connection')
    stopped_apps(state)
    transport.get_hub()  # the hub thread is there before the baseline, as in a running server
    server = live_server(app)
    before = levels(state)
    threads_before = threading.active_count()
    socks: List[socket.socket] = []
    try:
        for _ in range(100):
            socks.append(raw_socketio(server.port))
            socks.append(raw_primus(server.port))
        # Every registry holds all 200, except engine.io's and Primus's own: 100 each.
        grown = {k: v + (100 if k in ('engine.io sockets', 'primus sparks') else 200)
                 for k, v in before.items()}
        wait_for(lambda: levels(state) == grown, 20,
                   '100 Socket.IO and 100 Primus clients in every registry',
                   lambda: levels(state))
        # Handshakes ran on request threads and connect handlers on pooled workers; both end by
        # themselves. What stays may be far less than one thread per connection.
        wait_for(lambda: threading.active_count() - threads_before < THREADS_PER_200, 15,
                   f'fewer than {THREADS_PER_200} more threads than before 200 clients connected '
                   f'({threads_before})',
                   lambda: (threading.active_count(), thread_names()))
        assert levels(state) == grown, 'clients left while they were idle'

        # Half leave with a close frame, half just drop the TCP connection.
        for i, sock in enumerate(socks):
            if i % 4 < 2:
                sock.sendall(masked_close(1000))
            sock.close()
        wait_for(lambda: levels(state) == before, 15,
                   f'every registry back to its level before the clients ({before})',
                   lambda: levels(state))
    finally:
        close_all(socks)


# -- clients that vanish without a close --------------------------------------------------------

GOOD_CLIENTS = r"""
const seen = {sio: {pings: 0, lost: []}, primus: {pings: 0, lost: []}};
const s = io(URL, {transports: ['websocket'], reconnection: false});
const p = new PrimusSocket(URL, {reconnect: {retries: 0}});
s.io.on('ping', () => seen.sio.pings++);
s.on('disconnect', (reason) => seen.sio.lost.push('disconnect: ' + reason));
s.on('connect_error', (e) => seen.sio.lost.push('connect_error: ' + e.message));
p.on('incoming::ping', () => seen.primus.pings++);
['close', 'end', 'reconnect scheduled'].forEach(
  (name) => p.on(name, () => seen.primus.lost.push(name)));
p.on('error', (e) => seen.primus.lost.push('error: ' + e.message));
let ready = 0;
const go = () => { if (++ready === 2) p.id((id) => out({ready: {sio: s.id, primus: id}})); };
s.once('connect', go);
p.once('open', go);
process.stdin.on('data', () => { out({report: seen}); s.close(); p.end(); done(); });
setTimeout(() => fail('nobody told the good clients to report'), 60000);
"""


def test_clients_that_vanish_without_closing_are_dropped_by_the_heartbeat(live_server,
                                                                         stopped_apps):
    app, api, state = make_app('vanishing', sio={'ping_interval': 1, 'ping_timeout': 1},
                               prim={'pingInterval': 1000})
    stopped_apps(state)
    transport.get_hub()
    server = live_server(app)
    lock = threading.Lock()
    connected: set = set()
    gone: set = set()

    def on_connection(conn):
        with lock:
            connected.add(conn.id)

    def on_disconnect(conn):
        with lock:
            gone.add(conn.id)
    api.on('connection', on_connection)
    api.on('disconnect', on_disconnect)

    node = Node(GOOD_CLIENTS, server.url)
    socks: List[socket.socket] = []
    try:
        good = node.expect('ready', 20)
        good_ids = {good['sio'], good['primus']}
        assert good_ids <= {c.id for c in state.connections}, (good, list(state.connections))
        before = levels(state)
        threads_before = threading.active_count()
        fds_before = open_fds()
        with lock:
            connected.clear()

        # 200 clients that complete the handshake (and Socket.IO's CONNECT), then neither read
        # nor write again, and never close their TCP connection.
        for _ in range(100):
            socks.append(raw_socketio(server.port))
            socks.append(raw_primus(server.port))
        wait_for(lambda: len(connected) == 200, 20, 'the 200 silent clients to connect',
                   lambda: len(connected))
        vanished = set(connected)
        # The heartbeat (1 s, and 1 s more for an answer) drops each of them about 2 s after it
        # connected; 10 s (ten intervals) is for a loaded machine, not for the heartbeat.
        wait_for(lambda: vanished <= gone and levels(state) == before, 10,
                   f'the 200 silent clients dropped and every registry back to {before}',
                   lambda: (len(vanished & gone), levels(state)))
        for i, sock in enumerate(socks):
            assert sock.fileno() != -1  # still open on our side: the server did not wait for it
            assert_server_hung_up(sock, f'silent client {i}')
        # Their sockets are released on the server's side: this process holds only our ends.
        wait_for(lambda: open_fds() <= fds_before + len(socks) + 5, 10,
                   f'no more descriptors than ours ({fds_before} + {len(socks)} client sockets)',
                   open_fds)
        # Idle workers end after 2 s: the threads come back to their level.
        wait_for(lambda: threading.active_count() <= threads_before + 3, 15,
                   f'the thread count back to its level ({threads_before})',
                   lambda: (threading.active_count(), thread_names()))

        assert good_ids <= {c.id for c in state.connections}, 'a well-behaved client was dropped'
        node.tell('report')
        report = node.expect('report', 10)
        assert report['sio']['lost'] == [] and report['primus']['lost'] == [], report
        assert report['sio']['pings'] >= 2 and report['primus']['pings'] >= 2, (
            f'the well-behaved clients saw too few heartbeats meanwhile: {report}')
    finally:
        close_all(socks)
        node.stop()
