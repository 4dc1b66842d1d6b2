"""The connection layer (flask_feathers/transport/) under load, from the outside.

* Idle connections of both transports hold no thread of their own, and leave nothing behind in
  any registry once they close.
* Clients that vanish without closing (no close frame, no FIN: they just stop answering the
  heartbeat) are dropped by the hub's timers, while well-behaved clients stay connected.
* SIGTERM under ``api.run`` (Werkzeug) and under gunicorn -k gthread closes every socket with a
  close frame 1001 (going away: the clients reconnect) and the process exits within 2 s;
  ``api.close()`` does the same in process.
* Primus ``spark.on('data')`` gets what a client ``write``s.
* A connection that negotiated permessage-deflate still gets broadcasts right.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import pytest
import requests
import simple_websocket
from flask import Flask
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from flask_feathers import Feathers, MemoryService, primus, socketio, transport
from flask_feathers.testing import wait_for_dispatch

from support.node import CLIENTS, Node
from support.waiting import (free_port, kill, listening, open_fds, proc_threads,
                             start_server_script, wait_for, wait_for_http)
from support.ws import (assert_server_hung_up, masked_close, masked_text, parse_frame,
                        raw_upgrade, read_close_code)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIO_PATH = '/socket.io/?EIO=4&transport=websocket'
#: How many more threads 200 idle connections may leave behind (far less than one per connection).
THREADS_PER_200 = 20


# -- helpers ---------------------------------------------------------------------------------------

def thread_names() -> Dict[str, int]:
    """Live threads of this process by name, with trailing numbers dropped."""
    names = collections.Counter()
    for thread in threading.enumerate():
        names[thread.name.rstrip('0123456789-').rstrip(' (')] += 1
    return dict(names)


def raw_socketio(port: int) -> socket.socket:
    """A raw websocket that opened engine.io and sent Socket.IO's CONNECT; it reads nothing."""
    sock = raw_upgrade(port, SIO_PATH)
    sock.sendall(masked_text('40'))
    return sock


def raw_primus(port: int) -> socket.socket:
    return raw_upgrade(port, '/primus')


