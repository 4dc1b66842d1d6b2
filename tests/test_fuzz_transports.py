"""Fuzzing every transport with malformed input, with well-behaved clients watching.

The server runs in a subprocess (``python tests/apps/fuzz_app.py PORT``) so that its survival
and its resident memory can be measured from outside. Raw WebSocket frames are built by
:class:`support.ws.RawWS` (the tests' one hand-written client, so that invalid UTF-8, fragments,
bad opcodes and lying length headers can be sent at all); hypothesis drives the argument fuzzing,
a seeded ``random.Random`` drives the frame-level fuzzing. Figures of the last run are printed (``-s``) and
quoted in docs_reliability.rst.
"""
from __future__ import annotations

import json
import os
import queue
import random
import time
from typing import Any, Dict, List, Optional

import pytest

from support.clients import TOKEN, RawPrimus, RawSocketIO
from support.fuzz import ServerProcess, peak_rss_kb, rss_kb
from support.ws import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, Closed


# -- the tests ------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from flask_feathers import errors as ff_errors  # noqa: E402
from flask_feathers.providers import _calls  # noqa: E402

#: Figures of this run, printed at the end of the module (quoted in docs_reliability.rst).
FIGURES: Dict[str, Any] = {'inputs': 0}

FUZZ_SETTINGS = settings(max_examples=int(os.environ.get('FUZZ_EXAMPLES', '600')), deadline=None,
                         database=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.function_scoped_fixture])


@pytest.fixture(scope='module')
def fuzz_server():
    server = ServerProcess()
    yield server
    server.stop()


@pytest.fixture(scope='module')
def sio(fuzz_server):
    client = RawSocketIO(fuzz_server.port, {'token': TOKEN})
    assert client.connected, client.connect_answer
    yield client
    client.close()


@pytest.fixture(scope='module')
def prim(fuzz_server):
    client = RawPrimus(fuzz_server.port)
    assert client.ws.accepted
    yield client
    client.close()


_ids = iter(range(1, 10 ** 9))


def is_error(value: Any) -> bool:
    return isinstance(value, dict) and value.get('name') in ff_errors.BY_NAME \
        and isinstance(value.get('code'), int) and isinstance(value.get('message'), str)


def assert_ack_shape(ack: Any) -> None:
    assert isinstance(ack, list) and ack, ack
    if ack[0] is None:
        assert len(ack) == 2, ack
    else:
        assert len(ack) == 1 and is_error(ack[0]), ack


MALFORMED_SIO = [
    '["todos::create",' + '[' * 50000 + ']' * 50000 + ']',  # too deep for the parser
    '["todos::create",{bad json',
    '["todos::create",{"a":1},]',
    '{"a":1}',
    '[]',
    '["todos::create",NaN',
    '"\\ud800"',
]


def test_malformed_socketio_packets_with_an_ack_id_get_one_bad_request(fuzz_server, sio):
    for body in MALFORMED_SIO:
        ack_id = next(_ids)
        sio.send(f'2{ack_id}{body}')
        ack = sio.ack(ack_id, timeout=5)
        assert_ack_shape(ack)
        assert ack[0]['name'] in ('BadRequest', 'NotFound'), (body[:40], ack)
        FIGURES['inputs'] += 1
    assert fuzz_server.alive()


MALFORMED_PRIMUS = [
    ({'type': 0, 'data': ['todos::create', {}], 'id': bad}, bad)
    for bad in ('1', 1.5, 0, -1, True, [], {'a': 1}, 2 ** 53, 'x' * 50)
] + [
    ({'type': 0, 'data': 'todos::find', 'id': 7}, 7),
    ({'type': 0, 'data': [], 'id': 8}, 8),
    ({'type': 0, 'data': [5, {}], 'id': 9}, 9),
]


def test_malformed_primus_packets_with_an_id_get_one_bad_request(fuzz_server, prim):
    for packet, echoed in MALFORMED_PRIMUS:
        prim.send(packet)
        frame = prim.next_frame(lambda f: isinstance(f, dict) and f.get('type') == 1, timeout=5)
        assert frame['id'] == echoed and len(frame['data']) == 1, frame
        assert frame['data'][0]['name'] == 'BadRequest', frame
        FIGURES['inputs'] += 1
    assert fuzz_server.alive()


