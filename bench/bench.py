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
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

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

# The rest scenario's servers: gunicorn with one gthread worker (the Python ones), Node (Koa).
# ``{port}`` is replaced by the server's port.
REST_THREADS = 4
REST_CONNECTIONS = 16


def _gunicorn(variant: str) -> List[str]:
    return [os.path.join(os.path.dirname(PYTHON), 'gunicorn'), '--workers', '1',
            '--worker-class', 'gthread', '--threads', str(REST_THREADS), '--bind',
            '127.0.0.1:{port}', '--chdir', os.path.join(HERE, 'servers'), '--log-level',
            'warning', f'rest_app:create_app("{variant}")']


#: measurement -> the server (as the report names it), its command (None: it is served by
#: ``process``), the URL path and how many hooks the call runs through
REST_SERVERS = {
    'flaskview': {'server': 'flaskview', 'cmd': _gunicorn('flask'), 'path': '/todos', 'hooks': 0},
    'ff': {'server': 'ff', 'cmd': _gunicorn('ff'), 'path': '/todos', 'hooks': 0},
    'ff_hooks': {'server': 'ff', 'cmd': _gunicorn('ff_hooks'), 'path': '/todos', 'hooks': 3},
    'f5': {'server': 'f5', 'cmd': ['node', os.path.join(NODE_DIR, 'feathers5_rest.js'), '{port}'],
           'path': '/todos', 'hooks': 0},
    # the same Feathers 5 process, its service with the three hooks
    'f5_hooks': {'server': 'f5', 'cmd': None, 'process': 'f5', 'path': '/htodos', 'hooks': 3},
}

PLANS = {
    'quick': {'rounds': 1, 'rpc_seconds': 3, 'fanout_sizes': [100, 500], 'events': 10, 'burst': 10,
              'slow_events': 8, 'hold_steps': [250, 500, 1000], 'hold_seconds': 3,
              'primus_sizes': [500],
              'storm_sizes': [2000], 'hold10k_sizes': [2000], 'sustained_sizes': [500],
              'sustained_transports': ['socketio'], 'rest_rounds': 5, 'rest_seconds': 2,
              'rest_warmup': 3},
    'full': {'rounds': 3, 'rpc_seconds': 5, 'fanout_sizes': [100, 500, 1000], 'events': 20,
             'burst': 20,
             'slow_events': 20, 'hold_steps': [250, 500, 1000, 1500, 2000], 'hold_seconds': 6,
             'primus_sizes': [100, 500, 1000],
             'storm_sizes': [2000, 10000], 'hold10k_sizes': [10000],
             'sustained_sizes': [500, 2000], 'sustained_transports': ['socketio', 'primus'],
             'rest_rounds': 15, 'rest_seconds': 2, 'rest_warmup': 3},
}
PARTS = ('rpc', 'fanout', 'slow', 'hold', 'primus', 'storm', 'hold10k', 'sustained', 'rest')

# The storm, hold10k and sustained scenarios pin the server to one core and the load generator
# (and its worker processes) to the other, so the two do not take CPU from each other.
SERVER_CPU, CLIENT_CPU = '0', '1'
STORM_ROUNDS = 3