def close_all(socks: List[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def make_app(name: str, sio: Optional[Dict[str, Any]] = None,
             prim: Optional[Dict[str, Any]] = None) -> Any:
    """An app with Socket.IO, Primus and todos; every connection joins the channel 'all'."""
    app = Flask(name)
    api = Feathers(app)
    api.configure(socketio(**(sio or {})))
    api.configure(primus(dict({'transformer': 'websockets'}, **(prim or {}))))
    api.use('todos', MemoryService(paginate=None))
    state = app.extensions['feathers']
    api.on('connection', lambda conn: state.channels.channel('all').join(conn))
    return app, api, state


def levels(state: Any) -> Dict[str, int]:
    """How much of each registry the app's connections take."""
    hub = transport.get_hub()
    return {
        'connection registry': len(state.connections),
        'primus sparks': len(state.primus.sparks),
        'engine.io sockets': len(state.io.server.eio.sockets),
        "channel 'all'": len(state.channels.channel('all')),
        'hub connections': sum(1 for c in list(hub.connections) if c.owner is state),
        'hub selector': sum(1 for c in list(hub._by_fd.values())
                            if getattr(c, 'owner', None) is state),
    }


@pytest.fixture
def stopped_apps():
    """Apps whose background work (dispatcher, engine.io) stops after the test."""
    states: List[Any] = []
    yield states.append
    for state in states:
        state.dispatcher.close()
        state.io.server.eio.shutdown()


# -- 1. idle connections hold no thread ----------------------------------------------------------

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


# -- 2. clients that vanish without a close --------------------------------------------------------

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


# -- 3. graceful shutdown --------------------------------------------------------------------------

#: COUNT Socket.IO and COUNT Primus clients that report how their connection ended: the first
#: disconnect (reason, close code), whether the client is about to reconnect, whether the server
#: said 'primus::server::close' (do not reconnect). Once a client showed it would reconnect it is
#: stopped, so no reconnect storm runs on this machine while the server is exiting. Connect
#: time-outs are a minute: a loaded machine may take long to accept 1,000 clients.
HOLDERS = r"""
const N = +process.env.COUNT;
const res = {sio: {}, primus: {}};
const bump = (o, k) => { o[k] = (o[k] || 0) + 1; };
let open = 0, settled = 0, ended = false;
const opened = () => { if (++open === 2 * N) out({ready: open}); };
const settle = () => {
  if (++settled === 2 * N && !ended) { ended = true; out({summary: res}); done(); }
};
for (let i = 0; i < N; i++) {
  const s = io(URL, {transports: ['websocket'], auth: {user: 's' + i}, timeout: 60000});
  s.once('connect', () => {
    opened();
    s.once('disconnect', (reason, details) => {
      const code = details && details.context && details.context.code;
      bump(res.sio, reason + ' ' + code);
      // socket.io-client's documented test: active means it will try to reconnect.
      if (s.active) bump(res.sio, 'reconnects');
      s.close();
      settle();
    });
  });

  const p = new PrimusSocket(URL + '?user=p' + i, {timeout: 60000, reconnect: {retries: 10}});
  const end = () => bump(res.primus, 'end');
  p.once('open', () => {
    opened();
    p.on('incoming::data', (raw) => {
      if (String(raw).includes('primus::server::close')) bump(res.primus, 'primus::server::close');
    });
    p.once('incoming::end', (evt) => bump(res.primus, 'closed ' + (evt && evt.code)));
    p.on('end', end);
    p.once('reconnect scheduled', () => {
      bump(res.primus, 'reconnects');
      setImmediate(() => {  // after the listeners of this close (ours above included)
        p.off('end', end);
        p.end();
        settle();
      });
    });
  });
}
const progress = setInterval(() => {
  if (open < 2 * N) out({opened: open}); else clearInterval(progress);
}, 5000);
setTimeout(() => { out({timeout: {res, open, settled}}); process.exit(2); }, 90000);
"""

#: ``python server.py PORT``: starts with a soft open-files limit of 512 (below what 1,000 clients
#: need; many systems default to 1,024), which ``api.run`` must raise to the hard limit.
SERVER = """
import logging, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, hard), hard))
from flask import Flask
from flask_feathers import Feathers, MemoryService, primus, socketio
logging.basicConfig(level=logging.INFO, format='%(name)s %(levelname)s %(message)s')
app = Flask('graceful')
api = Feathers(app)
api.configure(socketio())
api.configure(primus({'transformer': 'websockets'}))
api.use('todos', MemoryService(paginate=None))
api.run(app, host='127.0.0.1', port=int(sys.argv[1]))
"""


def assert_every_client_was_told_going_away(summary: Dict[str, Any], count: int) -> None:
    """socket.io-client: 'transport close' with close code 1001, and it would reconnect (not
    'io server disconnect'). primus: a close with code 1001 without 'primus::server::close', and
    a reconnect scheduled (no 'end')."""
    assert summary['sio'] == {'transport close 1001': count, 'reconnects': count}, summary
    assert summary['primus'] == {'closed 1001': count, 'reconnects': count}, summary


def wait_for_primus(url: str, proc: subprocess.Popen, log_path: Any) -> None:
    """Wait until the server process answers a plain GET of /primus (426)."""
    wait_for_http(url + '/primus', proc, log_path, 30, lambda r: r.status_code == 426)


def sigterm_and_time_exit(proc: subprocess.Popen) -> float:
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail('the server was still running 30 s after SIGTERM')
    return time.monotonic() - start


def sigterm_and_check_going_away(proc: subprocess.Popen, node: Any, log_path: Any, server: str,
                                 per_transport: int) -> None:
    """SIGTERM the server holding ``per_transport`` clients of each transport: it exits (0)
    within 2 s and every client was told it is going away."""
    took = sigterm_and_time_exit(proc)
    print(f'{server}: exit {took:.2f} s after SIGTERM with {2 * per_transport} clients')
    summary = node.expect('summary', 30)
    log = log_path.read_text()
    assert proc.returncode == 0, log[-3000:]
    assert took <= 2.0, (f'{server} exited {took:.2f} s after SIGTERM with '
                         f'{2 * per_transport} clients:\n{log[-3000:]}')
    assert_every_client_was_told_going_away(summary, per_transport)


def test_sigterm_under_api_run_closes_1000_clients_going_away_within_2s(tmp_path):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(512, hard)
    proc, port, url, log_path = start_server_script(tmp_path, SERVER)
    node = None
    try:
        wait_for_primus(url, proc, log_path)
        with open(f'/proc/{proc.pid}/limits') as fh:
            limit = next(line for line in fh if line.startswith('Max open files')).split()[3:5]
        assert limit == [str(hard), str(hard)], f'api.run left the open-files limit at {limit}'
        assert f'open-files limit raised from {low} to {hard}' in log_path.read_text() or \
            low == hard, log_path.read_text()[-2000:]

        node = Node(HOLDERS, url, env={'COUNT': '500'})
        assert node.expect('ready', 60) == 1000
        # 1,000 idle clients: the request threads of their handshakes and the workers of their
        # connect handlers end by themselves (workers after 2 s idle).
        wait_for(lambda: proc_threads(proc.pid) < 50, 15,
                   'the server to hold 1,000 idle clients with fewer than 50 threads',
                   lambda: proc_threads(proc.pid))

        # The figure, the one wall-clock bound of the spec (a 1 s grace for the close
        # handshakes is part of it).
        sigterm_and_check_going_away(proc, node, log_path, 'api.run', 500)
    finally:
        kill(proc)
        if node is not None:
            node.stop()


def test_sigterm_under_gunicorn_closes_clients_going_away_within_2s(tmp_path):
    gunicorn = os.path.join(os.path.dirname(sys.executable), 'gunicorn')
    if not os.path.exists(gunicorn):
        pytest.fail('gunicorn is not installed: scripts/test installs the test extra')
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    log_path = tmp_path / 'gunicorn.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([gunicorn, '-k', 'gthread', '--threads', '40', '-w', '1',
                                 '--chdir', os.path.join(ROOT, 'tests', 'apps'),
                                 '-b', f'127.0.0.1:{port}', 'gunicorn_app:app'],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    node = None
    try:
        wait_for_primus(url, proc, log_path)
        node = Node(HOLDERS, url, env={'COUNT': '10'})
        assert node.expect('ready', 30) == 20
        # Before the connection layer one Socket.IO client held gunicorn's exit for 31.7 s.
        sigterm_and_check_going_away(proc, node, log_path, 'gunicorn', 10)
    finally:
        kill(proc)
        if node is not None:
            node.stop()


def test_api_close_sends_every_socket_a_going_away_close_frame(live_server, stopped_apps):
    app, api, state = make_app('api_close')
    stopped_apps(state)
    server = live_server(app)
    socks = []
    try:
        for _ in range(5):
            socks.append(raw_socketio(server.port))
            socks.append(raw_primus(server.port))
        # Connected, and handed over to the hub (a Primus client is in the registry from before
        # its handshake).
        wait_for(lambda: levels(state)['connection registry'] == 10 and
                   levels(state)['hub connections'] == 10, 10, '10 clients connected',
                   lambda: levels(state))
        closing = threading.Thread(target=api.close, daemon=True)
        closing.start()
        codes = []
        for sock in socks:
            code = read_close_code(sock)
            codes.append(code)
            sock.sendall(masked_close(code))  # answer it, as a client does
        assert codes == [1001] * 10
        closing.join(10)
        assert not closing.is_alive(), 'api.close() did not return'
        wait_for(lambda: levels(state) == dict.fromkeys(levels(state), 0), 10,
                   'every registry empty after api.close()', lambda: levels(state))
    finally:
        close_all(socks)


# -- 4. Primus spark.on('data') -----------------------------------------------------------------

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


# -- 5. permessage-deflate ------------------------------------------------------------------------

class DeflateClient:
    """A websocket client (wsproto) that offers permessage-deflate; it records whether each data
    frame the server sent was compressed (RSV1) and decodes the messages."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=f'127.0.0.1:{port}', target=path,
                                               extensions=[PerMessageDeflate()])))
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = self.sock.recv(1)
            assert chunk, 'handshake refused'
            head += chunk
        self.ws.receive_data(head)
        (accepted,) = list(self.ws.events())
        assert isinstance(accepted, AcceptConnection), accepted
        self.extensions = [ext.name for ext in accepted.extensions]
        self.raw = bytearray()
        self.compressed: List[bool] = []  # per data frame
        self.parts: List[str] = []
        self.messages: 'collections.deque[str]' = collections.deque()

    def send(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def _walk(self, data: bytes) -> None:
        self.raw.extend(data)
        while True:
            frame = parse_frame(self.raw)
            if frame is None:
                return
            first, opcode, _ = frame
            if opcode in (0x1, 0x2):
                self.compressed.append(bool(first & 0x40))

    def receive(self, count: int, skip: tuple = (), timeout: float = 10.0) -> List[str]:
        self.sock.settimeout(timeout)
        out: List[str] = []
        while len(out) < count:
            while self.messages and len(out) < count:
                message = self.messages.popleft()
                if message not in skip:
                    out.append(message)
            if len(out) == count:
                break
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                pytest.fail(f'{len(out)} of {count} messages within {timeout} s')
            assert data, f'the server closed the connection after {len(out)} messages'
            self._walk(data)
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    self.parts.append(event.data)
                    if event.message_finished:
                        self.messages.append(''.join(self.parts))
                        self.parts = []
        return out

    def close(self) -> None:
        self.sock.close()


class PlainClient(DeflateClient):
    """The same client without the offer."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=f'127.0.0.1:{port}', target=path)))
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = self.sock.recv(1)
            assert chunk, 'handshake refused'
            head += chunk
        self.ws.receive_data(head)
        (accepted,) = list(self.ws.events())
        assert isinstance(accepted, AcceptConnection), accepted
        self.extensions = [ext.name for ext in accepted.extensions]
        self.raw = bytearray()
        self.compressed = []
        self.parts = []
        self.messages = collections.deque()


def todo_body(i: int) -> str:
    if i % 5 == 0:
        return f'{i} ' + 'compressible ' * 2000  # 26 KB: several TCP segments
    return f'{i} é ' * i


@pytest.mark.parametrize('transport_name', ['socketio', 'primus'])
def test_a_permessage_deflate_client_gets_broadcasts_right(live_server, stopped_apps,
                                                           transport_name):
    app, api, state = make_app(f'deflate_{transport_name}', sio={'websocket_compression': True},
                               prim={'compression': True})
    stopped_apps(state)
    server = live_server(app)
    path = SIO_PATH if transport_name == 'socketio' else '/primus'
    clients = []
    try:
        clients.append(DeflateClient(server.port, path))
        clients.append(PlainClient(server.port, path))
        assert clients[0].extensions == ['permessage-deflate'], clients[0].extensions
        assert clients[1].extensions == []
        if transport_name == 'socketio':
            for client in clients:
                client.send('40')
            for client in clients:  # events reach a client once it got its CONNECT
                opened, connect = client.receive(2, skip=('2',))
                assert opened.startswith('0{') and connect.startswith('40{'), (opened, connect)
        wait_for(lambda: len(state.connections) == 2, 10, 'both clients connected',
                   lambda: len(state.connections))
        count = 30
        with app.app_context():
            for i in range(count):
                api.service('todos').create({'i': i, 'text': todo_body(i)})
        wait_for_dispatch(api, 10)

        for client in clients:
            if transport_name == 'socketio':
                frames = client.receive(count, skip=('2',))
                assert all(f.startswith('42') for f in frames), [f[:20] for f in frames]
                events = [json.loads(f[2:]) for f in frames]
            else:
                events = [json.loads(f)['data'] for f in client.receive(count)]
            assert [e[0] for e in events] == ['todos created'] * count
            assert [e[1] for e in events] == [{'i': i, 'text': todo_body(i), 'id': i + 1}
                                              for i in range(count)]
        deflated, plain = clients
        assert any(deflated.compressed), 'the client that negotiated compression got no ' \
                                         'compressed frame'
        assert not any(plain.compressed), 'a client without compression got compressed frames'
    finally:
        for client in clients:
            client.close()


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
POOLED_SERVER = """
import logging, sys
from flask import Flask
from flask_feathers import Feathers, MemoryService, rest, socketio
logging.basicConfig(level=logging.INFO, format='%(name)s %(levelname)s %(message)s')
app = Flask('pooled')
app.config['FEATHERS_REQUEST_TIMEOUT'] = 2
api = Feathers(app)
api.configure(rest())
api.configure(socketio())
api.use('todos', MemoryService(paginate=None))
api.run(app, host='127.0.0.1', port=int(sys.argv[1]))
"""


def read_http_response(sock: socket.socket) -> bytes:
    """The whole of one HTTP/1.0 response (the server closes after it)."""
    sock.settimeout(30)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)


