"""What scale-out buys on this machine: events delivered per second with 1, 2 and 4 server processes
sharing service events over Redis, for the same total number of websocket clients.

    .venv/bin/python bench/scaleout.py [--clients 400] [--events 200] [--processes 1,2,4]
                                       [--filters both|company|none] [--deadline 60]

Per configuration: a private ``redis-server`` on a free loopback port, K processes of
``tests/apps/multi_app.py serve`` (Socket.IO; company filter on ``created``, or none),
one Node process (in tests/js) holding all the socket.io-client clients spread evenly over the K processes (half
of the clients per company), then a writer-only process creating ``--events`` todos as fast as it
can. Measured: deliveries (events received by clients) divided by the time from the writer's first create
to the last delivery. Everything runs on 127.0.0.1; every wait is bounded; every process is killed
at the end. Writes ``bench/results/scaleout.md``; figures are ratios against the 1-process run of
the same invocation, because absolute numbers mean little across machines.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tests'))

from _scaleout_harness import (AppProcess, NodeProcess, RedisServer, produce,  # noqa: E402
                               wait_for)

RESULTS = os.path.join(HERE, 'results')

CLIENTS_JS = """
const { io } = require('socket.io-client');
const urls = JSON.parse(process.env.URLS);
const total = Number(process.env.CLIENTS);
const expected = Number(process.env.EXPECTED);
const deadline = Number(process.env.DEADLINE) * 1000;
const counts = new Array(total).fill(0);
const warm = new Array(total).fill(false);
let open = 0, received = 0, last = 0, warmed = false, reported = false;
const sockets = [];
const report = (why) => {
  if (reported) return;
  reported = true;
  out({done: why, received, last, min: Math.min(...counts), max: Math.max(...counts)});
  sockets.forEach((s) => s.disconnect());
  setTimeout(() => process.exit(0), 100);
};
setTimeout(() => open < total ? fail('only ' + open + ' of ' + total + ' clients connected')
                              : report('deadline'), deadline).unref();
