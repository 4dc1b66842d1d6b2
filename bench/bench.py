"""Runs the whole comparison (called by ``bench/run``): starts the three servers on free loopback
ports, drives them with ``node/loadgen.js``, writes ``results/results.json``, ``results/results.md``
and ``results/results.png``.

Servers: flask_feathers (``servers/ff_app.py``, Socket.IO and Primus), baseline A, a hand-written
Flask-SocketIO app (``servers/flask_socketio_app.py``), and baseline B, Feathers 5 on Node
(``node/feathers5_app.js``). Every process it starts is killed on exit, Ctrl-C included.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, 'node')
RESULTS = os.path.join(HERE, 'results')
PYTHON = sys.executable

SERVERS = {
    'ff': {'label': 'flask_feathers', 'cmd': [PYTHON, os.path.join(HERE, 'servers', 'ff_app.py')],
           'dialect': 'legacy'},
    'flask': {'label': 'hand-written Flask-SocketIO',
              'cmd': [PYTHON, os.path.join(HERE, 'servers', 'flask_socketio_app.py')],
              'dialect': 'legacy'},
    'f5': {'label': 'Feathers 5 (Node)', 'cmd': ['node', os.path.join(NODE_DIR, 'feathers5_app.js')],
           'dialect': 'modern'},
}

PLANS = {
    'quick': {'rounds': 1, 'rpc_seconds': 3, 'fanout_sizes': [100, 500], 'events': 10, 'burst': 10,
              'slow_events': 8, 'hold_steps': [250, 500, 1000], 'hold_seconds': 3,
              'primus_sizes': [500]},
    'full': {'rounds': 3, 'rpc_seconds': 5, 'fanout_sizes': [100, 500, 1000], 'events': 20,
             'burst': 20,
             'slow_events': 20, 'hold_steps': [250, 500, 1000, 1500, 2000], 'hold_seconds': 6,
             'primus_sizes': [100, 500, 1000]},
}

_procs: List[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its children only
        proc.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_all() -> None:
    while _procs:
        _kill(_procs.pop())


atexit.register(kill_all)
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, lambda signum, frame: sys.exit(128 + signum))


class Server:
    def __init__(self, key: str) -> None:
        self.key = key
        self.port = free_port()
        spec = SERVERS[key]
        self.url = f'http://127.0.0.1:{self.port}'
        self.dialect = spec['dialect']
        os.makedirs(RESULTS, exist_ok=True)
        self.logfile = open(os.path.join(RESULTS, f'server-{key}.log'), 'ab')
        self.proc = subprocess.Popen(spec['cmd'] + [str(self.port)], stdout=self.logfile,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=NODE_DIR if key == 'f5' else HERE)
        _procs.append(self.proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'{key} server exited; see results/server-{key}.log')
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f'{key} server did not listen within 30 s')

    def stop(self) -> None:
        _kill(self.proc)
        if self.proc in _procs:
            _procs.remove(self.proc)
        self.logfile.close()


def threads_of(pid: int) -> int:
    """The number of threads of process ``pid`` (0 when it is gone)."""
    try:
        with open(f'/proc/{pid}/status') as status:
            for line in status:
                if line.startswith('Threads:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def settle(server: Server, limit: float = 45.0) -> None:
    """Wait (at most ``limit`` s) until the server's thread count stops falling: a threading-mode
    Python server winds down about four threads per client that left, and while thousands do it
    accepts new connections very slowly (Werkzeug, engine.io and simple-websocket alike)."""
    deadline = time.monotonic() + limit
    last = threads_of(server.proc.pid)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = threads_of(server.proc.pid)
        if now >= last - 5:
            return
        last = now


def loadgen(server: Server, scenario: str, transport: str = 'socketio', timeout: float = 240,
            **opts: Any) -> Dict[str, Any]:
    """Run one load generator scenario; a run whose clients could not connect (the server still
    winding down the previous scenario's clients) is run once more after :func:`settle`."""
    result = _loadgen(server, scenario, transport, timeout, **opts)
    if 'clients connected' in str(result.get('error', '')) and server.proc.poll() is None:
        log(f'{server.key} {scenario}: {result["error"]}; waiting for the server to settle, '
            'then once more')
        settle(server)
        result = dict(_loadgen(server, scenario, transport, timeout, **opts),
                      retried=result['error'])
    return result


def _loadgen(server: Server, scenario: str, transport: str, timeout: float,
             **opts: Any) -> Dict[str, Any]:
    opts = dict(opts, url=server.url, dialect=server.dialect, transport=transport,
                deadline=int(timeout))
    cmd = ['node', os.path.join(NODE_DIR, 'loadgen.js'), scenario, json.dumps(opts)]
    try:
        out = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True, text=True,
                             timeout=timeout + 15)
    except subprocess.TimeoutExpired:
        return {'error': f'loadgen {scenario} timed out'}
    lines = [line for line in out.stdout.splitlines() if line.startswith('{')]
    if not lines:
        return {'error': f'loadgen {scenario} printed nothing (exit {out.returncode}): '
                         f'{out.stderr.strip()[-300:]}'}
    result = json.loads(lines[-1])
    if server.proc.poll() is not None:
        result['error'] = f'{server.key} server died during {scenario}'
    return result