def test_binary_attachment_flood_is_cut_off(fuzz_server):
    """A BINARY_EVENT announcing a billion attachments must not let one client pile up binary
    frames without limit: past max_http_buffer_size in total the client is disconnected."""
    client = RawSocketIO(fuzz_server.port, {'token': TOKEN})
    try:
        base = rss_kb(fuzz_server.proc.pid)
        client.send('51000000000-["todos::create",{"_placeholder":true,"num":0}]')
        chunk = b'x' * (512 * 1024)  # an engine.io 4 binary message is the raw frame
        sent = 0
        try:
            for _ in range(200):  # 100 MB at most
                client.ws.send_binary(chunk)
                sent += len(chunk)
            while True:  # until the engine.io CLOSE packet or the websocket's end
                if client.ws.recv(timeout=5)[1] == b'1':
                    break
        except (Closed, OSError):
            pass
        grown = rss_kb(fuzz_server.proc.pid) - base
        # python-socketio handles inbound messages in threads, so the first binary frames may be
        # handled before the header and dropped as unusable: the memory is what must not grow.
        assert grown < 30 * 1024, f'RSS grew {grown / 1024:.0f} MiB after {sent / 2**20:.0f} MiB'
        FIGURES['attachment_flood_mb_sent_before_cut'] = sent / 2 ** 20
        FIGURES['inputs'] += sent // len(chunk) + 1
    finally:
        client.close()
    assert fuzz_server.alive()


@pytest.mark.parametrize('frame', ['x', '', 'b!!!', '\u2603', '4' + '[' * 100000, '9'])
def test_undecodable_engineio_frame_leaves_no_zombie(fuzz_server, frame):
    """One frame engine.io cannot decode, then the client goes: the connection (and its threads)
    must go at once, not after the ping timeout."""
    before = fuzz_server.wait_stats(lambda s: s['connections'] <= 2, 15, 'quiet server')
    client = RawSocketIO(fuzz_server.port, {'token': TOKEN})
    assert client.connected
    fuzz_server.wait_stats(lambda s: s['connections'] == before['connections'] + 1, 5,
                           'the connection registered')
    try:
        client.ws.send_text(frame)
    finally:
        client.close()
    FIGURES['inputs'] += 1
    # threads: engine.io's ping sleeper and service task may outlive a connection a while
    fuzz_server.wait_stats(lambda s: s['connections'] == before['connections'] and
                           s['threads'] <= before['threads'] + 2, 10,
                           f'connection and threads released after {frame[:10]!r}')


# hypothesis: wrong types in every argument slot of every method, both dialects, both transports

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63) |
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) |
    st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)
PATHS = st.sampled_from(['todos', 'stats', 'nope', '', '/todos/', 'todos/x']) | st.text(max_size=8)
METHOD_NAMES = st.sampled_from(['find', 'get', 'create', 'update', 'patch', 'remove', 'setup',
                                'created', 'nope', '']) | st.text(max_size=6)


@st.composite
def calls(draw):
    """``(event, args)`` in either dialect, any JSON in any slot."""
    args = draw(st.lists(JSON_VALUES, max_size=5))
    method = draw(METHOD_NAMES)
    path = draw(PATHS)
    if draw(st.booleans()):
        return f'{path}::{method}', args
    if draw(st.booleans()):
        return method, [path] + args
    return method, args


#: What clients may call on the fuzz app's services (its MemoryService and Stats).
FUZZ_METHODS = {'todos': {'find', 'get', 'create', 'update', 'patch', 'remove'},
                'stats': {'find'}}


def expected_error(event: str, args: list) -> Optional[str]:
    """The error name the server must answer, by the same rules it uses; None: it may succeed or
    fail in the service."""
    if not _calls.is_call(event, args):
        return 'NotFound'
    # The server looks the service and the method up first, then the arguments.
    try:
        path, method = _calls.call_target(event, args)
    except ff_errors.FeathersError as exc:
        return exc.name
    if path not in FUZZ_METHODS:
        return 'NotFound'
    if method not in FUZZ_METHODS[path]:
        return 'MethodNotAllowed'
    try:
        _calls.parse_call(event, args)
    except ff_errors.FeathersError as exc:
        return exc.name
    return None


def check_call_ack(event: str, args: list, ack: list) -> None:
    assert_ack_shape(ack)
    want = expected_error(event, args)
    if want is not None:
        assert ack[0] is not None and ack[0]['name'] == want, (event, args, ack)
    FIGURES['inputs'] += 1


@FUZZ_SETTINGS
@given(call=calls())
def test_fuzz_socketio_calls(fuzz_server, sio, call):
    event, args = call
    ack_id = next(_ids)
    sio.send(f'2{ack_id}' + json.dumps([event, *args]))
    check_call_ack(event, args, sio.ack(ack_id))


