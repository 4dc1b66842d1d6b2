"""The dispatcher alone, with fake connections: filters, ordering, isolation of failures."""
import collections
import logging
import random
import threading
import time
from types import SimpleNamespace

import pytest

from flask_feathers.connections import ConnectionRegistry
from flask_feathers.dispatch import Dispatcher, Event, Lane, apply_filter, event_name
from flask_feathers.dispatch.scheduler import _Loop
from flask_feathers.testing import FakeConnection


class Env:
    """A dispatcher over a registry, with services registered by path."""

    def __init__(self, workers=4, filter_timeout=5.0, **kw):
        self.registry = ConnectionRegistry()
        self.services = {}
        self.dispatcher = Dispatcher(self.registry, self._find, workers=workers,
                                     filter_timeout=filter_timeout, **kw)
        self.broadcasts = []

    def _find(self, path):
        service = self.services.get(path)
        return None if service is None else SimpleNamespace(service=service)

    def connect(self, **params):
        conn = FakeConnection(dict(params, provider='test'))
        self.registry.add(conn)
        return conn

    def record_broadcasts(self):
        def broadcast(name, data, conns):
            self.broadcasts.append((name, data, [c.id for c in conns]))
            for conn in conns:
                conn.send(name, data)
        self.dispatcher.add_transport('test', broadcast)

    def idle(self, timeout=5.0):
        assert self.dispatcher.wait_idle(timeout), 'dispatch did not finish in time'


@pytest.fixture
def env():
    made = []

    def make(**kw):
        e = Env(**kw)
        made.append(e)
        return e
    yield make
    for e in made:
        e.dispatcher.close()


def test_event_name():
    assert event_name('todos', 'created') == 'todos created'
    assert event_name('api/todos', 'typing') == 'api/todos typing'


def test_fast_path_broadcasts_once_to_every_connection(env):
    e = env()
    e.record_broadcasts()
    e.services['todos'] = {'create': lambda data, params: data}  # no `created` filter
    a, b, c = e.connect(), e.connect(), e.connect()
    e.dispatcher.dispatch('todos', 'created', {'id': 1})
    assert e.broadcasts == [('todos created', {'id': 1}, [a.id, b.id, c.id])]
    for conn in (a, b, c):
        assert conn.sent == [('todos created', {'id': 1})]
    assert e.dispatcher.scheduler.pool is None, \
        'no filter, so no worker pool should have been started'


def test_without_transport_broadcast_each_connection_gets_a_send(env):
    e = env()
    a, b = e.connect(), e.connect()
    e.dispatcher.dispatch('unknown', 'created', {'id': 1})
    assert a.sent == b.sent == [('unknown created', {'id': 1})]


def test_no_connections_is_a_no_op(env):
    e = env()
    e.services['todos'] = {'created': lambda d, p: pytest.fail('filter ran without clients')}
    e.dispatcher.dispatch('todos', 'created', {'id': 1})
    e.idle(1)


def test_filter_gets_each_connections_own_params_object(env):
    e = env()
    seen = []

    def created(data, params):
        seen.append(params)
        return data
    e.services['todos'] = {'created': created}
    a, b = e.connect(user='a'), e.connect(user='b')
    e.dispatcher.dispatch('todos', 'created', {'id': 1})
    e.idle()
    assert sorted(id(p) for p in seen) == sorted([id(a.params), id(b.params)])


@pytest.mark.parametrize('style', ['return', 'callback'])
def test_filter_results_true_changed_copy_and_js_falsy(env, style):
    e = env()
    outcomes = {'same': True, 'copy': {'changed': True}, 'none': None, 'false': False,
                'zero': 0, 'empty': '', 'list': [], 'dict': {}}

    if style == 'return':
        def created(data, params):
            return outcomes[params['kind']]
    else:
        def created(data, params, callback):
            threading.Thread(target=callback, args=(None, outcomes[params['kind']])).start()
    e.services['todos'] = {'created': created}
    conns = {kind: e.connect(kind=kind) for kind in outcomes}
    e.dispatcher.dispatch('todos', 'created', {'id': 7})
    e.idle()
    got = {kind: conn.events('todos created') for kind, conn in conns.items()}
    assert got == {'same': [{'id': 7}], 'copy': [{'changed': True}], 'none': [], 'false': [],
                   'zero': [], 'empty': [], 'list': [[]], 'dict': [{}]}


