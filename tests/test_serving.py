"""What ``api.run`` says when it starts: one line about the development server, not three."""
import subprocess
import sys

import pytest

from support.waiting import free_port

APP = """
import sys
from flask import Flask
from flask_feathers import Feathers, MemoryService, primus, rest, socketio
app = Flask('startup')
api = Feathers(app)
api.configure(rest())
if sys.argv[2] == 'sockets':
    api.configure(socketio())
    api.configure(primus({'transformer': 'websockets'}))
api.use('todos', MemoryService())
api.run(app, host='127.0.0.1', port=int(sys.argv[1]))
"""


@pytest.mark.parametrize('providers', ['sockets', 'rest-only'])
def test_api_run_prints_one_line_about_the_development_server(tmp_path, providers):
    script = tmp_path / 'app.py'
    script.write_text(APP)
    # stdin is not a terminal, as under a process manager: Flask-SocketIO's extra warning case
    proc = subprocess.Popen([sys.executable, str(script), str(free_port()), providers],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:  # bounded by the suite's time-out if it never starts
            lines.append(line.rstrip('\n'))
            if 'Running on http://' in line:
                break
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    lines += rest.splitlines()
    about_server = [line for line in lines
                    if 'production' in line.lower() or 'development server' in line.lower()]
    assert about_server == [
        " * Development server (Werkzeug, api.run); in production use gunicorn -k gthread "
        "(docs: deployment)"], lines
    assert any('Running on http://127.0.0.1:' in line for line in lines), lines
    assert not any('WARNING' in line or 'Traceback' in line for line in lines), lines


def test_api_run_defers_full_collections_only_over_the_default_thresholds():
    import gc
    import sys

    from flask_feathers.transport import serving
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with serving.defer_full_collections():
            inside = gc.get_threshold()
        assert gc.get_threshold() == (700, 10, 10)
        if sys.version_info < (3, 14):
            assert inside == (700, 10, serving.FULL_COLLECTION_EVERY)
        gc.set_threshold(500, 5, 5)  # the app's own choice is left alone
        with serving.defer_full_collections():
            assert gc.get_threshold() == (500, 5, 5)
    finally:
        gc.set_threshold(*before)
