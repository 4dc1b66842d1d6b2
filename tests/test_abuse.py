"""Abuse at the connection and request level, against ``api.run`` in its own process (issue 21):
5,000 unfinished request heads and a flood of 2,000 socket connections a second from one address,
while good clients on REST, Socket.IO and Primus keep every answer and every event; then a 100 MB
body. Threads and RSS stay bounded and come back to their level."""
import os
import resource
import socket
import threading
import time
from typing import List

import pytest
import requests

from support.node import Node
from support.waiting import (kill, proc_status, proc_threads, start_server_script, wait_for,
                             wait_for_http)

#: ``python server.py PORT``: api.run, 5 s for a request head, 20 socket connections per
#: address in 10 s, a broadcast of every created todo.
SERVER = """
import logging, sys
from flask import Flask
from flask_feathers import Feathers, MemoryService, primus, rest, socketio
logging.basicConfig(level=logging.INFO, format='%(name)s %(levelname)s %(message)s')
logging.getLogger('werkzeug').setLevel(logging.WARNING)
app = Flask('abuse')
app.config['FEATHERS_REQUEST_TIMEOUT'] = 5
app.config['FEATHERS_CONNECT_RATE'] = '20/10s'
api = Feathers(app)
api.configure(rest())
api.configure(socketio())
api.configure(primus({'transformer': 'websockets'}))
api.use('todos', MemoryService(paginate=None))
api.run(app, host='127.0.0.1', port=int(sys.argv[1]))
"""

UNFINISHED = 5000
FLOOD = 2000
WRITES = 30

#: Good clients: they count the events they get and report when told.
GOOD = r"""
const got = {sio: 0, primus: 0};
const lost = [];
const s = io(URL, {transports: ['websocket'], reconnection: false});
const p = new PrimusSocket(URL, {reconnect: {retries: 0}});
s.on('todos created', () => got.sio++);
p.on('todos created', () => got.primus++);
s.on('disconnect', (reason) => lost.push('sio: ' + reason));
p.on('end', () => lost.push('primus: end'));
let ready = 0;
const go = () => { if (++ready === 2) out({ready: true}); };
s.once('connect', go);
p.once('open', go);
process.stdin.on('data', () => { out({report: {got, lost}}); s.close(); p.end(); done(); });
setTimeout(() => fail('nobody told the good clients to report'), 170000);
"""


def rss_kb(pid: int) -> int:
    return proc_status(pid, 'VmRSS')


def connection(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect(('127.0.0.1', port))
    return sock


def upgrade_request(path: str) -> bytes:
    return (f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'
            'Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n'
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n').encode()


def status_of(sock: socket.socket) -> int:
    head = b''
    while b'\r\n' not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        head += chunk
    return int(head.split(b' ', 2)[1])


@pytest.fixture
def more_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * (UNFINISHED + FLOOD) + 1000
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.fail(f'this test needs {need} open files; the hard limit is {hard}')
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_unfinished_heads_and_a_connection_flood_leave_good_clients_served(tmp_path, more_files):
    proc, port, url, log_path = start_server_script(tmp_path, SERVER)
    held: List[socket.socket] = []
    good = None
    try:
        wait_for_http(url + '/primus', proc, log_path, 30, lambda r: r.status_code == 426)
        good = Node(GOOD, url)
        good.expect('ready', 30)
        threads_before, rss_before = proc_threads(proc.pid), rss_kb(proc.pid)
        peak = {'threads': threads_before, 'rss': rss_before}
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak['threads'] = max(peak['threads'], proc_threads(proc.pid))
                peak['rss'] = max(peak['rss'], rss_kb(proc.pid))
                sampling.wait(0.01)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        # 5,000 unfinished request heads (slowloris) from one address...
        for _ in range(UNFINISHED):
            sock = connection(port, '127.0.0.3')
            sock.sendall(b'GET /todos HTTP/1.1\r\nHost: x\r\nX-Slow: ')
            held.append(sock)
        # ...and 2,000 socket upgrades within about a second from another (half Primus, half
        # Socket.IO), while the good clients' writes go on.
        flood: List[int] = []
        took: List[float] = []

        def flood_them() -> None:
            started = time.monotonic()
            for i in range(FLOOD):
                path = '/primus' if i % 2 else '/socket.io/?EIO=4&transport=websocket'
                try:
                    sock = connection(port, '127.0.0.2')
                    sock.sendall(upgrade_request(path))
                    if path == '/primus':
                        flood.append(status_of(sock))
                    sock.close()
                except OSError as exc:
                    flood.append(-1)
                    print('flood connection failed:', exc)
                # 2,000 a second at most
                lag = started + (i + 1) / FLOOD - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
            took.append(time.monotonic() - started)
        flooder = threading.Thread(target=flood_them)
        flooder.start()
        answers = []
        with requests.Session() as session:
            for i in range(WRITES):
                answers.append(session.post(url + '/todos', json={'text': f'todo {i}'},
                                            timeout=30).status_code)
        flooder.join(120)
        assert not flooder.is_alive(), 'the flood did not finish within 120 s'
        assert answers == [201] * WRITES
        # the flooding address got its 20 admissions (both transports count), no more
        assert len(flood) == FLOOD // 2 and -1 not in flood, sorted(set(flood))
        assert flood.count(101) <= 20 and flood.count(429) >= FLOOD // 2 - 20, \
            {code: flood.count(code) for code in set(flood)}

        # every event reached both good clients
        good.tell('report')
        report = good.expect('report', 60)
        assert report == {'got': {'sio': WRITES, 'primus': WRITES}, 'lost': []}

        # the unfinished heads are closed after FEATHERS_REQUEST_TIMEOUT, holding no thread
        for sock in held:
            try:
                assert sock.recv(1) == b'', 'the server answered an unfinished request head'
            except ConnectionResetError:
                pass
        sampling.set()
        sampler.join(5)
        print(f"threads {threads_before} -> peak {peak['threads']}; RSS {rss_before} KB -> peak "
              f"{peak['rss']} KB; flood of {FLOOD} in {took[0]:.2f} s: {flood.count(101)} admitted, "
              f"{flood.count(429)} refused")
        assert peak['threads'] <= threads_before + 60, \
            f"threads went from {threads_before} to {peak['threads']}"
        assert peak['rss'] <= rss_before + 150 * 1024, \
            f"RSS went from {rss_before} KB to {peak['rss']} KB"
        wait_for(lambda: proc_threads(proc.pid) <= threads_before + 5, 30,
                   'the threads to come back to their level', lambda: proc_threads(proc.pid))

        # A 100 MB body is refused at once, before it is read: RSS does not move.
        rss_then = rss_kb(proc.pid)
        sock = connection(port, '127.0.0.1')
        held.append(sock)
        sock.sendall(b'POST /todos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                     b'Content-Length: 104857600\r\n\r\n' + b'[' * 65536)
        assert status_of(sock) == 413
        assert rss_kb(proc.pid) <= rss_then + 5 * 1024
        assert requests.get(url + '/todos', timeout=30).status_code == 200
        log = log_path.read_text()
        assert 'was not complete within 5 s' in log and 'FEATHERS_CONNECT_RATE' in log
    finally:
        for sock in held:
            sock.close()
        if good is not None:
            good.stop()
        kill(proc)
