"""Serves the seed's browser page and todos over Primus; killed and restarted by a test.

Usage: python tests/apps/restart_app.py PORT  (prints {"ready": PORT} once listening)
"""
import json
import os
import sys

from flask import Flask
from werkzeug.serving import make_server

from flask_feathers import Feathers, MemoryService, primus

PAGE = """<!doctype html><html><head><title>restart</title>
<script src="/primus/primus.js"></script></head><body><script>
  window.events = []; window.created = [];
  var primus = new Primus(location.origin, {reconnect: {min: 100, max: 400, retries: 50}});
  ['open', 'reconnect', 'reconnected', 'end', 'close'].forEach(function (name) {
    primus.on(name, function () { events.push(name); });
  });
  primus.on('todos created', function (todo) { created.push(todo.description); });
</script></body></html>"""

app = Flask(__name__)
api = Feathers(app)
api.configure(primus({'transformer': 'websockets', 'pingInterval': 1000}))
api.use('todos', MemoryService(paginate=None))


@app.get('/')
def page():
    return PAGE


if __name__ == '__main__':
    port = int(sys.argv[1])
    server = make_server('127.0.0.1', port, app, threaded=True)
    server.daemon_threads = True
    print(json.dumps({'ready': port, 'pid': os.getpid()}), flush=True)
    server.serve_forever(poll_interval=0.1)