@FUZZ_SETTINGS
@given(call=calls())
def test_fuzz_primus_calls(fuzz_server, prim, call):
    event, args = call
    ack_id = next(_ids)
    prim.send({'type': 0, 'data': [event, *args], 'id': ack_id})
    ack = prim.ack(ack_id)
    if event in ('data', 'end', 'error', 'heartbeat', 'readyStateChange') or \
            event.startswith(('incoming::', 'outgoing::')):
        return  # reserved spark events are not calls (primus-emitter drops them)
    check_call_ack(event, args, ack)


def test_fuzz_left_no_duplicate_acks(fuzz_server, sio, prim):
    """Exactly one ack per call: after the fuzzing, a sentinel call's ack is the only one left."""
    sentinel = next(_ids)
    sio.send(f'2{sentinel}["todos::find",{{}}]')
    assert sio.ack(sentinel)[0] is None
    prim.send({'type': 0, 'data': ['todos::find', {}], 'id': sentinel})
    assert prim.ack(sentinel)[0] is None
    assert [p for p in sio.pending if p.startswith('3')] == []
    assert [f for f in prim.pending if isinstance(f, dict) and f.get('type') == 1] == []
    assert fuzz_server.alive()



# seeded frame storm: garbage at the frame level on both transports, good clients watching

def garbage_frames(rng: random.Random, transport: str):
    """An endless, seeded supply of ``(kind, action)``; ``action(ws)`` sends one bad input."""
    call = (lambda body: '42' + body) if transport == 'socketio' else (lambda body: body)

    def text(t):
        return lambda ws: ws.send_text(t)

    def raw(opcode, payload, **kw):
        return lambda ws: ws.send_frame(opcode, payload, **kw)

    def split(t):
        def go(ws):
            b = t.encode()
            cut = rng.randrange(len(b) + 1)
            ws.send_frame(OP_TEXT, b[:cut], fin=False)
            ws.send_frame(OP_CONT, b[cut:])
        return go

    def repeated(t):
        def go(ws):
            for _ in range(rng.randint(2, 20)):
                ws.send_text(t)
        return go
    kinds = [
        ('broken json', lambda: text(call('["todos::create",{' + ''.join(
            rng.choice('{}[]",:1a\\') for _ in range(rng.randint(1, 40)))))),
        ('random text', lambda: text(''.join(chr(rng.randint(1, 0x2FFF))
                                             for _ in range(rng.randint(0, 60))))),
        ('binary', lambda: raw(OP_BINARY, rng.randbytes(rng.randint(0, 2000)))),
        ('invalid utf-8', lambda: raw(OP_TEXT, b'["\xff\xfe' + rng.randbytes(8) + b'"]')),
        ('deep nesting', lambda: text(call('["todos::create",' + '[' * rng.randint(500, 20000)))),
        ('huge payload', lambda: text(call(json.dumps(['todos::find', {
            'x': 'y' * rng.randint(100000, 900000)}])))),
        ('split frame', lambda: split(call(json.dumps(['todos::find', {}])))),
        ('repeated frame', lambda: repeated(call('["todos::remove",' + str(rng.randint(1, 9)) +
                                                 ']'))),
        ('reserved opcode', lambda: raw(rng.choice([3, 4, 5, 6, 7, 11, 12]), b'x')),
        ('rsv bits', lambda: raw(OP_TEXT, b'"x"', rsv=rng.randint(1, 7))),
        ('lone continuation', lambda: raw(OP_CONT, b'abc')),
        ('long ping', lambda: raw(OP_PING, b'p' * 200)),
        ('unknown packet', lambda: text(rng.choice(['9', '4', '49', '4x', '', '5', '6', '1']))),
    ]
    while True:
        kind, make = rng.choice(kinds)
        yield kind, make()


def connect_garbage(port: int, transport: str):
    if transport == 'socketio':
        client = RawSocketIO(port, {'token': TOKEN})
        assert client.connected
        return client.ws
    return RawPrimus(port).ws