def test_raising_filter_skips_only_that_client_and_is_logged(env, caplog):
    e = env()

    def created(data, params):
        if params['bad']:
            raise RuntimeError('boom in filter')
        return data
    e.services['todos'] = {'created': created}
    conns = [e.connect(bad=(i == 1)) for i in range(4)]
    with caplog.at_level(logging.ERROR, logger='flask_feathers.dispatch'):
        e.dispatcher.dispatch('todos', 'created', {'id': 1})
        e.dispatcher.dispatch('todos', 'created', {'id': 2})
        e.idle()
    assert conns[1].sent == []
    for i in (0, 2, 3):
        assert conns[i].events() == [{'id': 1}, {'id': 2}]
    assert 'boom in filter' in caplog.text and conns[1].id in caplog.text


def test_callback_error_skips_that_client(env):
    e = env()

    def created(data, params, callback):
        callback(ValueError('nope') if params['bad'] else None, data)
    e.services['todos'] = {'created': created}
    good, bad = e.connect(bad=False), e.connect(bad=True)
    e.dispatcher.dispatch('todos', 'created', {'id': 1})
    e.idle()
    assert good.events() == [{'id': 1}] and bad.sent == []


@pytest.mark.parametrize('style', ['sleeps', 'never_calls_back'])
def test_slow_filter_is_skipped_after_timeout_others_are_prompt(env, caplog, style):
    # Checked by order, not by time: the fast clients get the event while the slow filter still
    # runs (before its time-out); it is skipped no sooner than its time-out.
    e = env(workers=4, filter_timeout=2.0)
    release = threading.Event()

    if style == 'sleeps':
        def created(data, params):
            if params['slow']:
                release.wait(30)  # far past the timeout
            return data
    else:
        def created(data, params, callback):
            if not params['slow']:
                callback(None, data)
    e.services['todos'] = {'created': created}
    slow = e.connect(slow=True)
    fast = [e.connect(slow=False) for _ in range(3)]
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger='flask_feathers.dispatch'):
        e.dispatcher.dispatch('todos', 'created', {'id': 1})
        for conn in fast:
            conn.wait_for(1, timeout=10)
        assert 'took longer' not in caplog.text and 'callback within' not in caplog.text, \
            'the fast clients got the event only after the slow filter was skipped'
        e.idle(30)
        skipped_after = time.monotonic() - start
    release.set()
    assert skipped_after >= 1.9
    assert slow.sent == []
    assert 'took longer than 2 s' in caplog.text or 'callback within 2 s' in caplog.text


def test_slow_client_gets_later_events_after_its_skipped_one(env, caplog):
    e = env(workers=4, filter_timeout=0.3)

    def created(data, params):
        if data['id'] == 1:
            time.sleep(0.5)  # the slowness under test: outlives the 0.3 s timeout
        return data
    e.services['todos'] = {'created': created}
    conn = e.connect()
    for i in range(1, 4):
        e.dispatcher.dispatch('todos', 'created', {'id': i})
    conn.wait_for(2, timeout=10)
    e.idle()
    assert conn.events() == [{'id': 2}, {'id': 3}]
    assert 'took longer than 0.3 s' in caplog.text


def test_a_hung_filter_leaves_a_bounded_lane(env, caplog):
    e = env(workers=2, filter_timeout=0.2)
    release = threading.Event()

    def created(data, params):
        if data['id'] == 0:
            release.wait(10)
        return data
    e.services['todos'] = {'created': created}
    conn = e.connect()
    try:
        for i in range(5):
            e.dispatcher.dispatch('todos', 'created', {'id': i})
        e.idle(10)  # every slot is skipped (within about two time-outs)
        assert conn.sent == [] and e.dispatcher.waiting(conn) == 0
    finally:
        release.set()
    assert 'waited 0.2 s behind a filter that timed out' in caplog.text


