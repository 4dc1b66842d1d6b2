"""The router: message kinds, where each kind goes, the JSON rule, and the generic pub/sub fan-out
over a backend that implements only the contract (send, listen), here an in-process channel."""
from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from typing import Any, Iterator, List, Union

import pytest

from _scaleout_harness import wait_for
from flask_feathers.backends import Listening
from flask_feathers.backends.pubsub import PubSubFanout, decode, encode
from flask_feathers.fanout import LocalFanout
from flask_feathers.router import Message, MessageKind, Router


class Recorder:
    def __init__(self) -> None:
        self.dispatched: List[tuple] = []
        self.contexts = 0

    def dispatch(self, path: str, event: str, data: Any) -> None:
        self.dispatched.append((path, event, data, self.contexts))

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        self.contexts += 1
        try:
            yield
        finally:
            self.contexts -= 1


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def router(recorder: Recorder) -> Router:
    return Router(recorder.dispatch, LocalFanout, context=recorder.context)


def test_a_service_event_is_dispatched_in_the_context_as_json(router, recorder):
    router.send_event('todos', 'created', {'id': 1, 'when': (1, 2)})
    assert recorder.dispatched == [('todos', 'created', {'id': 1, 'when': [1, 2]}, 1)]


def test_an_event_that_cannot_be_json_is_dropped_and_logged(router, recorder, caplog):
    with caplog.at_level(logging.ERROR, 'flask_feathers.router'):
        router.send_event('todos', 'created', {'bad': object()})
    assert recorder.dispatched == []
    assert any('cannot be sent as JSON' in r.getMessage() for r in caplog.records)


def test_a_broadcast_goes_to_its_provider_only_never_to_the_dispatcher(router, recorder):
    got: List[tuple] = []
    router.broadcast('primus', 'send', {'n': 1})  # no handler yet: nowhere
    router.on_broadcast('primus', lambda event, data: got.append((event, data)))
    router.broadcast('primus', 'write', {'n': 2})
    router.broadcast('other', 'write', {'n': 3})
    assert got == [('write', {'n': 2})]
    assert recorder.dispatched == []


def test_the_kind_not_the_name_decides(router, recorder):
    router.receive(Message.service_event(':primus', 'send', {}))
    assert recorder.dispatched == [(':primus', 'send', {}, 1)]
    assert Message.broadcast('x', 'e', 1).kind is MessageKind.BROADCAST


def test_the_wire_format_round_trips_both_kinds():
    for message in (Message.service_event('todos', 'created', {'id': 1}),
                    Message.broadcast('primus', 'send', [1, 'a'])):
        assert decode(encode(message, 'me', 3)) == (message, 'me', 3)
    # What a producer in another language sends: no origin, no seq, no kind.
    assert decode(b'{"event": "created", "path": "todos", "data": null}') == \
        (Message.service_event('todos', 'created', None), None, None)
    # The previous release's Primus broadcast, and what that release reads of ours (the path).
    assert decode('{"event": "send", "path": ":primus", "data": [1]}') == \
        (Message.broadcast('primus', 'send', [1]), None, None)
    assert json.loads(encode(Message.broadcast('primus', 'write', 1), 'me', 4))['path'] == \
        ':primus'
    for bad in ('[1]', '{"kind": "nope", "event": "e", "path": "p", "data": 1}',
                '{"event": "e", "data": 1}', '{"event": 1, "path": "p", "data": 1}'):
        with pytest.raises((ValueError, TypeError, KeyError)):
            decode(bad)


class MemoryChannel:
    """One in-process pub/sub channel: every listener gets every payload, in one order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: List['queue.Queue[Union[str, bytes]]'] = []


class MemoryBackend:
    """A backend that implements only the contract, over a :class:`MemoryChannel`."""

    name = 'memory'
    errors = (ConnectionError,)
    label = 'the in-process channel'

    def __init__(self, shared: MemoryChannel) -> None:
        self.shared = shared
        self.channel = 'test'

    def send(self, payload: str) -> None:
        with self.shared.lock:
            for q in self.shared.queues:
                q.put(payload)

    def listen(self) -> Iterator[Union[str, bytes, Listening]]:
        mine: 'queue.Queue[Union[str, bytes]]' = queue.Queue()
        with self.shared.lock:
            self.shared.queues.append(mine)
        try:
            yield Listening.SUBSCRIBED
            while True:
                try:
                    yield mine.get(timeout=0.05)
                except queue.Empty:
                    yield Listening.IDLE
        finally:
            with self.shared.lock:
                self.shared.queues.remove(mine)

    def close(self) -> None:
        pass


def test_the_generic_fan_out_works_over_any_backend_of_the_contract():
    shared = MemoryChannel()
    got_a: List[Message] = []
    got_b: List[Message] = []
    a = PubSubFanout(MemoryBackend(shared), got_a.append)
    b = PubSubFanout(MemoryBackend(shared), got_b.append)
    writer_got: List[Message] = []
    writer = PubSubFanout(MemoryBackend(shared), writer_got.append, write_only=True)
    try:
        assert a.wait_subscribed(5) and b.wait_subscribed(5)
        sent = [Message.service_event('todos', 'created', {'n': n}) for n in range(30)]
        for n, message in enumerate(sent):
            (a, b, writer)[n % 3].send(message)
        sent.append(Message.broadcast('primus', 'send', {'last': True}))
        a.send(sent[-1])
        wait_for(lambda: len(got_a) == len(got_b) == 31, 10, 'every message in both processes')
        assert got_a == got_b == sent
        assert writer_got == []
    finally:
        for fanout in (a, b, writer):
            fanout.close()
    assert not a.subscribed