class Watcher:
    """A well-behaved client (python-socketio or raw Primus) that records 'todos created'."""

    def __init__(self, port: int, transport: str, token: str = TOKEN) -> None:
        self.transport = transport
        self.events: 'queue.Queue[Any]' = queue.Queue()
        if transport == 'socketio':
            import socketio as python_socketio
            from support.clients import in_order
            self.client = in_order(python_socketio.Client(reconnection=False))
            self.client.on('todos created', self.events.put)
            self.client.connect(f'http://127.0.0.1:{port}', auth={'token': token},
                                transports=['websocket'], wait_timeout=5)
        else:
            self.client = RawPrimus(port, token)
            assert self.client.ws.accepted
        self.ack_id = 0

    def create(self, data: dict) -> Any:
        if self.transport == 'socketio':
            ack = self.client.call('todos::create', (data, {}), timeout=10)
            return ack if not isinstance(ack, tuple) else list(ack)
        self.ack_id += 1
        self.client.send({'type': 0, 'data': ['todos::create', data, {}], 'id': self.ack_id})
        return self.client.ack(self.ack_id)

    def created_marks(self, marker: str, want: int, timeout: float) -> List[int]:
        deadline = time.monotonic() + timeout
        seen: List[int] = []
        while len(seen) < want and time.monotonic() < deadline:
            if self.transport == 'socketio':
                try:
                    event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            else:
                try:
                    frame = self.client.next_frame(
                        lambda f: isinstance(f, dict) and f.get('type') == 0 and
                        f['data'][0] == 'todos created',
                        timeout=max(0.01, deadline - time.monotonic()))
                except (AssertionError, OSError):  # nothing more within the time
                    break
                event = frame['data'][1]
            if event.get('marker') == marker:
                seen.append(event['n'])
        return seen

    def close(self) -> None:
        if self.transport == 'socketio':
            self.client.disconnect()
            self.client.shutdown() if hasattr(self.client, 'shutdown') else None
        else:
            self.client.close()


def test_seeded_frame_storm_with_watchers(fuzz_server):
    """Two storms: the first sets the level memory settles at (allocator arenas, caches), the
    second, larger one must come back to it."""
    first = storm(fuzz_server, random.Random(1), int(os.environ.get('FUZZ_FRAMES', '1500')) // 3)
    second = storm(fuzz_server, random.Random(20240601), int(os.environ.get('FUZZ_FRAMES', '1500')))
    assert second['rss_kb'] <= first['rss_kb'] + 10 * 1024, (first, second)
    FIGURES.update(rss_after_first_storm_mb=first['rss_kb'] / 1024,
                   rss_after_second_storm_mb=second['rss_kb'] / 1024)
    print('\nfuzz figures:', json.dumps(FIGURES, default=str))


def storm(fuzz_server, rng: random.Random, frames_per_transport: int) -> Dict[str, Any]:
    """Thousands of bad frames on both transports from reconnecting attackers, while two good
    clients per transport (one muted by the filter) keep calling: they get every answer and
    every event meant for them, and memory and threads come back afterwards."""
    fuzz_server.wait_stats(lambda s: s['connections'] <= 3, 15, 'quiet server before the storm')
    before = fuzz_server.stats()
    watchers = [Watcher(fuzz_server.port, t) for t in ('socketio', 'primus')]
    muted = [Watcher(fuzz_server.port, t, TOKEN + '-muted') for t in ('socketio', 'primus')]
    kinds: Dict[str, int] = {}
    reconnects = 0
    marker = f'storm-{rng.random()}'
    n = 0
    try:
        for transport in ('socketio', 'primus'):
            supply = garbage_frames(rng, transport)
            ws = connect_garbage(fuzz_server.port, transport)
            for i in range(frames_per_transport):
                kind, action = next(supply)
                kinds[kind] = kinds.get(kind, 0) + 1
                try:
                    action(ws)
                except OSError:  # the server closed it for a protocol error: come back
                    ws.close()
                    ws = connect_garbage(fuzz_server.port, transport)
                    reconnects += 1
                if i % 50 == 0:
                    # the good clients' calls are answered while the storm goes on
                    for w in watchers:
                        n += 1
                        error, result = w.create({'marker': marker, 'n': n})[:2]
                        assert error is None and result['n'] == n, (error, result)
            ws.close()
        FIGURES['inputs'] += sum(kinds.values())
        assert fuzz_server.alive()
        for w in watchers:
            got = w.created_marks(marker, n, timeout=20)
            assert sorted(got) == list(range(1, n + 1)), \
                f'{w.transport} watcher missed events: {sorted(set(range(1, n + 1)) - set(got))}'
        for m in muted:
            assert m.created_marks(marker, 1, timeout=0.5) == [], 'the filter let an event through'
    finally:
        for w in watchers + muted:
            w.close()
    peak = peak_rss_kb(fuzz_server.proc.pid)
    after = fuzz_server.wait_stats(
        lambda s: s['connections'] <= before['connections'] and
        s['threads'] <= before['threads'] + 2, 30,
        f'connections and threads back to their level before the storm ({before})')
    FIGURES['storm_frames'] = FIGURES.get('storm_frames', 0) + sum(kinds.values())
    FIGURES.update(storm_kinds=kinds, reconnects=reconnects, good_calls=n,
                   rss_before_mb=before['rss_kb'] / 1024, rss_peak_mb=peak / 1024,
                   threads_before=before['threads'], threads_after=after['threads'])
    return after