def test_order_per_connection_with_parallel_random_filters(env):
    e = env(workers=8)
    rnd = random.Random(1234)
    delays = [rnd.uniform(0, 0.003) for _ in range(4096)]
    counter = iter(range(1 << 30))

    def created(data, params):
        time.sleep(delays[next(counter) % len(delays)])
        if params['n'] == 2 and data['i'] % 3 == 0:
            return False  # this client filters some out: the rest must stay in order
        return dict(data, to=params['n'])
    e.services['todos'] = {'created': created}
    conns = [e.connect(n=n) for n in range(4)]
    for i in range(200):
        e.dispatcher.dispatch('todos', 'created', {'i': i})
    e.idle(20)
    for n, conn in enumerate(conns):
        expected = [i for i in range(200) if not (n == 2 and i % 3 == 0)]
        assert [d['i'] for d in conn.events()] == expected, f'client {n} out of order'
        assert all(d['to'] == n for d in conn.events())


def test_unfiltered_event_queues_behind_pending_filtered_ones(env):
    e = env(workers=2)
    e.record_broadcasts()
    gate = threading.Event()

    def created(data, params):
        gate.wait(5)
        return data
    e.services['todos'] = {'created': created}  # filtered
    e.services['notes'] = {'create': lambda d, p: d}  # not filtered
    conn = e.connect()
    e.dispatcher.dispatch('todos', 'created', {'id': 1})
    e.dispatcher.dispatch('notes', 'created', {'id': 2})
    assert conn.sent == [], 'the unfiltered event overtook a pending filtered one'
    assert e.broadcasts == [], 'a connection with a busy lane must not take the fast path'
    gate.set()
    e.idle()
    assert conn.sent == [('todos created', {'id': 1}), ('notes created', {'id': 2})]


def test_custom_event_is_filtered_like_the_rest(env):
    e = env()
    e.services['chat'] = {'typing': lambda data, params: data if params['room'] == data['room']
                          else None}
    a, b = e.connect(room=1), e.connect(room=2)
    e.dispatcher.dispatch('chat', 'typing', {'room': 2, 'who': 'x'})
    e.idle()
    assert a.sent == [] and b.sent == [('chat typing', {'room': 2, 'who': 'x'})]


def test_disconnect_during_dispatch_is_quiet_and_releases_waiters(env, caplog):
    e = env(workers=4)
    entered = threading.Event()
    gate = threading.Event()

    def created(data, params):
        if params['leaving']:
            entered.set()
            gate.wait(5)
        return data
    e.services['todos'] = {'created': created}
    leaving, staying = e.connect(leaving=True), e.connect(leaving=False)
    with caplog.at_level(logging.WARNING):
        e.dispatcher.dispatch('todos', 'created', {'id': 1})
        e.dispatcher.dispatch('todos', 'created', {'id': 2})
        assert entered.wait(2)
        e.registry.remove(leaving.id)
        # the leaving client's pending deliveries no longer count: idle while its filter still runs
        e.idle(2)
        gate.set()
    assert leaving.sent == []
    assert staying.events() == [{'id': 1}, {'id': 2}]
    assert not [r for r in caplog.records if r.name.startswith('flask_feathers')], caplog.text


def test_send_failure_is_isolated(env, caplog):
    e = env()
    e.services['todos'] = {'created': lambda d, p: d}
    broken = e.connect()

    def boom(name, data):
        raise OSError('socket closed')
    broken.send = boom
    ok = e.connect()
    with caplog.at_level(logging.ERROR):
        e.dispatcher.dispatch('todos', 'created', {'id': 1})
        e.idle()
    assert ok.events() == [{'id': 1}]
    assert 'socket closed' in caplog.text


def test_broadcast_failure_is_logged_not_raised(env, caplog):
    e = env()

    def broadcast(name, data, conns):
        raise RuntimeError('transport down')
    e.dispatcher.add_transport('test', broadcast)
    e.connect()
    with caplog.at_level(logging.ERROR):
        e.dispatcher.dispatch('todos', 'created', {'id': 1})
    assert 'transport down' in caplog.text


def test_connections_added_later_get_later_events_only(env):
    e = env()
    e.services['todos'] = {'created': lambda d, p: d}
    first = e.connect()
    e.dispatcher.dispatch('todos', 'created', {'id': 1})
    second = e.connect()
    e.dispatcher.dispatch('todos', 'created', {'id': 2})
    e.idle()
    assert first.events() == [{'id': 1}, {'id': 2}]
    assert second.events() == [{'id': 2}]


