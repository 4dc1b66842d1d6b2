"""Under gunicorn's threaded worker, with the command docs/deployment.rst gives."""
import os
import subprocess
import sys

import pytest
import requests

from support.waiting import free_port, kill, terminate, wait_for_http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The options of the gunicorn command in docs/deployment.rst (checked below).
DOCUMENTED_OPTIONS = ['-k', 'gthread', '-w', '1', '--threads', '100']
#: More websockets than the command gives threads: a handed-over websocket holds none.
MORE_THAN_THREADS = 150


@pytest.fixture
def gunicorn_server(tmp_path):
    gunicorn = os.path.join(os.path.dirname(sys.executable), 'gunicorn')
    if not os.path.exists(gunicorn):
        pytest.fail('gunicorn is not installed: scripts/test installs the test extra')
    port = free_port()
    log = open(tmp_path / 'gunicorn.log', 'w')
    proc = subprocess.Popen([gunicorn, *DOCUMENTED_OPTIONS,
                             '--chdir', os.path.join(ROOT, 'tests', 'apps'),
                             '-b', f'127.0.0.1:{port}', 'gunicorn_app:app'],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        # refused before the master listens; a read time-out while the worker still boots (the
        # master accepts on its behalf), which takes seconds on a loaded machine
        wait_for_http(url + '/todos', proc, tmp_path / 'gunicorn.log')
    except AssertionError as exc:
        kill(proc)
        log.close()
        pytest.fail(f'gunicorn did not start: {exc}')
    yield url
    terminate(proc)
    log.close()
    output = (tmp_path / 'gunicorn.log').read_text()
    # gthread warns "No keepalived connections can be handled" when --threads reaches
    # --worker-connections (1000): the documented command must start clean
    assert 'WARNING' not in output and 'keepalived' not in output, output


#: socket.io-client and the npm primus client (with primus-emitter) for the Node scripts below
CLIENTS = """
const { io } = require('socket.io-client');
const Primus = require('primus');
const Socket = Primus.createSocket({transformer: 'websockets',
                                   plugin: {emitter: require('primus-emitter')}});
"""


def test_the_documented_command_is_the_one_tested():
    with open(os.path.join(ROOT, 'docs', 'deployment.rst'), encoding='utf-8') as fh:
        text = fh.read()
    assert 'gunicorn ' + ' '.join(DOCUMENTED_OPTIONS) + ' ' in text


def test_more_websockets_than_threads_under_gunicorn(gunicorn_server, node):
    url = gunicorn_server
    out = node(CLIENTS + f"""
    setTimeout(() => fail('not every client got the broadcast'), 40000);
    const total = {MORE_THAN_THREADS};
    const clients = [];
    let open = 0, got = 0;
    const opened = () => {{
      if (++open < total) return;
      clients[0].emit('todos::create', {{text: 'to everybody'}}, {{}}, () => {{}});
    }};
    const received = (todo) => {{
      if (todo.text === 'to everybody' && ++got === total) {{
        out({{open, got}});
        clients.forEach((c) => c.close ? c.close() : c.end());
        done();
      }}
    }};
    for (let i = 0; i < total; i++) {{
      if (i % 2 === 0) {{
        const s = io('{url}', {{transports: ['websocket'], auth: {{user: 'u' + i}},
                                forceNew: true}});
        s.on('connect', opened); s.on('todos created', received); clients.push(s);
      }} else {{
        const p = new Socket('{url}?user=u' + i);
        p.on('open', opened); p.on('todos created', received); clients.push(p);
      }}
    }}
    """, timeout=60)
    assert out == [{'open': MORE_THAN_THREADS, 'got': MORE_THAN_THREADS}]


def test_socketio_primus_and_rest_under_gunicorn_gthread(gunicorn_server, node):
    url = gunicorn_server
    out = node(CLIENTS + f"""
    setTimeout(() => fail('timed out under gunicorn'), 15000);
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
