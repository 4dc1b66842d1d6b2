"""RedisFanout against a real Redis: wire format, exactly-once in-order delivery, writer-only
mode, malformed and non-JSON events, an outage of a Redis started for the test, and the wiring
through ``Feathers(app, message_queue=...)``. The fan-out carries the router's messages; these
tests send service events (``event(...)``) unless they say otherwise."""
from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
from typing import Any, List

import pytest
import redis as redis_py
from flask import Flask

from _scaleout_harness import RedisServer, wait_for
from flask_feathers import Feathers
from flask_feathers.connections import Connection
from flask_feathers.fanout import LocalFanout
from flask_feathers.fanout_redis import DEFAULT_CHANNEL, RedisFanout, redact
from flask_feathers.router import Message, MessageKind

SHARED_REDIS = 'redis://127.0.0.1:6379/0'
LOGGER = 'flask_feathers.fanout_redis'


def event(path: str, name: str, data: Any) -> Message:
    return Message.service_event(path, name, data)


class Sink:
    """A ``receive`` function that records the service events it gets as (path, event, data)
    and the other messages whole."""

    def __init__(self) -> None:
        self.got: List[Any] = []
        self.cond = threading.Condition()

    def __call__(self, message: Message) -> None:
        with self.cond:
            if message.kind is MessageKind.SERVICE_EVENT:
                self.got.append((message.target, message.event, message.data))
            else:
                self.got.append(message)
            self.cond.notify_all()

    def wait_len(self, n: int, timeout: float = 10.0) -> List[tuple]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.got) >= n, timeout)
            got = list(self.got)
        assert ok, f'timed out waiting for {n} deliveries; got {len(got)}: {got[-3:]}'
        return got


@pytest.fixture
def channel() -> str:
    return f'ff-test-{uuid.uuid4().hex}'


@pytest.fixture
def fanout(channel):
    """``fanout(deliver, **options)``: a RedisFanout on the test's channel, closed afterwards."""
    made: List[RedisFanout] = []

    def make(deliver, url=SHARED_REDIS, **options) -> RedisFanout:
        f = RedisFanout(url, deliver, channel=options.pop('channel', channel), **options)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


@pytest.fixture
def raw(channel):
    """A plain redis-py subscriber on the test's channel."""
    client = redis_py.Redis.from_url(SHARED_REDIS)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    yield pubsub
    pubsub.close()
    client.close()


def raw_messages(pubsub, n: int, timeout: float = 5.0) -> List[dict]:
    got: List[dict] = []

    def more() -> bool:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            got.append(json.loads(message['data']))
        return len(got) >= n
    wait_for(more, timeout, f'{n} raw messages on the channel', interval=0)
    return got


def thread_names() -> List[str]:
    return [t.name for t in threading.enumerate()]


def test_every_event_reaches_every_subscriber_once_in_order(fanout):
    a_sink, b_sink = Sink(), Sink()
    a, b = fanout(a_sink), fanout(b_sink)
    assert a.wait_subscribed(5) and b.wait_subscribed(5)
    for n in range(200):
        (a if n % 3 else b).send(event('todos', 'created', {'n': n}))
    expected = [('todos', 'created', {'n': n}) for n in range(200)]
    # Both producers' events in one order, the same in both processes; own events included.
    assert a_sink.wait_len(200) == b_sink.wait_len(200)
    assert sorted(a_sink.got, key=lambda e: e[2]['n']) == expected
    assert [e for e in a_sink.got if e[2]['n'] % 3] == [e for e in expected if e[2]['n'] % 3]
    # Nothing more arrives: a marker published last is the next and final delivery.
    a.send(event('todos', 'created', {'n': 'end'}))
    assert a_sink.wait_len(201)[200:] == [('todos', 'created', {'n': 'end'})]
    assert len(b_sink.wait_len(201)) == 201


def test_wire_format_is_event_path_data_json(fanout, raw, channel):
    f = fanout(Sink())
    assert f.wait_subscribed(5)
    f.send(event('todos', 'patched', {'id': 1, 'text': 'é'}))
    [message] = raw_messages(raw, 1)
    assert {k: message[k] for k in ('event', 'path', 'data')} == \
        {'event': 'patched', 'path': 'todos', 'data': {'id': 1, 'text': 'é'}}
    assert message['origin'] == f.origin and message['seq'] == 1


def test_a_broadcast_travels_with_its_kind_and_comes_back_as_one(fanout, raw):
    sink = Sink()
    f = fanout(sink)
    assert f.wait_subscribed(5)
    f.send(Message.broadcast('primus', 'send', {'event': 'news', 'args': [1]}))
    [message] = raw_messages(raw, 1)
    assert {k: message[k] for k in ('kind', 'provider', 'event', 'data')} == \
        {'kind': 'broadcast', 'provider': 'primus', 'event': 'send',
         'data': {'event': 'news', 'args': [1]}}
    assert message['path'] == ':primus'  # what processes of the release before kinds read
    assert sink.wait_len(1) == [Message.broadcast('primus', 'send', {'event': 'news',
                                                                     'args': [1]})]