def test_wait_idle_times_out_while_a_filter_runs(env):
    e = env(filter_timeout=5)
    gate = threading.Event()
    e.services['todos'] = {'created': lambda d, p: gate.wait(5) and d}
    conn = e.connect()
    e.dispatcher.dispatch('todos', 'created', {'id': 1})
    assert e.dispatcher.wait_idle(0.05) is False
    gate.set()
    e.idle()
    assert conn.events() == [{'id': 1}]


def test_invalid_settings_are_explained():
    with pytest.raises(ValueError, match='FEATHERS_FILTER_WORKERS'):
        Dispatcher(ConnectionRegistry(), lambda p: None, workers=0)
    with pytest.raises(ValueError, match='FEATHERS_FILTER_TIMEOUT'):
        Dispatcher(ConnectionRegistry(), lambda p: None, filter_timeout=0)


def test_apply_filter_rules():
    data = {'id': 1}
    assert apply_filter(lambda d, p: True, data, {}) == (True, data)
    assert apply_filter(lambda d, p: {'x': 1}, data, {}) == (True, {'x': 1})
    assert apply_filter(lambda d, p: 0, data, {}) == (False, None)
    assert apply_filter(lambda d, p, cb: cb(None, d), data, {}) == (True, data)
    with pytest.raises(KeyError):
        apply_filter(lambda d, p: p['user'], data, {})


def one_client_held(e, others, holds=lambda data: True):
    """A todos service whose ``created`` filter holds the client connected with ``held=True``
    (for the events ``holds(data)`` picks) until the returned event is set; returns it, that
    client and ``others`` healthy clients."""
    release = threading.Event()

    def created(data, params):
        if params['held'] and holds(data):
            release.wait(60)
        return data
    e.services['todos'] = {'created': created}
    return release, e.connect(held=True), [e.connect(held=False) for _ in range(others)]


def test_a_client_with_a_hanging_filter_does_not_starve_the_others(env):
    # Its filter hangs on every event; with a pool of 2 it must not take both workers and make
    # the other clients miss events.
    # Checked by order: the healthy clients have every event while the hung filter still hangs.
    e = env(workers=2, filter_timeout=60.0)
    release, stuck, others = one_client_held(e, 2)
    try:
        for i in range(4):
            e.dispatcher.dispatch('todos', 'created', {'id': i})
        for conn in others:
            conn.wait_for(4, timeout=10)
        assert stuck.events() == [], 'the hung filter returned before it was released'
    finally:
        release.set()
    e.idle()
    for conn in others:
        assert conn.events() == [{'id': i} for i in range(4)]
    assert [d['id'] for d in stuck.events()] == sorted(d['id'] for d in stuck.events())


def test_later_events_reach_the_others_while_one_filter_is_slow(env):
    """The benchmark's scenario: events one at a time, each awaited by the healthy clients, while
    one client's filter sleeps through all of them. Each one reaches them promptly (once the
    worker held by that filter was replaced, later events must not queue behind it). Checked
    by order, not by time: every event reaches them while the slow filter is still held."""
    e = env(workers=4, filter_timeout=60.0)
    release, slow, others = one_client_held(e, 20, holds=lambda data: data['id'] == 0)
    try:
        for i in range(5):
            e.dispatcher.dispatch('todos', 'created', {'id': i})
            for conn in others:
                conn.wait_for(i + 1, timeout=10)
            assert slow.events() == [], 'the slow filter let its event through before release'
    finally:
        release.set()
    e.idle()
    assert [d['id'] for d in slow.events()] == list(range(5))