_procs: List[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run_group(cmd: List[str], timeout: float, cwd: Optional[str] = None
               ) -> Tuple[subprocess.Popen, Optional[Tuple[str, str]]]:
    """Run ``cmd`` in a process group of its own: the process and its ``(stdout, stderr)``, or
    None for them when it outlived ``timeout`` seconds (then the group is killed)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _procs.append(proc)
    try:
        return proc, proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        return proc, None


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


def pinned(cmd: List[str], cpu: Optional[str]) -> List[str]:
    """``cmd`` run on CPU ``cpu`` only (taskset execs it: the pid stays the command's)."""
    if cpu is None or not shutil.which('taskset') or (os.cpu_count() or 1) < 2:
        return cmd
    return ['taskset', '-c', cpu] + cmd


class Server:
    def __init__(self, key: str, cpu: Optional[str] = None, note: str = '',
                 cmd: Optional[List[str]] = None, log_name: Optional[str] = None) -> None:
        self.key = key
        self.port = free_port()
        spec = SERVERS.get(key, {})
        self.url = f'http://127.0.0.1:{self.port}'
        self.dialect = spec.get('dialect')
        if cmd is None:
            cmd = spec['cmd'] + [str(self.port)]
        else:  # '{port}' in an argument is the server's port
            cmd = [arg.replace('{port}', str(self.port)) for arg in cmd]
        os.makedirs(RESULTS, exist_ok=True)
        self.logfile = open(os.path.join(RESULTS, f'server-{log_name or key}.log'), 'ab')
        # which scenario the following lines of the log belong to
        self.logfile.write(f'\n==== {time.strftime("%H:%M:%S")} {note or key} port {self.port}'
                           f'{" cpu " + cpu if cpu else ""} ====\n'.encode())
        self.logfile.flush()
        self.proc = subprocess.Popen(pinned(cmd, cpu),
                                     stdout=self.logfile, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     cwd=NODE_DIR if cmd[0] == 'node' else HERE)
        _procs.append(self.proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f'{key} server exited at start; see results/server-{key}.log')
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f'{key} server did not listen within 30 s')

    def stop(self) -> None:
        _kill(self.proc)
        if self.proc in _procs:
            _procs.remove(self.proc)
        if not self.logfile.closed:
            self.logfile.close()


def loadgen(server: Server, scenario: str, transport: str = 'socketio', timeout: float = 240,
            cpu: Optional[str] = None, **opts: Any) -> Dict[str, Any]:
    """Run one load generator scenario (its own process group, killed whole on timeout). Whatever
    happens, returns a dict: a failure is ``{'error': ...}``, never an exception. A run whose
    clients could not connect is reported as such, not run again."""
    opts = dict(opts, url=server.url, dialect=server.dialect, transport=transport,
                deadline=int(timeout))
    cmd = pinned(['node', os.path.join(NODE_DIR, 'loadgen.js'), scenario, json.dumps(opts)], cpu)
    proc, finished = _run_group(cmd, timeout + 15, cwd=NODE_DIR)
    try:
        if finished is None:
            return {'error': f'loadgen {scenario} timed out after {timeout + 15:.0f} s'}
        stdout, stderr = finished
    finally:
        try:  # the whole group: the swarm's worker processes too, if any is left
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        if proc in _procs:
            _procs.remove(proc)
    progress = [line for line in stderr.splitlines() if line.strip()]
    for line in progress[-40:]:
        if scenario in ('storm', 'hold10k', 'sustained'):
            log(f'  loadgen: {line[:300]}')
    lines = [line for line in stdout.splitlines() if line.startswith('{')]
    if not lines:
        return {'error': f'loadgen {scenario} printed nothing (exit {proc.returncode}): '
                         f'{stderr.strip()[-300:]}'}
    try:
        result = json.loads(lines[-1])
    except ValueError:
        return {'error': f'loadgen {scenario} printed bad JSON: {lines[-1][:200]}'}
    if server.proc.poll() is not None:
        result['error'] = (f'{server.key} server died during {scenario} (exit '
                           f'{server.proc.returncode}); ' + str(result.get('error') or ''))
    return result


# -- the rest scenario: HTTP load from wrk ---------------------------------------------------------
_WRK_UNITS = {'us': 1e-3, 'ms': 1.0, 's': 1e3, 'm': 60e3}


def _wrk_ms(text: str) -> Optional[float]:
    match = re.fullmatch(r'([\d.]+)(us|ms|s|m)', text.strip())
    return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else None


def _group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of process group ``pgid`` (a
    server and its workers; gunicorn's worker is a child of its master)."""
    total = 0
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as fh:
                fields = fh.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime stime
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf('SC_CLK_TCK')


def wrk(url: str, seconds: float, connections: int, server: Optional['Server'] = None,
        cpu: Optional[str] = None) -> Dict[str, Any]:
    """One ``wrk`` run (one thread, ``connections`` keep-alive connections) against ``url``:
    requests/s, latency p50/p90/p99 (ms), errors, and the CPU share the load generator and the
    server used (of one core). Never raises: a failure is ``{'error': ...}``."""
    if not shutil.which('wrk'):
        return {'error': 'wrk is not installed (apt-get install wrk)'}
    cmd = pinned(['wrk', '-t1', f'-c{connections}', f'-d{seconds:g}s', '--latency',
                  '--timeout', '5s', url], cpu)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = _group_cpu_s(server.proc.pid) if server is not None else 0.0
    started = time.monotonic()
    proc, finished = _run_group(cmd, seconds + 30)
    try:
        if finished is None:
            return {'error': f'wrk did not finish within {seconds + 30:.0f} s'}
        stdout, stderr = finished
    finally:
        if proc in _procs:
            _procs.remove(proc)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out: Dict[str, Any] = {'seconds': seconds, 'connections': connections}
    match = re.search(r'Requests/sec:\s+([\d.]+)', stdout)
    if proc.returncode != 0 or not match:
        return dict(out, error=f'wrk failed (exit {proc.returncode}): '
                              f'{(stderr or stdout).strip()[-300:]}')
    out['rps'] = float(match.group(1))
    match = re.search(r'(\d+) requests in ([\d.]+\w+)', stdout)
    if match:
        out['requests'] = int(match.group(1))
        duration = _wrk_ms(match.group(2))
        out['duration_s'] = duration / 1000 if duration is not None else None
    latency = {}
    for pct, value in re.findall(r'^\s+(50|75|90|99)%\s+(\S+)$', stdout, re.M):
        latency[f'p{pct}'] = _wrk_ms(value)
    out['latency_ms'] = latency
    match = re.search(r'Non-2xx or 3xx responses:\s+(\d+)', stdout)
    out['non_2xx'] = int(match.group(1)) if match else 0
    match = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)',
                      stdout)
    out['socket_errors'] = sum(int(n) for n in match.groups()) if match else 0
    out['elapsed'] = round(elapsed, 3)
    out['loadgen_cpu'] = round((after.ru_utime - before.ru_utime + after.ru_stime
                                - before.ru_stime) / elapsed, 3)
    if server is not None:
        out['server_cpu_s'] = round(_group_cpu_s(server.proc.pid) - server_before, 3)
        out['server_cpu'] = round(out['server_cpu_s'] / elapsed, 3)
    if out['non_2xx'] or out['socket_errors']:
        out['error'] = (f'{out["non_2xx"]} non-2xx responses, {out["socket_errors"]} socket '
                        f'errors')
    return out