def test_foreign_messages_are_delivered_and_malformed_ones_skipped(fanout, channel, caplog):
    sink = Sink()
    f = fanout(sink)
    assert f.wait_subscribed(5)
    client = redis_py.Redis.from_url(SHARED_REDIS)
    try:
        with caplog.at_level(logging.WARNING, LOGGER):
            client.publish(channel, 'not json')
            client.publish(channel, json.dumps({'event': 'created'}))
            client.publish(channel, json.dumps({'kind': 'other', 'event': 'created',
                                                'path': 'todos', 'data': {}}))
            client.publish(channel, json.dumps(['a', 'list']))
            client.publish(channel, json.dumps({'event': 'created', 'path': 'todos',
                                                'data': {'from': 'a worker in Node'}}))
            assert sink.wait_len(1) == [('todos', 'created', {'from': 'a worker in Node'})]
    finally:
        client.close()
    malformed = [r for r in caplog.records if 'malformed' in r.getMessage()]
    assert len(malformed) == 4


def test_non_json_event_is_delivered_locally_only(fanout, raw, caplog):
    sink = Sink()
    f = fanout(sink)
    assert f.wait_subscribed(5)
    with caplog.at_level(logging.ERROR, LOGGER):
        f.send(event('todos', 'created', {'tags': {'a', 'set'}}))
    assert sink.got == [('todos', 'created', {'tags': {'a', 'set'}})]
    assert any('not JSON serialisable' in r.getMessage() for r in caplog.records)
    f.send(event('todos', 'created', {'n': 'after'}))
    # The channel carried only the second event.
    assert [m['data'] for m in raw_messages(raw, 1)] == [{'n': 'after'}]
    assert raw.get_message(timeout=0.2) is None
    assert sink.wait_len(2)[1] == ('todos', 'created', {'n': 'after'})


def test_write_only_publishes_without_subscriber_or_local_delivery(fanout, channel):
    reader_sink, writer_sink = Sink(), Sink()
    reader = fanout(reader_sink)
    assert reader.wait_subscribed(5)
    before = thread_names().count(f'feathers-redis-{channel}')
    writer = fanout(writer_sink, write_only=True)
    assert thread_names().count(f'feathers-redis-{channel}') == before == 1
    for n in range(20):
        writer.send(event('todos', 'created', {'n': n}))
    assert [e[2]['n'] for e in reader_sink.wait_len(20)] == list(range(20))
    assert writer_sink.got == []
    with pytest.raises(RuntimeError, match='write-only'):
        writer.wait_subscribed(0)


def test_close_stops_the_subscriber_and_later_events_stay_local(fanout, channel):
    sink = Sink()
    f = fanout(sink)
    assert f.wait_subscribed(5)
    f.close()
    assert f'feathers-redis-{channel}' not in thread_names()
    assert not f.subscribed
    f.send(event('todos', 'created', {'n': 1}))
    assert sink.got == [('todos', 'created', {'n': 1})]
    f.close()  # idempotent


def test_outage_local_delivery_logged_once_and_recovery(fanout, caplog):
    server = RedisServer().start()
    try:
        mine, theirs = Sink(), Sink()
        a = fanout(mine, url=server.url, max_backoff=0.5)
        b = fanout(theirs, url=server.url, max_backoff=0.5)
        assert a.wait_subscribed(5) and b.wait_subscribed(5)
        with caplog.at_level(logging.INFO, LOGGER):
            a.send(event('todos', 'created', {'n': 'before'}))
            assert len(theirs.wait_len(1)) == 1
            server.stop()
            for n in range(30):
                a.send(event('todos', 'created', {'n': n}))  # never raises
            # Local clients keep getting local events, directly.
            assert [e[2]['n'] for e in mine.wait_len(31)] == ['before'] + list(range(30))
            wait_for(lambda: not a.subscribed, 10, 'the subscriber to notice the outage')
            server.start()
            wait_for(lambda: a.subscribed and b.subscribed, 15, 'both subscribers to reconnect')
            a.send(event('todos', 'created', {'n': 'after'}))
            got = theirs.wait_len(2)
            assert [e[2]['n'] for e in mine.wait_len(32)] == ['before'] + list(range(30)) + \
                ['after']
            records = list(caplog.records)
    finally:
        server.stop()
    # Nothing of the outage reached the other process; pub/sub keeps nothing.
    assert [e[2]['n'] for e in got] == ['before', 'after']
    down = [r for r in records if 'is unreachable' in r.getMessage()]
    back = [r for r in records if 'is back;' in r.getMessage()]
    assert len(down) == 2, [r.getMessage() for r in down]  # once per fan-out, not per event
    assert {r.levelno for r in down} == {logging.ERROR}
    assert len(back) == 2, [r.getMessage() for r in back]