def test_a_client_leaving_while_an_event_is_queued_is_not_waited_for(env):
    """The client leaves between the dispatcher's look at the connections and taking its lane's
    lock (the event is in its lane, which its leaving clears): the event must not count as pending
    for it twice or never, or wait_idle never returns."""
    e = env()
    e.services['todos'] = {'created': lambda data, params: data}
    staying, leaving = e.connect(), e.connect()
    e.dispatcher.dispatch('todos', 'created', {'id': 1})  # makes their lanes
    e.idle(2)
    lane = e.dispatcher._lanes[leaving]
    real_lock = lane.lock

    class LeavesOnFirstUse:
        def __init__(self):
            self.used = False

        def __enter__(self):
            if not self.used:
                self.used = True
                e.registry.remove(leaving.id)  # its 'disconnect' listeners run now
            return real_lock.__enter__()

        def __exit__(self, *exc):
            return real_lock.__exit__(*exc)

    lane.lock = LeavesOnFirstUse()
    e.dispatcher.dispatch('todos', 'created', {'id': 2})
    assert lane.lock.used, 'the lane was not locked: the test no longer reaches the race'
    e.idle(2)
    assert staying.events() == [{'id': 1}, {'id': 2}]
    assert leaving.events() == [{'id': 1}] and e.dispatcher.waiting(leaving) == 0
    assert leaving not in e.dispatcher._lanes


def test_a_connection_that_leaves_leaves_no_dispatch_state_behind(env):
    e = env()
    e.services['todos'] = {'created': lambda data, params: data}
    conns = [e.connect() for _ in range(3)]
    e.dispatcher.dispatch('todos', 'created', {'id': 1})
    e.idle()
    assert set(e.dispatcher._lanes) == set(conns)
    for conn in conns:
        e.registry.remove(conn.id)
    assert e.dispatcher._lanes == {}
    assert not hasattr(conns[0], 'lane'), 'dispatch state belongs to the dispatcher'


def test_a_full_backlog_slows_the_writer_down_and_loses_nothing(env):
    """Backpressure: past max_pending filtered deliveries, dispatch (the service call that
    produced the event, and so its ack) waits for room instead of the backlog growing; every
    event still reaches every client, in order."""
    e = env(workers=4, max_pending=20)
    release = threading.Event()

    def created(data, params):
        release.wait(10)  # the filters are stuck until the test lets them go
        return data
    e.services['todos'] = {'created': created}
    conns = [e.connect(n=n) for n in range(10)]
    produced = []

    def writer():
        for i in range(30):
            e.dispatcher.dispatch('todos', 'created', {'i': i})
            produced.append(i)
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    # Two events fill the bound (10 clients each); the third must wait for room.
    deadline = time.monotonic() + 10
    while len(produced) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(produced) == 2, f'{len(produced)} events dispatched before the filters ran'
    thread.join(0.3)
    assert thread.is_alive() and len(produced) == 2, \
        'the writer was not slowed down at the bound'
    assert e.dispatcher.pending.count == 20
    release.set()
    thread.join(20)
    assert not thread.is_alive() and produced == list(range(30)), 'the writer failed or hung'
    e.idle(20)
    assert e.dispatcher.peak_pending <= 20, e.dispatcher.peak_pending
    for conn in conns:
        assert [d['i'] for d in conn.events()] == list(range(30)), 'an event was lost or reordered'


def test_one_event_is_let_in_even_when_larger_than_the_bound(env):
    e = env(max_pending=3)
    e.services['todos'] = {'created': lambda data, params: data}
    conns = [e.connect(n=n) for n in range(10)]
    for i in range(5):
        e.dispatcher.dispatch('todos', 'created', {'i': i})
    e.idle(10)
    for conn in conns:
        assert [d['i'] for d in conn.events()] == list(range(5))


def test_max_pending_must_be_positive():
    with pytest.raises(ValueError, match='FEATHERS_MAX_PENDING'):
        Dispatcher(ConnectionRegistry(), lambda path: None, max_pending=0)


# -- the parts, driven by hand (no threads) ----------------------------------------------------

def an_event(n, call=None):
    return Event('todos created', {'id': n}, call, 0.0)  # dispatched at 0 on the tests' clock


def test_a_lane_is_claimed_once_and_released_when_empty():
    lane = Lane(FakeConnection())
    assert not lane.waiting()
    assert lane.push(an_event(1)) is True, 'the first event makes an idle lane busy'
    assert lane.push(an_event(2)) is False, 'a busy lane is queued already'
    assert lane.waiting() and lane.busy
    lane.events.popleft()
    assert lane.release() is True, 'an event still waits: the lane stays busy'
    lane.events.popleft()
    assert lane.release() is False and not lane.busy and not lane.waiting()
    lane.push(an_event(3))
    lane.push(an_event(4))
    assert lane.clear() == 2 and not lane.events


