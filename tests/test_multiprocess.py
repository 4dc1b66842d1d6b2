"""Several real server processes sharing service events over Redis (issue 7, docs/protocol.rst, "Several processes").

Processes A and B serve Socket.IO and Primus clients of two companies; A, B and a writer-only
process create todos; every client must get exactly its company's todos, once, in each producer's
order. Then Redis goes away and comes back in the middle of a test.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from typing import Any, Dict, List, Optional

import pytest

from _scaleout_harness import AppProcess, NodeProcess, RedisServer, SioClient, items, produce
from support.waiting import wait_for

SHARED_REDIS = 'redis://127.0.0.1:6379/0'
COUNT = 50
DOWN_MARK = 'is unreachable'
BACK_MARK = 'is back;'



class Cluster:
    """Starts processes and clients; the fixture stops every one of them, also on failure."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.channel = f'ff-test-{uuid.uuid4().hex}'
        self._started: List[Any] = []

    def _keep(self, thing: Any) -> Any:
        self._started.append(thing)
        return thing

    def redis(self) -> RedisServer:
        server = RedisServer()
        self._keep(server)
        return server.start()

    def app(self, name: str, queue: str = SHARED_REDIS,
            extra: Optional[List[str]] = None) -> AppProcess:
        return self._keep(AppProcess(queue, self.channel, str(self.tmp_path / f'{name}.log'),
                                     name=name, extra=extra))

    def writer(self, name: str, queue: str = SHARED_REDIS, count: int = COUNT) -> None:
        produce(queue, self.channel, name, count, str(self.tmp_path / f'{name}.log'))

    def node(self, script: str, env: Dict[str, str]) -> NodeProcess:
        return self._keep(NodeProcess(script, env))

    def sio(self, app: AppProcess, user: str) -> SioClient:
        return self._keep(SioClient(app.url, user))

    def stop(self) -> None:
        # Servers first: a python-socketio client whose server is gone closes at once, while a
        # clean client disconnect waits about 3 s for its read loop.
        servers = [t for t in self._started if isinstance(t, AppProcess)]
        others = [t for t in reversed(self._started) if not isinstance(t, AppProcess)]
        for thing in servers + others:
            try:
                thing.stop() if hasattr(thing, 'stop') else thing.close()
            except Exception:  # keep stopping the rest
                pass


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


def start_apps(cluster: Cluster, *names: str, queue: str = SHARED_REDIS,
               extra: Optional[List[str]] = None) -> List[AppProcess]:
    apps = [cluster.app(name, queue, extra) for name in names]
    return [app.wait_ready() for app in apps]


def check_client(user: str, got: List[Dict[str, Any]], producers: List[str]) -> None:
    """``got`` is exactly the user's company's todos of every producer, once, in order."""
    company = user.split('-')[0]
    wrong = [e for e in got if e.get('company') != company]
    assert not wrong, f'{user} got todos of another company: {wrong[:3]}'
    keys = [(e['producer'], e.get('n', 'end')) for e in got]
    dupes = [k for k, c in Counter(keys).items() if c > 1]
    assert not dupes, f'{user} got duplicates: {dupes[:5]}'
    for producer in producers:
        ns = [e.get('n', 'end') for e in got if e['producer'] == producer]
        expected = [n for n in range(COUNT) if ('acme', 'globex')[n % 2] == company] + ['end']
        assert ns == expected, f'{user}: todos from {producer} missing or out of order: {ns}'


MIXED_CLIENTS = """
const io = require('socket.io-client');
const Primus = require('primus');
const Socket = Primus.createSocket({transformer: 'websockets',
                                    plugin: {emitter: require('primus-emitter')}});
const specs = JSON.parse(process.env.CLIENTS);
const producers = JSON.parse(process.env.PRODUCERS);
const results = specs.map(() => []);
const warm = specs.map(() => false);
const ended = specs.map(() => new Set());
let open = 0, warmed = false, finished = false;
const sockets = [];
setTimeout(() => fail('timed out; open ' + open + ', counts ' +
                      JSON.stringify(results.map((r) => r.length))), 60000);
const finish = () => {
  if (finished || !ended.every((s) => s.size === producers.length)) return;
  finished = true;
  out({results});
  sockets.forEach((s) => s.kind === 'socketio' ? s.s.disconnect() : s.s.end());
  setTimeout(() => process.exit(0), 50);
};
specs.forEach((spec, i) => {
  const onStatus = () => {
    warm[i] = true;
    if (!warmed && warm.every(Boolean)) { warmed = true; out({warm: true}); }
  };
  const onCreated = (data) => {
    results[i].push(data);
    if (data.sentinel) { ended[i].add(data.producer); finish(); }
  };
  if (spec.kind === 'socketio') {
    const s = io(spec.url, {transports: ['websocket'], auth: {user: spec.user}, forceNew: true,
                            reconnection: false});
    s.on('connect_error', (e) => fail(spec.user + ': ' + e.message));
    s.on('todos status', onStatus);
    s.on('todos created', onCreated);
    s.on('connect', () => { if (++open === specs.length) out({open}); });
    sockets.push({kind: 'socketio', s});
  } else {
    const s = new Socket(spec.url + '?user=' + spec.user, {reconnect: {retries: 0}});
    s.on('error', (e) => fail(spec.user + ': ' + e.message));
    s.on('todos status', onStatus);
    s.on('todos created', onCreated);
    s.on('open', () => { if (++open === specs.length) out({open}); });
    sockets.push({kind: 'primus', s});
  }
});
"""


