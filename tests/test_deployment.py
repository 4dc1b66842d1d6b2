"""docs/deployment.rst as written: two gunicorn processes (the documented command) sharing events
over Redis, behind nginx with the documented configuration."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import requests

from _doc_examples import DOCS, code_blocks
from support.waiting import free_port, wait_for_http

NGINX = shutil.which('nginx') or '/usr/sbin/nginx'

#: The app the documented command names as 'myapp:create_app()'.
MYAPP = """
import os
from flask import Flask
from flask_feathers import Feathers, MemoryService, primus, rest, socketio


def create_app():
    app = Flask(__name__)
    app.config['FEATHERS_MESSAGE_QUEUE'] = 'redis://127.0.0.1:6379/0'
    app.config['FEATHERS_MESSAGE_QUEUE_CHANNEL'] = os.environ['DOCS_CHANNEL']
    api = Feathers(app)
    api.configure(rest())
    api.configure(socketio())
    api.configure(primus({'transformer': 'websockets'}))
    api.use('todos', MemoryService(paginate=None))
    return app
"""


def documented(language):
    blocks = [b.code for b in code_blocks(os.path.join(DOCS, 'deployment.rst'))
              if b.language == language]
    return blocks


@pytest.fixture
def deployment(tmp_path):
    if not os.path.exists(NGINX):
        pytest.fail('nginx is missing: run scripts/test (it installs Debian\'s nginx-light)')
    gunicorn = os.path.join(os.path.dirname(sys.executable), 'gunicorn')
    (tmp_path / 'myapp.py').write_text(MYAPP)
    commands = [line for line in documented('bash')[1].splitlines() if line.startswith('gunicorn')]
    assert len(commands) == 2, commands
    ports = [free_port(), free_port()]
    proxy_port = free_port()
    env = {**os.environ, 'DOCS_CHANNEL': f'docs-deployment-{proxy_port}',
           'PYTHONPATH': os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')])}
    procs = []
    try:
        for command, port, documented_port in zip(commands, ports, ('5001', '5002')):
            args = command.replace(f'127.0.0.1:{documented_port}', f'127.0.0.1:{port}').split()
            assert args[0] == 'gunicorn' and args[-1] == "'myapp:create_app()'", args
            args = [gunicorn] + args[1:-1] + ['myapp:create_app()']
            log = tmp_path / f'gunicorn-{port}.log'
            with log.open('w') as out:  # the child keeps its own copy of the descriptor
                procs.append((subprocess.Popen(args, cwd=tmp_path, env=env, stdout=out,
                                               stderr=subprocess.STDOUT), log))
        for (proc, log), port in zip(procs, ports):
            wait_for_http(f'http://127.0.0.1:{port}/todos', proc, log)

        site = documented('nginx')[0]
        site = site.replace('listen 80;', f'listen 127.0.0.1:{proxy_port};')
        site = site.replace('127.0.0.1:5001', f'127.0.0.1:{ports[0]}')
        site = site.replace('127.0.0.1:5002', f'127.0.0.1:{ports[1]}')
        (tmp_path / 'logs').mkdir()
        (tmp_path / 'nginx.conf').write_text(
            'worker_processes 1;\nerror_log logs/error.log;\npid logs/nginx.pid;\n'
            'events { worker_connections 256; }\n'
            'http {\n    access_log off;\n' + site + '\n}\n')
        nginx_log = tmp_path / 'nginx.log'
        test = subprocess.run([NGINX, '-t', '-p', str(tmp_path), '-c', 'nginx.conf'],
                              capture_output=True, text=True, timeout=30)
        assert test.returncode == 0, test.stderr
        with nginx_log.open('w') as out:
            nginx = subprocess.Popen([NGINX, '-p', str(tmp_path), '-c', 'nginx.conf', '-g',
                                      'daemon off;'], stdout=out, stderr=subprocess.STDOUT)
        procs.append((nginx, nginx_log))
        url = f'http://127.0.0.1:{proxy_port}'
        wait_for_http(url + '/todos', nginx, tmp_path / 'logs' / 'error.log')
        yield url, [f'http://127.0.0.1:{port}' for port in ports]
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    for _, log in procs[:2]:
        output = log.read_text()
        assert 'WARNING' not in output and 'Traceback' not in output, output


def test_two_gunicorn_processes_behind_nginx_as_documented(deployment, node):
    url, backends = deployment
    # Both socket transports through nginx; Socket.IO with its default transports, so it starts
    # on long-polling through the proxy and then upgrades (the config's Upgrade headers). Then
    # one todo is created in each gunicorn process, directly: both reach both clients, whichever
    # process holds them (Redis).
    out = node(f"""
    setTimeout(() => fail('timed out behind nginx: ' + JSON.stringify(got)), 30000);
    const {{ io }} = require('socket.io-client');
    const Primus = require('primus');
    const Socket = Primus.createSocket({{transformer: 'websockets',
                                        plugin: {{emitter: require('primus-emitter')}}}});
    const s = io('{url}');
    const p = new Socket('{url}');
    const got = {{socketio: [], primus: []}};
    const check = () => {{
      if (got.socketio.length < 2 || got.primus.length < 2) return;
      out({{got, transport: s.io.engine.transport.name}});
      s.close(); p.end(); done();
    }};
    s.on('todos created', (t) => {{ got.socketio.push(t.text); check(); }});
    p.on('todos created', (t) => {{ got.primus.push(t.text); check(); }});
    const create = async () => {{
      for (const backend of {json.dumps(backends)}) {{
        const answer = await fetch(backend + '/todos', {{method: 'POST',
          headers: {{'Content-Type': 'application/json'}},
          body: JSON.stringify({{text: 'via ' + backend.slice(-5)}})}});
        if (answer.status !== 201) fail('create answered ' + answer.status);
      }}
    }};
    let ready = 0;
    const go = () => {{ if (++ready === 3) create(); }};
    s.on('connect', () => {{
      if (s.io.engine.transport.name === 'websocket') go();
      else s.io.engine.once('upgrade', go);
      go();
    }});
    p.on('open', go);
    """, timeout=60)
    final = out[-1]
    expected = sorted(f'via {backend[-5:]}' for backend in backends)
    assert sorted(final['got']['socketio']) == expected
    assert sorted(final['got']['primus']) == expected
    assert final['transport'] == 'websocket'
    answer = requests.get(url + '/primus', timeout=10)
    assert answer.status_code == 426  # through the proxy, still Primus's own answer


def test_the_documented_config_passes_nginx_t(tmp_path):
    if not os.path.exists(NGINX):
        pytest.fail('nginx is missing: run scripts/test (it installs Debian\'s nginx-light)')
    (tmp_path / 'logs').mkdir()
    site = re.sub(r'listen 80;', f'listen 127.0.0.1:{free_port()};', documented('nginx')[0])
    (tmp_path / 'nginx.conf').write_text('error_log logs/error.log;\npid logs/nginx.pid;\n'
                                         'events {}\nhttp {\n' + site + '\n}\n')
    test = subprocess.run([NGINX, '-t', '-p', str(tmp_path), '-c', 'nginx.conf'],
                          capture_output=True, text=True, timeout=30)
    assert test.returncode == 0, test.stderr
