"""A todos app for the multi-process tests and the scale-out benchmark, run as a real process.

Server:  python tests/apps/multi_app.py serve --port P --queue redis://... --channel C
         prints ``{"ready": P}`` once it listens and its subscriber is subscribed.
Writer:  python tests/apps/multi_app.py produce --queue ... --channel C --producer W --count 50
         (writer-only mode: api.service('todos').create(...) like a worker or a cron job)
         prints ``{"produced": N, "started": <time.time() before the first create>}``.

Users and companies: ``acme-*`` users belong to company ``acme``, ``globex-*`` to ``globex``.
Socket.IO clients authenticate with ``auth={'user': name}``, Primus clients with ``?user=name``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from flask import Flask, jsonify, request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from flask_feathers import Feathers, errors, primus, rest, socketio  # noqa: E402


def user_of(name: Any) -> Dict[str, Any]:
    if not isinstance(name, str) or '-' not in name:
        raise errors.NotAuthenticated('Unknown user')
    company = name.split('-', 1)[0]
    if company not in ('acme', 'globex'):
        raise errors.NotAuthenticated('Unknown user')
    return {'name': name, 'company': company}


class Todos:
    """Return-style todos with no event filter: every client gets every event."""

    events = ['status']

    def __init__(self) -> None:
        self.items: List[Dict[str, Any]] = []

    def find(self, params):
        return list(self.items)

    def create(self, data, params):
        if isinstance(data, list):
            return [self.create(item, params) for item in data]
        record = dict(data, id=len(self.items) + 1)
        self.items.append(record)
        return record



class CompanyTodos(Todos):
    """``created`` shows each company only its own todos."""

    def created(self, data, params):
        return data if data.get('company') == params['user']['company'] else None


def create_app(queue: str, channel: str, write_only: bool = False,
               filtered: bool = True, channels: bool = False) -> tuple:
    app = Flask('multi_app')
    api = Feathers(app, message_queue=queue, channel=channel, write_only=write_only)
    api.configure(rest())

    def setup_io(io):
        @io.use
        def auth(socket, next):
            socket.feathers['user'] = user_of((socket.auth or {}).get('user'))
            next()
    api.configure(socketio(setup_io))

    def setup_primus(server):
        @server.authorize
        def authorize(req, done):
            req.feathers['user'] = user_of(req.args.get('user'))
            done()
    api.configure(primus({'transformer': 'websockets'}, setup_primus))
    api.use('todos', CompanyTodos() if filtered and not channels else Todos())
    if channels:
        # Feathers 5 style instead of the filter: each connection joins its company's channel
        # in the process it lives in; each process publishes to its own connections.
        api.on('connection', lambda conn: api.channel(conn.params['user']['company']).join(conn))
        api.service('todos').publish('created', lambda data, context: api.channel(
            data['company']))

    @app.post('/io-emit')
    def io_emit():
        api.io.emit('news', request.get_json())
        return jsonify(ok=True)

    @app.post('/primus-send')
    def primus_send():
        api.primus.send('news', request.get_json())
        return jsonify(ok=True)

    @app.post('/status')
    def status():
        api.service('todos').emit('status', request.get_json())
        return jsonify(ok=True)
    return app, api


def serve(args: argparse.Namespace) -> None:
    app, api = create_app(args.queue, args.channel, filtered=not args.unfiltered,
                          channels=args.channels)
    api.setup()
    if not api.state.fanout.wait_subscribed(15):
        print(json.dumps({'error': 'not subscribed to the message queue'}), flush=True)
        sys.exit(2)
    server = make_server('127.0.0.1', args.port, app, threaded=True)
    server.daemon_threads = True
    print(json.dumps({'ready': args.port, 'pid': os.getpid()}), flush=True)
    server.serve_forever(poll_interval=0.1)


def produce(args: argparse.Namespace) -> None:
    app, api = create_app(args.queue, args.channel, write_only=True)
    with app.app_context():
        todos = api.service('todos')
        started = time.time()
        for n in range(args.count):
            todos.create({'producer': args.producer, 'n': n,
                          'company': ('acme', 'globex')[n % 2]})
        if args.sentinel:
            for company in ('acme', 'globex'):
                todos.create({'producer': args.producer, 'company': company, 'sentinel': True})
    api.close()
    print(json.dumps({'produced': args.count, 'started': started}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('mode', choices=['serve', 'produce'])
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--queue', required=True)
    parser.add_argument('--channel', required=True)
    parser.add_argument('--producer', default='W')
    parser.add_argument('--count', type=int, default=50)
    parser.add_argument('--sentinel', action='store_true')
    parser.add_argument('--unfiltered', action='store_true')
    parser.add_argument('--channels', action='store_true', help='company channels, no filter')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='%(levelname)s %(name)s %(message)s')
    logging.getLogger('werkzeug').setLevel(logging.WARNING)
    (serve if args.mode == 'serve' else produce)(args)


if __name__ == '__main__':
    main()