def warm_up(apps: List[AppProcess], node: NodeProcess) -> None:
    """Emit a custom service event from every app until each client has seen one.

    A client counts as connected once the server registered it, which its ``open`` event does not
    prove for Primus; the first 'todos status' it receives does (and shows the channel works).
    """
    rounds = iter(range(10**6))

    def status_round() -> Any:
        n = next(rounds)
        apps[n % len(apps)].post('/status', {'round': n})
        return node.poll()
    got = wait_for(status_round, 20, 'every client to receive a "todos status" event',
                   interval=0.1)
    assert got == {'warm': True}


@pytest.mark.parametrize('routing', ['filter', 'channels'])
def test_mixed_clients_on_two_processes_get_their_filtered_events_once_in_order(cluster, routing):
    a, b = start_apps(cluster, 'A', 'B', extra=['--channels'] if routing == 'channels' else None)
    specs = []
    for app, users in ((a, ['acme-1', 'globex-1', 'acme-2', 'globex-2']),
                       (b, ['acme-3', 'globex-3', 'acme-4', 'globex-4'])):
        for i, user in enumerate(users):
            kind = 'socketio' if i % 2 == 0 else 'primus'
            url = app.url + ('/primus' if kind == 'primus' else '')
            specs.append({'kind': kind, 'url': url, 'user': user})
    producers = ['A', 'B', 'W']
    node = cluster.node(MIXED_CLIENTS, {'CLIENTS': json.dumps(specs),
                                        'PRODUCERS': json.dumps(producers)})
    assert node.next(20, 'all clients connected') == {'open': len(specs)}
    warm_up([a, b], node)

    errors: List[BaseException] = []

    def run(fn, *args):
        try:
            fn(*args)
        except BaseException as exc:  # reported below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(a.create, items('A', COUNT))),
               threading.Thread(target=run, args=(b.create, items('B', COUNT))),
               threading.Thread(target=run, args=(cluster.writer, 'W'))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    results = node.next(45, 'every client to receive the last todo of every producer')['results']

    by_company: Dict[str, List[Any]] = {}
    for spec, got in zip(specs, results):
        check_client(spec['user'], got, producers)
        sequence = [(e['producer'], e.get('n')) for e in got]
        by_company.setdefault(spec['user'].split('-')[0], []).append((spec, sequence))
    # Every event goes through Redis, the producer's own process included: all clients of a
    # company see the three producers' events interleaved the same way.
    for company, seen in by_company.items():
        first_spec, first = seen[0]
        for spec, sequence in seen[1:]:
            assert sequence == first, (f'{spec["user"]} ({spec["kind"]}) saw a different order '
                                       f'than {first_spec["user"]}')
    assert not any(DOWN_MARK in app.log() for app in (a, b))


def test_custom_socketio_emit_reaches_clients_of_other_processes(cluster):
    a, b = start_apps(cluster, 'A', 'B')
    on_b = cluster.sio(b, 'globex-1')
    n = 0

    def emit_on_a() -> bool:
        nonlocal n
        n += 1
        a.post('/io-emit', {'n': n})
        return bool(on_b.events('news'))
    # Flask-SocketIO subscribes to its own channel in the background: retry until it did.
    wait_for(emit_on_a, 20, "api.io.emit('news') on A to reach a client on B", interval=0.1)
    got = on_b.events('news')
    assert len({e['n'] for e in got}) == len(got), f'duplicate news on B: {got}'