def check_rest(url: str, hooks: int) -> Dict[str, Any]:
    """One GET before the load: the server answers 200 with the 20 records (without ``secret``
    when its hooks remove it). Retries for up to 30 s while the server boots its worker."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read()
                status = response.status
            break
        except (OSError, urllib.error.URLError) as exc:
            if time.monotonic() > deadline:
                return {'error': f'GET {url}: {exc}'}
            time.sleep(0.3)
    try:
        records = json.loads(body)
    except ValueError:
        return {'error': f'GET {url}: not JSON: {body[:100]!r}'}
    if status != 200 or not isinstance(records, list) or len(records) != 20:
        return {'error': f'GET {url}: status {status}, not a list of 20 records'}
    secret = all('secret' in r for r in records)
    if secret != (hooks == 0):
        return {'error': f'GET {url}: the records {"have" if secret else "lack"} `secret`'}
    return {'body_bytes': len(body)}


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
    # the code measured: HEAD, and whether the library had uncommitted changes at the start
    commit = run(['git', '-C', os.path.dirname(HERE), 'rev-parse', '--short', 'HEAD'])
    dirty = run(['git', '-C', os.path.dirname(HERE), 'status', '--porcelain', '--',
                 'flask_feathers'])
    return {'nproc': run(['nproc']), 'cpu': cpu,
            'commit': commit + (' (flask_feathers/ with uncommitted changes)' if dirty else ''),
            'memory': mem[1].split()[1] if len(mem) > 1 else '?',
            'python': platform.python_version(), 'node': run(['node', '--version']),
            'load_at_start': load, 'date': time.strftime('%Y-%m-%d %H:%M')}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--quick', action='store_true', help='a smaller plan (about 20 minutes)')
    parser.add_argument('--only', default='', help='comma-separated parts: ' + ','.join(PARTS) +
                        ' (default: all)')
    args = parser.parse_args()
    plan_name = 'quick' if args.quick else 'full'
    plan = PLANS[plan_name]
    parts = set(filter(None, args.only.split(','))) or set(PARTS)
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f'unknown part(s) {",".join(sorted(unknown))}; parts: {",".join(PARTS)}')
    results: Dict[str, Any] = {'plan': plan_name, 'machine': machine(), 'runs': []}
    started = time.monotonic()

    def record(server: str, transport: str, scenario: str, result: Dict[str, Any],
               **extra: Any) -> None:
        row = dict(server=server, transport=transport, scenario=scenario, **extra, result=result)
        results['runs'].append(row)
        brief = {k: result.get(k) for k in ('throughput', 'deliveries_per_s', 'extra_ms', 'held',
                                            'rps', 'server_cpu', 'loadgen_cpu',
                                            'connected', 'per_conn_kb', 'missing',
                                            'last_ack_to_last_delivery_ms', 'error')
                 if k in result}
        if scenario == 'storm':
            brief['ms_100'] = [r.get('ms_100') for r in result.get('rounds') or []]
        log(f'{server}/{transport} {scenario} {extra}: {brief}')

    # Phase 1: round trips and fan-out. RPC: the three servers side by side (idle when not
    # driven); fan-out: a fresh server process for each measurement (see fresh_run). Rounds
    # interleave the servers (A B C A B C ...): the machine is shared, and load from elsewhere
    # comes and goes over minutes. The report takes the median round.
    def stop(servers: Dict[str, Server]) -> None:
        for server in servers.values():
            server.stop()

    if 'rpc' in parts:
        servers: Dict[str, Server] = {}
        for key in SERVERS:
            try:
                servers[key] = Server(key, note='rpc')
            except RuntimeError as exc:
                record(key, 'socketio', 'rpc', {'error': str(exc)})
        try:
            for _ in range(plan['rounds']):
                for key, server in servers.items():
                    record(key, 'socketio', 'rpc', loadgen(
                        server, 'rpc', clients=50, inflight=4, seconds=plan['rpc_seconds']))
        finally:
            stop(servers)
    def fresh_run(key: str, transport: str, scenario: str, pin: bool = False,
                  timeout: float = 240, **opts: Any) -> None:
        # Its own server process, stopped right after: a threading-mode server winds down about
        # four threads per client that left for up to a ping interval (25 s), and that took CPU
        # from whatever was measured next, on any server of the machine (see README.md).
        # pin: server on SERVER_CPU, load generator on CLIENT_CPU. A server that cannot start
        # is recorded as this measurement's error.
        ident = {k: opts[k] for k in ('clients', 'service') if k in opts}
        try:
            server = Server(key, cpu=SERVER_CPU if pin else None,
                            note=f'{scenario} {transport} {ident}')
        except RuntimeError as exc:
            record(key, transport, scenario, {'error': str(exc)}, **ident)
            return
        try:
            if 'pid' in opts:
                opts['pid'] = server.proc.pid
            record(key, transport, scenario,
                   loadgen(server, scenario, transport, timeout=timeout,
                           cpu=CLIENT_CPU if pin else None, **opts), **ident)
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
            try:
                server = Server(key, note=f'hold {transport}')
            except RuntimeError as exc:
                record(key, transport, 'hold', {'error': str(exc)})
                continue
            try:
                time.sleep(1)
                record(key, transport, 'hold', loadgen(
                    server, 'hold', transport, timeout=400, steps=plan['hold_steps'],
                    hold=plan['hold_seconds'], pid=server.proc.pid))
            finally:
                server.stop()

    # Phase 3: many clients and sustained load; server and load generator on separate cores.
    # flask_feathers gets half socket.io-client and half Primus clients; Feathers 5 and the
    # hand-written app have no Primus endpoint, so all their clients are socket.io-client.
    def mix_of(key: str) -> List[str]:
        return ['socketio', 'primus'] if key == 'ff' else ['socketio']

    if 'storm' in parts:
        for n in plan['storm_sizes']:
            for key in ('ff', 'f5', 'flask'):
                fresh_run(key, 'mixed' if key == 'ff' else 'socketio', 'storm', pin=True,
                          timeout=180 + STORM_ROUNDS * 100, clients=n, rounds=STORM_ROUNDS,
                          bound_s=60, gap_ms=1000, mix=mix_of(key), pid=0)
            # context: flask_feathers with the clients Feathers 5 gets (socket.io-client only)
            fresh_run('ff', 'socketio', 'storm', pin=True, timeout=180 + STORM_ROUNDS * 100,
                      clients=n, rounds=STORM_ROUNDS, bound_s=60, gap_ms=1000,
                      mix=['socketio'], pid=0)
    if 'hold10k' in parts:
        for n in plan['hold10k_sizes']:
            for key in ('ff', 'f5', 'flask'):
                fresh_run(key, 'mixed' if key == 'ff' else 'socketio', 'hold10k', pin=True,
                          timeout=300, clients=n, mix=mix_of(key), pid=0)
    if 'sustained' in parts:
        for n in plan['sustained_sizes']:
            # each flask_feathers run next to the baseline it is compared with (the machine is
            # shared: load from elsewhere comes and goes over minutes)
            runs = [('ff', 'socketio', 'ctodos'), ('f5', 'socketio', 'ctodos'),
                    ('ff', 'socketio', 'ptodos'), ('flask', 'socketio', 'ctodos'),
                    ('ff', 'socketio', 'ktodos'), ('f5', 'socketio', 'ktodos'),
                    ('ff', 'socketio', 'todos'), ('f5', 'socketio', 'todos')]
            if 'primus' in plan['sustained_transports']:
                runs += [('ff', 'primus', svc) for svc in ('ctodos', 'ptodos', 'ktodos', 'todos')]
            for key, transport, service in runs:
                fresh_run(key, transport, 'sustained', pin=True, timeout=600, clients=n,
                          service=service, creates=2000, inflight=32, pid=0)

    # Phase 4: REST find of 20 records; each server on CPU 0 (gunicorn: one gthread worker), wrk
    # on CPU 1. The servers are started together (idle when not driven), each warmed up (reported),
    # then driven in slices, in turn (A B C D E A B C D E ...): the machine is shared and load from
    # elsewhere comes and goes, so every server gets its share of the quiet and the busy moments.
    # The report sums each server's slices (requests / seconds).
    if 'rest' in parts:
        procs: Dict[str, Server] = {}
        for key, spec in REST_SERVERS.items():
            if spec['cmd'] is None:
                continue
            try:
                procs[key] = Server(key, cpu=SERVER_CPU, note='rest', cmd=spec['cmd'],
                                    log_name=f'rest-{key}')
            except RuntimeError as exc:
                log(f'rest: {key} did not start: {exc}')
        try:
            ready: Dict[str, Dict[str, Any]] = {}
            for key, spec in REST_SERVERS.items():
                server = procs.get(spec.get('process', key))
                if server is None:
                    ready[key] = {'error': f'{key} server did not start'}
                    continue
                ready[key] = check_rest(server.url + spec['path'], spec['hooks'])
                if not ready[key].get('error'):
                    warm = wrk(server.url + spec['path'], plan['rest_warmup'], REST_CONNECTIONS,
                               server, CLIENT_CPU)
                    ready[key]['warmup'] = {k: warm.get(k) for k in
                                            ('seconds', 'rps', 'latency_ms', 'error')}
            for rnd in range(plan['rest_rounds']):
                for key, spec in REST_SERVERS.items():
                    name, hooks = spec['server'], spec['hooks']
                    server = procs.get(spec.get('process', key))
                    if server is None or ready[key].get('error'):
                        record(name, 'rest', 'rest', dict(ready[key]), hooks=hooks, round=rnd)
                        continue
                    result = wrk(server.url + spec['path'], plan['rest_seconds'],
                                 REST_CONNECTIONS, server, CLIENT_CPU)
                    result.update(ready[key], threads=REST_THREADS)
                    if server.proc.poll() is not None:
                        result['error'] = f'{name} server died (exit {server.proc.returncode})'
                    record(name, 'rest', 'rest', result, hooks=hooks, round=rnd)
        finally:
            stop(procs)

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