for (let i = 0; i < total; i++) {
  const company = i % 2 ? 'globex' : 'acme';
  const url = urls[Math.floor(i / 2) % urls.length];
  const s = io(url, {transports: ['websocket'], auth: {user: company + '-' + i}, forceNew: true,
                     reconnection: false, timeout: 20000});
  s.on('connect_error', (e) => fail('client ' + i + ': ' + e.message));
  s.on('connect', () => { if (++open === total) out({open}); });
  s.on('todos status', () => {
    warm[i] = true;
    if (!warmed && warm.every(Boolean)) { warmed = true; out({warm: true}); }
  });
  s.on('todos created', () => {
    counts[i]++; received++; last = Date.now();
    if (received === expected) report('complete');
  });
  sockets.push(s);
}
"""


def run_one(redis: RedisServer, processes: int, clients: int, events: int, filtered: bool,
            deadline: float, tmp: str) -> Dict[str, Any]:
    channel = f'ff-bench-{uuid.uuid4().hex}'
    extra = [] if filtered else ['--unfiltered']
    apps: List[AppProcess] = []
    node = None
    try:
        apps = [AppProcess(redis.url, channel, os.path.join(tmp, f'app{i}.log'), name=f'app{i}',
                           extra=extra) for i in range(processes)]
        for app in apps:
            app.wait_ready(30)
        expected = events * (clients // 2 if filtered else clients)
        node = NodeProcess(CLIENTS_JS, {'URLS': json.dumps([a.url for a in apps]),
                                        'CLIENTS': str(clients), 'EXPECTED': str(expected),
                                        'DEADLINE': str(deadline)})
        assert node.next(60, f'{clients} clients to connect') == {'open': clients}
        rounds = iter(range(10**6))

        def status_round() -> Any:
            n = next(rounds)
            apps[n % len(apps)].post('/status', {'round': n})
            return node.poll()
        wait_for(status_round, 30, 'every client to be registered', interval=0.2)
        report = produce(redis.url, channel, 'bench', events, os.path.join(tmp, 'writer.log'),
                sentinel=False, timeout=deadline)
        result = node.next(deadline + 10, 'the deliveries')
        seconds = max(result['last'] / 1000.0 - report['started'], 1e-6)
        return {'processes': processes, 'clients': clients, 'events': events,
                'expected': expected, 'received': result['received'],
                'complete': result['done'] == 'complete', 'seconds': seconds,
                'rate': result['received'] / seconds, 'min': result['min'], 'max': result['max']}
    finally:
        for app in apps:
            app.stop()
        if node is not None:
            node.stop()


def table(rows: List[Dict[str, Any]], filtered: bool, args: argparse.Namespace) -> List[str]:
    base = rows[0]['rate'] if rows and rows[0]['processes'] == 1 else None
    what = ('company filter on `created`: each event goes to half of the clients' if filtered
            else 'no filter: every client gets every event (one broadcast per process)')
    lines = [f'## {"Filtered" if filtered else "Unfiltered"} ({what})', '',
             '| processes | clients/process | deliveries | of expected | seconds | deliveries/s '
             '(median) | range | vs 1 process |',
             '|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        ratio = f'{r["rate"] / base:.2f}x' if base else 'n/a'
        lines.append(f'| {r["processes"]} | {r["clients"] // r["processes"]} | {r["received"]} | '
                     f'{r["received"] / r["expected"]:.0%} | {r["seconds"]:.2f} | '
                     f'{r["rate"]:.0f} | {r["low"]:.0f}-{r["high"]:.0f} | {ratio} |')
    return lines + ['']


def write_markdown(tables: List[List[str]], args: argparse.Namespace, path: str) -> str:
    lines = [
        '# Scale-out: deliveries per second with several processes over Redis',
        '',
        f'Generated by `bench/scaleout.py` on {time.strftime("%Y-%m-%d %H:%M")}; '
        f'{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}. '
        f'{args.clients} socket.io-client clients in total (one Node process), spread evenly '
        f'over the server processes (Werkzeug threaded server, Flask-SocketIO threading mode); '
        f'a writer-only process creates {args.events} todos as fast as it can; seconds run from '
        f'its first create to the last delivery; median of {args.repeat} runs per row. Clients, '
        'writer, Redis and servers share this machine.',
        '',
    ]
    for t in tables:
        lines += t
    lines += ['Absolute numbers depend on the machine; compare the ratios within one table. '
              'Read them as what splitting the same clients over more processes buys here: '
              'filter calls and per-client writes of one process share one interpreter lock, so '
              'several processes can help even on few cores, until the CPUs (shared with the '
              'clients and Redis in this run) are saturated.', '']
    text = '\n'.join(lines)
    with open(path, 'w') as fh:
        fh.write(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--clients', type=int, default=400)
    parser.add_argument('--events', type=int, default=200)
    parser.add_argument('--processes', default='1,2,4')
    parser.add_argument('--filters', choices=['both', 'company', 'none'], default='both',
                        help='company filter on created, no filter, or one table each')
    parser.add_argument('--repeat', type=int, default=3,
                        help='runs per configuration; the table shows the median and the range')
    parser.add_argument('--deadline', type=float, default=60.0,
                        help='seconds one configuration may take to deliver everything')
    parser.add_argument('--out', default=os.path.join(RESULTS, 'scaleout.md'))
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(',')]
    if counts[0] != 1:
        parser.error('--processes must start with 1 (the baseline of the ratios)')
    with tempfile.TemporaryDirectory(prefix='ff-scaleout-') as tmp:
        run_all(args, counts, tmp)


def run_all(args: argparse.Namespace, counts: List[int], tmp: str) -> None:
    modes = {'both': [True, False], 'company': [True], 'none': [False]}[args.filters]
    redis = RedisServer()
    tables = []
    try:
        redis.start()
        for filtered in modes:
            rows = []
            for k in counts:
                print(f'scaleout: {"filtered" if filtered else "unfiltered"}, {k} process(es), '
                      f'{args.clients} clients ...', file=sys.stderr, flush=True)
                runs = []
                for _ in range(args.repeat):
                    run = run_one(redis, k, args.clients, args.events, filtered, args.deadline,
                                  tmp)
                    print(f'scaleout:   {run["received"]}/{run["expected"]} deliveries in '
                          f'{run["seconds"]:.2f} s = {run["rate"]:.0f}/s', file=sys.stderr,
                          flush=True)
                    runs.append(run)
                runs.sort(key=lambda r: r['rate'])
                row = dict(runs[len(runs) // 2], low=runs[0]['rate'], high=runs[-1]['rate'])
                rows.append(row)
            tables.append(table(rows, filtered, args))
    finally:
        redis.stop()
    print(write_markdown(tables, args, args.out))

if __name__ == '__main__':
    main()