def test_primus_send_reaches_sparks_of_other_processes(cluster):
    import simple_websocket
    a, b = start_apps(cluster, 'A', 'B')
    ws = simple_websocket.Client.connect(b.url.replace('http', 'ws') + '/primus?user=globex-1')
    got: List[Any] = []
    try:
        n = 0

        def send_on_a() -> bool:
            nonlocal n
            n += 1
            a.post('/primus-send', {'n': n})
            while True:
                frame = ws.receive(timeout=0.05)
                if frame is None:
                    return bool(got)
                packet = json.loads(frame)
                if isinstance(packet, dict) and packet.get('data', [None])[0] == 'news':
                    got.append(packet['data'][1])
        wait_for(send_on_a, 20, "api.primus.send('news') on A to reach a spark on B", interval=0.1)
        assert len({g['n'] for g in got}) == len(got), f'duplicate news on B: {got}'
    finally:
        try:
            ws.close()
        except simple_websocket.ConnectionClosed:
            ws.sock.close()


def test_redis_outage_local_delivery_continues_and_sharing_resumes(cluster):
    redis = cluster.redis()
    a, b = start_apps(cluster, 'A', 'B', queue=redis.url)
    on_a = cluster.sio(a, 'acme-1')
    on_b = cluster.sio(b, 'acme-2')

    def batch(producer: str, phase: str, count: int) -> List[Dict[str, Any]]:
        return [{'producer': producer, 'phase': phase, 'n': n, 'company': 'acme'}
                for n in range(count)]

    def keys(client: SioClient) -> List[tuple]:
        return [(e['producer'], e['phase'], e['n']) for e in client.events()]

    def has(client: SioClient, producer: str, phase: str, count: int):
        want = {(producer, phase, n) for n in range(count)}
        return lambda got: want <= {(e['producer'], e['phase'], e['n']) for e in got}

    # 1. Redis up: both processes' clients get both processes' events.
    a.create(batch('A', 'before', 10))
    b.create(batch('B', 'before', 10))
    for client in (on_a, on_b):
        client.wait(has(client, 'A', 'before', 10), 15, "A's events before the outage")
        client.wait(has(client, 'B', 'before', 10), 15, "B's events before the outage")

    # 2. Redis goes away: calls keep working, each process's clients get that process's events.
    redis.stop()
    a.create(batch('A', 'during', 20))
    b.create(batch('B', 'during', 20))
    on_a.wait(has(on_a, 'A', 'during', 20), 15, "A's own events while Redis is down")
    on_b.wait(has(on_b, 'B', 'during', 20), 15, "B's own events while Redis is down")
    for app in (a, b):
        wait_for(lambda: DOWN_MARK in app.log(), 15, f'{app.name} to log the outage')

    # 3. Redis is back on the same port: sharing resumes by itself.
    redis.start()
    probes = {'n': 0}

    def probe_from_a() -> bool:
        a.create(batch('A', f'probe{probes["n"]}', 1))
        probes['n'] += 1
        return any(e['phase'].startswith('probe') for e in on_b.events())
    wait_for(probe_from_a, 20, "an event from A to reach B's client after Redis came back",
             interval=0.1)
    wait_for(lambda: BACK_MARK in b.log(), 15, 'B to log that Redis is back')
    a.create(batch('A', 'after', 10))
    b.create(batch('B', 'after', 10))
    for client in (on_a, on_b):
        client.wait(has(client, 'A', 'after', 10), 15, "A's events after the outage")
        client.wait(has(client, 'B', 'after', 10), 15, "B's events after the outage")

    got_a, got_b = keys(on_a), keys(on_b)
    for name, got in (('A', got_a), ('B', got_b)):
        dupes = [k for k, c in Counter(got).items() if c > 1]
        assert not dupes, f"client on {name} got duplicates: {dupes}"
    # Each producer's events arrive in order at every client.
    for got in (got_a, got_b):
        for producer in ('A', 'B'):
            mine = [k for k in got if k[0] == producer]
            assert mine == sorted(mine, key=lambda k: ({'before': 0, 'during': 1}.get(
                k[1], 3 if k[1] == 'after' else 2), int(k[1][5:] or 0) if k[1].startswith('probe')
                else 0, k[2])), f'{producer} out of order: {mine}'
    # What was produced during the outage stayed in its process (pub/sub keeps nothing).
    assert not [k for k in got_a if k[:2] == ('B', 'during')]
    assert not [k for k in got_b if k[:2] == ('A', 'during')]
    # A's client got every probe exactly once, whether it went through Redis or not.
    assert sorted(k[1] for k in got_a if k[1].startswith('probe')) == \
        sorted(f'probe{i}' for i in range(probes['n']))
    for app in (a, b):
        log = app.log()
        assert log.count(DOWN_MARK) == 1, f'{app.name} logged the outage ' \
                                          f'{log.count(DOWN_MARK)} times:\n{log}'
        assert log.count(BACK_MARK) == 1, f'{app.name} logged the recovery ' \
                                          f'{log.count(BACK_MARK)} times:\n{log}'