def test_own_event_published_while_resubscribing_is_not_delivered_twice(fanout, raw):
    # The subscriber is not subscribed yet: the event is delivered directly and published; when
    # it comes back through Redis it is recognised and skipped.
    sink = Sink()
    f = fanout(sink)
    assert f.wait_subscribed(5)
    f._subscribed.clear()  # as between a reconnect and the SUBSCRIBE confirmation
    f.send(event('todos', 'created', {'n': 'direct'}))
    assert sink.got == [('todos', 'created', {'n': 'direct'})]
    assert [m['data'] for m in raw_messages(raw, 1)] == [{'n': 'direct'}]
    f._subscribed.set()
    f.send(event('todos', 'created', {'n': 'through redis'}))
    got = sink.wait_len(2)
    assert got == [('todos', 'created', {'n': 'direct'}),
                   ('todos', 'created', {'n': 'through redis'})]
    assert f._skip == {}


def test_missing_redis_names_the_extra(monkeypatch, app):
    monkeypatch.setitem(sys.modules, 'redis', None)
    with pytest.raises(RuntimeError, match=r'pip install "flask-feathers\[redis\]" '
                                           r'\(from a checkout: pip install "\.\[redis\]"\)'):
        RedisFanout(SHARED_REDIS, Sink())
    app.config['FEATHERS_MESSAGE_QUEUE'] = SHARED_REDIS
    with pytest.raises(RuntimeError, match=r'flask-feathers\[redis\]'):
        Feathers(app)


def test_redact_hides_the_password():
    assert redact('redis://user:secret@host:6379/0') == 'redis://user:***@host:6379/0'
    assert redact('redis://:secret@host/0') == 'redis://:***@host/0'
    assert redact('redis://host:6379/0') == 'redis://host:6379/0'


# -- wiring through the extension -------------------------------------------------------------------

class CompanyTodos:
    events = ['status']

    def create(self, data, params):
        return dict(data, id=1)

    def created(self, data, params):
        return data if data['company'] == params['user']['company'] else None


def add_client(api, company: str) -> List[tuple]:
    got: List[tuple] = []
    conn = Connection(f'{company}-{uuid.uuid4().hex[:6]}', 'test', {'user': {'company': company}},
                      lambda event, data: got.append((event, data)))
    api.state.connections.add(conn)
    return got


def test_feathers_wiring_config_constructor_and_close(app, channel):
    assert isinstance(Feathers(Flask('plain')).state.fanout, LocalFanout)
    app.config['FEATHERS_MESSAGE_QUEUE'] = 'redis://127.0.0.1:1/0'
    api = Feathers(app, message_queue=SHARED_REDIS, channel=channel)
    try:
        fan = api.state.fanout
        assert isinstance(fan, RedisFanout)
        assert (fan.url, fan.channel, fan.write_only) == (SHARED_REDIS, channel, False)
        assert fan.wait_subscribed(5)
    finally:
        api.close()
    assert f'feathers-redis-{channel}' not in thread_names()

    other = Flask('writer')
    other.config.update(FEATHERS_MESSAGE_QUEUE=SHARED_REDIS, FEATHERS_MESSAGE_QUEUE_WRITE_ONLY=True)
    writer = Feathers(other)
    try:
        assert writer.state.fanout.write_only
        assert writer.state.fanout.channel == DEFAULT_CHANNEL
    finally:
        writer.close()
    with pytest.raises(ValueError, match='FEATHERS_MESSAGE_QUEUE'):
        Feathers(Flask('bad'), write_only=True)


def test_two_apps_share_standard_and_custom_events_filtered_per_process(channel):
    apis, apps = [], []
    try:
        for name in ('one', 'two'):
            apps.append(Flask(name))
            api = Feathers(apps[-1], message_queue=SHARED_REDIS, channel=channel)
            api.use('todos', CompanyTodos())
            apis.append(api)
            assert api.state.fanout.wait_subscribed(5)
        one, two = apis
        acme_two, globex_two = add_client(two, 'acme'), add_client(two, 'globex')
        acme_one = add_client(one, 'acme')
        with apps[0].app_context():
            for n in range(10):
                one.service('todos').create({'company': ('acme', 'globex')[n % 2], 'n': n})
            one.service('todos').emit('status', {'ok': True})
        wait_for(lambda: len(acme_two) == 6 and len(globex_two) == 6 and len(acme_one) == 6, 10,
                 'the filtered events and the custom event on both apps')
        assert acme_two == acme_one
        assert [d['n'] for e, d in acme_two if e == 'todos created'] == [0, 2, 4, 6, 8]
        assert [d['n'] for e, d in globex_two if e == 'todos created'] == [1, 3, 5, 7, 9]
        assert acme_two[-1] == globex_two[-1] == ('todos status', {'ok': True})
    finally:
        for api in apis:
            api.close()