def machine() -> Dict[str, str]:
    def run(cmd: List[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return '?'
    cpu = '?'
    with open('/proc/cpuinfo') as fh:
        for line in fh:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    mem = run(['free', '-h']).splitlines()
    with open('/proc/loadavg') as fh:
        load = ' '.join(fh.read().split()[:3])
    return {'nproc': run(['nproc']), 'cpu': cpu,
            'memory': mem[1].split()[1] if len(mem) > 1 else '?',
            'python': platform.python_version(), 'node': run(['node', '--version']),
            'load_at_start': load, 'date': time.strftime('%Y-%m-%d %H:%M')}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--quick', action='store_true', help='a smaller plan (about 3 minutes)')
    parser.add_argument('--only', default='', help='comma-separated parts: rpc,fanout,slow,hold,'
                                                   'primus (default: all)')
    args = parser.parse_args()
    plan_name = 'quick' if args.quick else 'full'
    plan = PLANS[plan_name]
    parts = set(filter(None, args.only.split(','))) or {'rpc', 'fanout', 'slow', 'hold', 'primus'}
    results: Dict[str, Any] = {'plan': plan_name, 'machine': machine(), 'runs': []}
    started = time.monotonic()

    def record(server: str, transport: str, scenario: str, result: Dict[str, Any],
               **extra: Any) -> None:
        row = dict(server=server, transport=transport, scenario=scenario, **extra, result=result)
        results['runs'].append(row)
        brief = {k: result.get(k) for k in ('throughput', 'deliveries_per_s', 'extra_ms', 'held',
                                            'error') if k in result}
        log(f'{server}/{transport} {scenario} {extra}: {brief}')

    # Phase 1: round trips and fan-out. RPC: the three servers side by side (idle when not
    # driven); fan-out: a fresh server process for each measurement (see fresh_run). Rounds
    # interleave the servers (A B C A B C ...): the machine is shared, and load from elsewhere
    # comes and goes over minutes. The report takes the median round.
    def fresh_servers(keys=tuple(SERVERS)) -> Dict[str, Server]:
        return {key: Server(key) for key in keys}

    def stop(servers: Dict[str, Server]) -> None:
        for server in servers.values():
            server.stop()

    if 'rpc' in parts:
        servers = fresh_servers()
        try:
            for _ in range(plan['rounds']):
                for key, server in servers.items():
                    record(key, 'socketio', 'rpc', loadgen(
                        server, 'rpc', clients=50, inflight=4, seconds=plan['rpc_seconds']))
        finally:
            stop(servers)
    def fresh_run(key: str, transport: str, scenario: str, **opts: Any) -> None:
        # Its own server process, stopped right after: a threading-mode server winds down about
        # four threads per client that left for up to a ping interval (25 s), and that took CPU
        # from whatever was measured next, on any server of the machine (see README.md).
        server = Server(key)
        try:
            record(key, transport, scenario, loadgen(server, scenario, transport, **opts),
                   **{k: opts[k] for k in ('clients', 'service') if k in opts})
        finally:
            server.stop()

    if 'fanout' in parts:
        for n in plan['fanout_sizes']:
            for _, service in [(r, s) for r in range(plan['rounds'])
                               # ptodos: the company check as a channel filter (flask_feathers
                               # only; the baselines' ctodos already is their channel filter)
                               # ktodos: a channel per company (flask_feathers and Feathers 5)
                               for s in ('todos', 'ctodos', 'ptodos', 'ktodos')]:
                for key in SERVERS:
                    if service == 'ptodos' and key != 'ff':
                        continue
                    if service == 'ktodos' and key == 'flask':
                        continue
                    fresh_run(key, 'socketio', 'fanout', clients=n, service=service,
                              events=plan['events'], burst=plan['burst'])
    if 'slow' in parts:
        for transport in ('socketio', 'primus'):
            fresh_run('ff', transport, 'slow', clients=100, events=plan['slow_events'])
    if 'primus' in parts:
        fresh_run('ff', 'primus', 'rpc', clients=50, inflight=4, seconds=plan['rpc_seconds'])
        for n in plan['primus_sizes']:
            for service in ('todos', 'ctodos'):
                fresh_run('ff', 'primus', 'fanout', clients=n, service=service,
                          events=plan['events'], burst=plan['burst'])

    # Phase 2: connections held and memory per connection, each on a fresh server process.
    if 'hold' in parts:
        runs = [(key, 'socketio') for key in SERVERS]
        if 'primus' in parts:
            runs.append(('ff', 'primus'))
        for key, transport in runs:
            server = Server(key)
            try:
                time.sleep(1)
                record(key, transport, 'hold', loadgen(
                    server, 'hold', transport, timeout=400, steps=plan['hold_steps'],
                    hold=plan['hold_seconds'], pid=server.proc.pid))
            finally:
                server.stop()

    results['seconds'] = round(time.monotonic() - started)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'results.json'), 'w') as fh:
        json.dump(results, fh, indent=1)
    from report import write_report  # beside this file
    write_report(results, RESULTS)
    log(f'done in {results["seconds"]} s: bench/results/results.md, results.png')


if __name__ == '__main__':
    sys.path.insert(0, HERE)
    main()
