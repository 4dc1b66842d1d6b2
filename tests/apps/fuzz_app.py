"""The app the fuzz, security and fault tests attack, served in a process of its own
(``python tests/apps/fuzz_app.py PORT [OPTIONS_JSON]``, started by
:class:`support.fuzz.ServerProcess`) so that its survival and its resident memory can be measured from outside.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, Dict, Optional

from support.clients import TOKEN
from support.waiting import proc_status


def make_fuzz_app(config: Optional[Dict[str, Any]] = None, primus_config: Optional[dict] = None,
                  socketio_options: Optional[dict] = None):
    """REST + Socket.IO + Primus with token auth, a ``todos`` service with a ``created`` filter
    (clients whose user is ``muted`` get nothing) and a ``stats`` service reporting the process."""
    import gc
    import ctypes
    from flask import Flask
    from flask_feathers import Feathers, MemoryService, errors, primus, rest, socketio

    app = Flask('fuzz_app')
    app.config.update(config or {})
    api = Feathers(app)
    api.configure(rest())

    def user_for(token):
        if token == TOKEN:
            return {'name': 'fuzzer', 'muted': False}
        if token == TOKEN + '-muted':
            return {'name': 'mute', 'muted': True}
        return None

    def setup_io(io):
        @io.use
        def authorize(sock, next):
            user = user_for((sock.auth or {}).get('token') if isinstance(sock.auth, dict) else None)
            if user is None:
                return next(errors.NotAuthenticated('Not authenticated'))
            sock.feathers['user'] = user
            next()
    api.configure(socketio(setup_io, **(socketio_options or {})))

    def setup_primus(server):
        @server.authorize
        def authorize(req, done):
            user = user_for(req.args.get('token'))
            if user is None:
                return done(errors.NotAuthenticated('Not authenticated'))
            req.feathers['user'] = user
            done()
    api.configure(primus(dict({'transformer': 'websockets', 'pingInterval': 0},
                              **(primus_config or {})), setup_primus))

    class Todos(MemoryService):
        def created(self, data, params):
            return None if params['user']['muted'] else data

    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:  # pragma: no cover - not glibc
        libc = None

    class Stats:
        def find(self, params):
            gc.collect()
            if libc is not None:
                libc.malloc_trim(0)  # give freed arenas back so RSS means "in use"
            state = app.extensions['feathers']
            # The dispatcher's filter pool and watchdog start on first use and live as long as
            # the app, bounded by FEATHERS_FILTER_WORKERS: counted apart from per-connection ones.
            pool = sum(1 for t in threading.enumerate() if t.name.startswith('feathers-filter'))
            workers = app.config['FEATHERS_FILTER_WORKERS']
            assert pool <= workers + 1, f'{pool} dispatcher threads for {workers} workers'
            return {'threads': threading.active_count() - pool, 'rss_kb': proc_status(os.getpid(), 'VmRSS'),
                    'connections': len(state.connections),
                    'sparks': len(state.primus.sparks)}

    api.use('todos', Todos(paginate=None))
    api.use('stats', Stats())
    return app, api


def serve(port: int, config_json: str = '{}') -> None:  # pragma: no cover - in the subprocess
    import logging
    from werkzeug.serving import make_server
    logging.basicConfig(level=logging.CRITICAL)
    options = json.loads(config_json)
    app, api = make_fuzz_app(options.get('config'), options.get('primus'),
                             options.get('socketio'))
    api.setup()
    server = make_server('127.0.0.1', port, app, threaded=True)
    server.daemon_threads = True
    print('ready', flush=True)
    server.serve_forever(poll_interval=0.2)


if __name__ == '__main__':  # pragma: no cover
    serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else '{}')
