"""What ``api.run`` adds around Werkzeug's server for the connection layer: requests on the worker
pool, not a thread per connection; idle keep-alive connections and slow request heads cost no
thread; a handed-over socket gets no HTTP response after it; an invalid upgrade is answered 400;
an upgrade served without Werkzeug's handler looks the same to the app."""
from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any, Dict, List

import pytest
import requests
import simple_websocket
from flask import Flask

from flask_feathers import Feathers, primus, socketio

from support.waiting import (kill, listening, proc_threads, start_server_script, wait_for,
                             wait_for_http)
from support.connections import SIO_PATH


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
