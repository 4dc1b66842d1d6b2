"""Channels and publishers: the unit-level rules (end to end in test_channels_e2e.py)."""
import pytest

from flask_feathers.channels import (ALL_EVENTS, Channel, Channels, EventContext, Publishers,
                                     deliveries, union)
from flask_feathers.connections import Connection, ConnectionRegistry


def conn(name, **params):
    return Connection(name, 'socketio', dict(params, provider='socketio'), lambda e, d: None)


@pytest.fixture
def registry():
    return ConnectionRegistry()


@pytest.fixture
def channels(registry):
    return Channels(registry)


def test_named_channels_are_created_on_first_use(channels):
    a = channels.channel('anonymous')
    assert channels.channel('anonymous') is a
    assert channels.names == ['anonymous']
    assert len(a) == 0


def test_join_leave_and_predicates(channels):
    alice, bob = conn('a', company=1), conn('b', company=2)
    chan = channels.channel('all').join(alice, bob)
    assert chan.connections == [alice, bob] and chan.length == 2
    chan.join(alice)
    assert len(chan) == 2
    chan.leave(lambda c: c.params['company'] == 2)
    assert chan.connections == [alice]
    chan.leave(alice)
    assert len(chan) == 0
    with pytest.raises(TypeError, match='connections'):
        chan.join({'user': 'x'})


def test_union_has_no_duplicates_and_keeps_first_data(channels):
    alice, bob, carol = conn('a'), conn('b'), conn('c')
    channels.channel('x').join(alice, bob)
    channels.channel('y').join(bob, carol)
    both = channels.channel('x', 'y')
    assert both.connections == [alice, bob, carol]
    assert channels.channel(['x', 'y']).connections == [alice, bob, carol]
    merged = union([channels.channel('x').send({'v': 1}), channels.channel('y').send({'v': 2})])
    assert merged.data == {'v': 1}


def test_filter_and_send_make_new_channels(channels):
    alice, bob = conn('a', admin=True), conn('b', admin=False)
    chan = channels.channel('all').join(alice, bob)
    admins = chan.filter(lambda c: c.params['admin'])
    assert admins.connections == [alice] and chan.connections == [alice, bob]
    redacted = chan.send({'secret': None})
    assert redacted.data == {'secret': None} and chan.data is None


def test_disconnect_leaves_every_channel(registry, channels):
    alice = conn('a')
    registry.add(alice)
    channels.channel('x').join(alice)
    channels.channel('y').join(alice)
    registry.remove('a')
    assert len(channels.channel('x')) == 0 and len(channels.channel('y')) == 0
    channels.channel('x').join(alice)  # gone connections cannot join again
    assert len(channels.channel('x')) == 0


def test_publisher_precedence():
    channels = Publishers()
    channels.publish = lambda path, event, fn: channels.register(path, event, fn)

    def pub(tag):
        return lambda data, ctx: tag
    assert channels.publisher_for('todos', 'created') is None
    channels.publish(None, ALL_EVENTS, pub('app *'))
    assert channels.publisher_for('todos', 'created')(None, None) == 'app *'
    channels.publish(None, 'created', pub('app created'))
    assert channels.publisher_for('todos', 'created')(None, None) == 'app created'
    assert channels.publisher_for('todos', 'removed')(None, None) == 'app *'
    channels.publish('todos', ALL_EVENTS, pub('todos *'))
    assert channels.publisher_for('todos', 'created')(None, None) == 'todos *'
    assert channels.publisher_for('users', 'created')(None, None) == 'app created'
    channels.publish('todos', 'created', pub('todos created'))
    assert channels.publisher_for('todos', 'created')(None, None) == 'todos created'
    assert channels.publisher_for('todos', 'patched')(None, None) == 'todos *'


def test_deliveries_flatten_once_with_per_channel_data():
    alice, bob = conn('a'), conn('b')
    pairs = deliveries([Channel([alice], {'for': 'a'}), Channel([alice, bob]), None])
    assert pairs == [(alice, {'for': 'a'}), (bob, None)]
    assert deliveries(None) == []
    with pytest.raises(TypeError, match='a channel, a list of channels or None'):
        deliveries(['not a channel'])


class Wrapped:
    service = None


def test_evaluate_without_a_publisher_leaves_the_audience_open():
    assert Publishers().evaluate('todos', 'created', {'id': 1}, Wrapped()) is None


def test_evaluate_groups_the_chosen_connections_by_payload():
    alice, bob, carol = conn('a'), conn('b'), conn('c')
    publishers = Publishers()
    secret = {'id': 1, 'redacted': True}
    seen = []

    def publisher(data, context):
        seen.append(context)
        return [Channel([alice, bob]), Channel([carol, alice], secret)]
    publishers.register('todos', 'created', publisher)
    data = {'id': 1}
    groups = publishers.evaluate('todos', 'created', data, Wrapped())
    assert [(payload, conns) for payload, conns in groups] == [(data, [alice, bob]),
                                                               (secret, [carol])]
    assert groups[0][0] is data, 'the event data itself, not a copy, for the fast path'
    context = seen[0]  # no call's hook context here: an EventContext
    assert isinstance(context, EventContext)
    assert (context.path, context.event, context['data'], context.params) == \
        ('todos', 'created', data, {})


def test_evaluate_a_raising_publisher_or_unsendable_channel_data_sends_nothing(caplog):
    alice, bob = conn('a'), conn('b')
    publishers = Publishers()
    publishers.register('todos', 'created', lambda data, context: 1 / 0)
    publishers.register('todos', 'removed',
                        lambda data, context: [Channel([alice]), Channel([bob], {object()})])
    assert publishers.evaluate('todos', 'created', {}, Wrapped()) == []
    assert 'publisher for' in caplog.text and 'ZeroDivisionError' in caplog.text
    assert publishers.evaluate('todos', 'removed', {}, Wrapped()) == [({}, [alice])]
    assert 'cannot be sent as JSON' in caplog.text