def test_an_event_pushed_while_its_lane_is_released_is_not_stranded():
    # The push lands between the loop's "nothing waits" and its clearing the busy flag: the push
    # sees the lane busy and leaves the event to the loop, so release() must pick it up.
    lane = Lane(FakeConnection())
    lane.busy = True  # a loop has it, and has emptied it
    pushed = []

    class PushesWhenLookedAt(collections.deque):
        def __bool__(self):
            empty = len(self) == 0
            if not pushed:
                pushed.append(lane.push(an_event(1)))
            return not empty

    lane.events = PushesWhenLookedAt()
    assert lane.release() is True, 'the event pushed meanwhile was left in an idle lane'
    assert pushed == [False] and lane.busy and len(lane.events) == 1


class Turn:
    """One worker loop's turn on one lane, driven in the test's thread: the events' filters play
    the watchdog (and leaving clients) at chosen moments of the turn."""

    def __init__(self, filter_timeout=1.0):
        self.registry = ConnectionRegistry()
        self.dispatcher = Dispatcher(self.registry, lambda path: None, workers=1,
                                     filter_timeout=filter_timeout)
        self.scheduler = self.dispatcher.scheduler
        self.conn = FakeConnection()
        self.registry.add(self.conn)
        self.lane = self.dispatcher._lanes[self.conn] = Lane(self.conn)
        self.loop = _Loop()
        self.loop.rescued = True  # another loop took over the ready queue already: no thread
        self.scheduler._active.add(self.loop)

    def run(self, *calls):
        events = [an_event(n, call) for n, call in enumerate(calls, 1)]
        self.dispatcher.pending.admit(len(events))
        self.lane.busy = True
        self.lane.events.extend(events)
        self.scheduler._turn(self.loop, self.lane)


def test_the_watchdog_never_times_out_the_filter_a_worker_just_started(caplog):
    # The watchdog reads the loop's running record, then the filter it saw returns and the worker
    # starts the next one, then the watchdog acts on what it read with a clock past the time-out:
    # the new filter must run on, its result delivered, nothing counted twice.
    t = Turn(filter_timeout=1.0)
    read = []

    def first(data, params):
        read.append(t.loop.running)
        t.scheduler.check(t.loop, read[0], 100.0)  # the watchdog's first sighting
        return data

    def second(data, params):
        assert t.loop.running is not read[0]
        t.scheduler.check(t.loop, read[0], 100.0 + 1.0 + 0.1)  # acts on the stale record
        assert t.loop.cancelled is None and t.loop.timed_out is None
        return data

    with caplog.at_level(logging.WARNING):
        t.run(first, second)
    assert t.conn.events() == [{'id': 1}, {'id': 2}]
    assert t.dispatcher.pending.count == 0
    assert 'took longer' not in caplog.text


def test_a_filter_that_hangs_is_timed_out_on_its_own_clock(caplog):
    t = Turn(filter_timeout=1.0)

    def hangs(data, params):
        run = t.loop.running
        t.scheduler.check(t.loop, run, 50.0)
        t.scheduler.check(t.loop, run, 50.5)  # held, not yet timed out
        assert t.loop.cancelled is None
        t.scheduler.check(t.loop, run, 51.0)
        assert t.loop.cancelled is run and t.dispatcher.pending.count == 1
        return data  # too late: skipped and counted by the watchdog

    with caplog.at_level(logging.WARNING):
        t.run(hangs, lambda data, params: data)
    assert t.conn.events() == [{'id': 2}]
    assert t.dispatcher.pending.count == 0
    assert 'took longer than 1 s' in caplog.text


def test_a_client_leaving_during_a_filter_that_then_times_out_is_counted_once():
    t = Turn(filter_timeout=1.0)

    def leaves_then_hangs(data, params):
        run = t.loop.running
        t.registry.remove(t.conn.id)  # drops the running filter's result and what waits
        assert t.loop.cancelled is run
        t.scheduler.check(t.loop, run, 10.0)
        t.scheduler.check(t.loop, run, 11.5)  # the time-out of a result dropped already
        return data

    t.run(leaves_then_hangs, lambda data, params: data, lambda data, params: data)
    assert t.conn.sent == []
    assert t.dispatcher.pending.count == 0, 'a delivery was counted twice, or never'