def test_api_run_serves_requests_on_the_worker_pool_not_a_thread_per_connection(tmp_path):
    proc, port, url, log_path = start_server_script(tmp_path, POOLED_SERVER)
    socks: List[socket.socket] = []
    try:
        wait_for(lambda: proc.poll() is not None or
                   requests.get(url + '/todos', timeout=5).status_code == 200
                   if listening(port) else False, 30, 'api.run to answer')
        assert proc.poll() is None, log_path.read_text()[-3000:]
        baseline = proc_threads(proc.pid)

        # 400 connections that have sent nothing yet cost no thread (Werkzeug alone: one each).
        socks = [socket.create_connection(('127.0.0.1', port), timeout=30) for _ in range(400)]
        peak = [0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], proc_threads(proc.pid))
                sampling.wait(0.005)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            wait_for(lambda: _accepted(proc.pid, port) >= 400, 30,
                       'the server to accept the 400 connections',
                       lambda: _accepted(proc.pid, port))
            idle_threads = proc_threads(proc.pid)
            # Then all of them send a request at once: served by a bounded number of threads.
            for sock in socks:
                sock.sendall(b'GET /todos HTTP/1.0\r\nHost: x\r\n\r\n')
            answers = [read_http_response(sock) for sock in socks]
        finally:
            sampling.set()
            sampler.join(5)
        bad = [a[:80] for a in answers if not a.startswith(b'HTTP/1.1 200')]
        assert not bad, f'{len(bad)} of 400 requests failed: {bad[:3]}'
        assert idle_threads <= baseline + 5, \
            f'400 silent connections took {idle_threads - baseline} threads'
        # 16 runnable workers, a few more when the machine stalls; Werkzeug alone starts 400.
        assert peak[0] <= baseline + 40, \
            f'400 requests at once peaked at {peak[0]} threads (from {baseline})'

        # A connection that never sends its request is closed after FEATHERS_REQUEST_TIMEOUT.
        silent = socket.create_connection(('127.0.0.1', port), timeout=30)
        socks.append(silent)
        assert silent.recv(1) == b'', 'the server answered a connection that sent nothing'
        wait_for(lambda: 'sent no request within 2 s' in log_path.read_text(), 10,
                   'the log line for the silent connection')

        # Slowloris: 300 connections send half a request head and then nothing. They take no
        # thread while a normal request is served, and are closed after FEATHERS_REQUEST_TIMEOUT.
        before = proc_threads(proc.pid)
        slow = [socket.create_connection(('127.0.0.1', port), timeout=30) for _ in range(300)]
        socks.extend(slow)
        for sock in slow:
            sock.sendall(b'GET /todos HTTP/1.1\r\nHost: x\r\nX-Slow: ')
        assert requests.get(url + '/todos', timeout=30).status_code == 200
        held = proc_threads(proc.pid)
        assert held <= before + 20, f'300 unfinished request heads took {held - before} threads'
        for sock in slow:  # closed: end of file, or a reset for the unread half head
            try:
                assert sock.recv(1) == b'', 'the server answered an unfinished request head'
            except ConnectionResetError:
                pass
        wait_for(lambda: 'was not complete within 2 s' in log_path.read_text(), 10,
                   'the log line for the unfinished request heads')
    finally:
        for sock in socks:
            sock.close()
        kill(proc)


