"""Under gunicorn's threaded worker, as the README tells users to deploy."""
import os
import subprocess
import sys
import time

import pytest
import requests

from conftest import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def gunicorn_server(tmp_path):
    gunicorn = os.path.join(os.path.dirname(sys.executable), 'gunicorn')
    if not os.path.exists(gunicorn):
        pytest.fail('gunicorn is not installed: scripts/test installs the test extra')
    port = free_port()
    log = open(tmp_path / 'gunicorn.log', 'w')
    proc = subprocess.Popen([gunicorn, '-k', 'gthread', '--threads', '40', '-w', '1',
                             '--chdir', os.path.join(ROOT, 'tests', 'apps'),
                             '-b', f'127.0.0.1:{port}', 'gunicorn_app:app'],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url + '/todos', timeout=1)
            break
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                pytest.fail('gunicorn did not start:\n' + (tmp_path / 'gunicorn.log').read_text())
            time.sleep(0.1)  # polling a port that is not open yet: nothing to await
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    log.close()


def test_socketio_primus_and_rest_under_gunicorn_gthread(gunicorn_server, node):
    url = gunicorn_server
    out = node(f"""
    setTimeout(() => fail('timed out under gunicorn'), 15000);
    const {{ io }} = require('socket.io-client');
    const Primus = require('primus');
    const Socket = Primus.createSocket({{transformer: 'websockets',
                                        plugin: {{emitter: require('primus-emitter')}}}});
    const s = io('{url}', {{transports: ['websocket'], auth: {{user: 'alice'}}}});
    const p = new Socket('{url}?user=bob');
    const refused = io('{url}', {{transports: ['websocket']}});
    refused.on('connect_error', (e) => out({{refused: e.message}}));
    let pings = 0;
    p.on('incoming::ping', () => pings++);
    const got = [];
    p.on('todos created', (t) => got.push(['primus', t.text]));
    s.on('todos created', (t) => got.push(['socketio', t.text]));
    let ready = 0;
    const go = () => {{
      if (++ready < 2) return;
      s.emit('todos::create', {{text: 'from socket.io'}}, {{}}, (e, r) => {{
        out({{ack: r}});
        p.send('create', 'todos', {{text: 'from primus'}}, {{}}, (e2, r2) => {{
          out({{pack: r2}});
          setTimeout(() => {{ out({{got: got.sort(), pings: pings >= 1}}); s.close(); p.end(); done(); }}, 1500);
        }});
      }});
    }};
    s.on('connect', go); p.on('open', go);
    """)
    assert {'refused': 'Not authenticated!'} in out
    assert {'ack': {'text': 'from socket.io', 'id': 1}} in out
    assert {'pack': {'text': 'from primus', 'id': 2}} in out
    final = out[-1]
    assert final['got'] == [['primus', 'from primus'], ['primus', 'from socket.io'],
                            ['socketio', 'from primus'], ['socketio', 'from socket.io']]
    assert final['pings'] is True
    assert requests.get(url + '/todos', timeout=5).json() == [
        {'text': 'from socket.io', 'id': 1}, {'text': 'from primus', 'id': 2}]