def test_idle_keep_alive_connections_do_not_keep_a_request_waiting(tmp_path):
    # 150 idle keep-alive connections (a thread each, waiting outside the pool's bound) do not
    # keep a new request waiting. The pool's grace is 60 s here: left unmarked, those waits would
    # let one more thread start per 60 s, so only the blocking() marks can get the 151st request
    # a thread before its 30 s time-out (an isolation check, not a clock bound).
    source = POOLED_SERVER.replace('api.run(', 'from flask_feathers import transport\n'
                                   'transport.get_hub().workers.grace = 60\napi.run(')
    proc, port, url, log_path = start_server_script(tmp_path, source)
    keep = [requests.Session() for _ in range(150)]
    try:
        wait_for_http(url + '/todos', proc, log_path, 30)
        for session in keep:
            assert session.get(url + '/todos', timeout=30).status_code == 200
        assert requests.get(url + '/todos', timeout=30).status_code == 200
    finally:
        for session in keep:
            session.close()
        kill(proc)


def _accepted(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` on the server port."""
    inodes = set()
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            target = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    count = 0
    with open('/proc/net/tcp') as fh:
        next(fh)
        for line in fh:
            fields = line.split()
            if int(fields[1].split(':')[1], 16) == port and fields[3] == '01' and \
                    fields[9] in inodes:
                count += 1
    return count


def test_a_handed_over_primus_socket_gets_no_http_response_after_it(live_server, caplog):
    # Flask turns a view's Response into app.response_class; the view's "handed over" answer
    # must survive that (also for an app's own response class), or Werkzeug writes a 200 after
    # the WebSocket left, logs it and reads the socket once more, for every Primus client.
    class AppResponse(Flask.response_class):
        pass
    app = Flask('handed-over')
    app.response_class = AppResponse
    api = Feathers(app)
    api.configure(primus({'transformer': 'websockets'}))
    server = live_server(app)
    caplog.set_level('INFO', logger='werkzeug')
    ws = simple_websocket.Client.connect(f'ws://127.0.0.1:{server.port}/primus')
    try:
        requests.get(server.url + '/primus', timeout=10)  # a plain request: 426, logged
        wait_for(lambda: any('426' in r.getMessage() for r in caplog.records), 10,
                   "Werkzeug's log line for the plain request")
        primus_lines = [r.getMessage() for r in caplog.records
                        if '/primus' in r.getMessage() and '426' not in r.getMessage()]
        assert primus_lines == [], f'Werkzeug answered the handed-over socket: {primus_lines}'
    finally:
        ws.close()


@pytest.mark.parametrize('path', ['/primus', SIO_PATH])
@pytest.mark.parametrize('bad', ['Sec-WebSocket-Key: abc', 'Sec-WebSocket-Version: 8'])
def test_an_invalid_upgrade_is_answered_400_on_both_transports(live_server, path, bad):
    app = Flask('bad-upgrade')
    api = Feathers(app)
    api.configure(socketio())
    api.configure(primus({'transformer': 'websockets'}))
    server = live_server(app)
    headers = {'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13'}
    name, value = bad.split(': ')
    headers[name] = value
    sock = socket.create_connection(('127.0.0.1', server.port), timeout=10)
    try:
        sock.sendall((f'GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
                      'Connection: Upgrade\r\n' +
                      ''.join(f'{k}: {v}\r\n' for k, v in headers.items()) + '\r\n').encode())
        status = read_http_response(sock).split(b'\r\n', 1)[0]
    finally:
        sock.close()
    assert status.startswith(b'HTTP/1.1 400'), status


#: ``python server.py PORT``: api.run with a route that answers what Flask sees of a request,
#: for WebSocket upgrades (served without Werkzeug's handler) and plain GETs (served by it).
ECHO_SERVER = """
import sys
from flask import Flask, jsonify, request
from flask_feathers import Feathers, primus, socketio
app = Flask('echo')
api = Feathers(app)
api.configure(socketio())
api.configure(primus({'transformer': 'websockets'}))

def echo(rest):
    seen = {'path': request.path, 'full_path': request.full_path, 'args': request.args.to_dict(),
            'url': request.url, 'host': request.host, 'remote_addr': request.remote_addr,
            'scheme': request.scheme, 'x_test': request.headers.get('X-Test'),
            'multi': request.headers.get('X-Multi'), 'method': request.method,
            'protocol': request.environ['SERVER_PROTOCOL'], 'rest': rest,
            'software': request.environ['SERVER_SOFTWARE']}
    return jsonify(seen), 403
app.add_url_rule('/echo/<path:rest>', 'echo_ws', echo, websocket=True)
app.add_url_rule('/echo/<path:rest>', 'echo', echo)
api.run(app, host='127.0.0.1', port=int(sys.argv[1]))
"""


def test_an_upgrade_served_without_werkzeugs_handler_looks_the_same_to_the_app(tmp_path):
    proc, port, _, log_path = start_server_script(tmp_path, ECHO_SERVER)
    try:
        wait_for(lambda: proc.poll() is not None or listening(port), 30, 'api.run to listen')
        assert proc.poll() is None, log_path.read_text()[-3000:]
        target = '/echo/caf%C3%A9/x%20y?q=%20z&u=%E2%9C%93&q2=a+b'

        def ask(upgrade: bool) -> Dict[str, Any]:
            sock = socket.create_connection(('127.0.0.1', port), timeout=30)
            try:
                extra = ('Upgrade: websocket\r\nConnection: Upgrade\r\n'
                         'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                         'Sec-WebSocket-Version: 13\r\n') if upgrade else ''
                sock.sendall((f'GET {target} HTTP/1.1\r\nHost: example.test:8080\r\n'
                              f'X-Test: caf\xe9\r\nX-Multi: a\r\nX-Multi: b\r\n{extra}'
                              'Connection: close\r\n\r\n' if not upgrade else
                              f'GET {target} HTTP/1.1\r\nHost: example.test:8080\r\n'
                              f'X-Test: caf\xe9\r\nX-Multi: a\r\nX-Multi: b\r\n{extra}\r\n'
                              ).encode('latin-1'))
                answer = read_http_response(sock)
            finally:
                sock.close()
            head, _, body = answer.partition(b'\r\n\r\n')
            assert head.split(b'\r\n')[0] == b'HTTP/1.1 403 FORBIDDEN', head
            return json.loads(body)

        plain, upgraded = ask(False), ask(True)
        # who served each: Werkzeug's handler, and the connection layer's upgrade path
        assert plain.pop('software').startswith('Werkzeug'), plain
        assert upgraded.pop('software') == 'flask-feathers', upgraded
        assert plain['path'] == '/echo/café/x y'
        assert plain['args'] == {'q': ' z', 'u': '✓', 'q2': 'a b'}
        assert upgraded == plain
    finally:
        kill(proc)
