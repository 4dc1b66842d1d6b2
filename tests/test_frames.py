"""The connection layer's own parser of simple WebSocket frames (transport/websocket.py) gives the
same messages as wsproto, and hands wsproto everything from the first frame it does not take."""
import os
import struct

from hypothesis import given, strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

from flask_feathers.transport.frames import split_simple_frames


def frame(opcode, payload, fin=True, mask=True, rsv=0, long16=False):
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126 and not long16:
        head = bytes([first, (0x80 if mask else 0) | n])
    elif n < 65536:
        head = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack('!H', n)
    else:
        head = bytes([first, (0x80 if mask else 0) | 127]) + struct.pack('!Q', n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def wsproto_events(data):
    proto = Connection(ConnectionType.SERVER)
    try:
        proto.receive_data(data)
        return [_plain(e) for e in proto.events()]
    except Exception as exc:  # noqa: BLE001 - compared as a kind of outcome
        return [type(exc).__name__]


def split_events(data):
    events, rest = split_simple_frames(data)
    out = [_plain(e) for e in events]
    if rest:
        out += wsproto_events(rest)
    return out


def _plain(event):
    if isinstance(event, Message):
        return (type(event).__name__, event.data, event.message_finished)
    if isinstance(event, CloseConnection):
        return ('close', int(event.code), event.reason)
    if isinstance(event, Ping):
        return ('ping', event.payload)
    return (type(event).__name__,)


FRAMES = st.one_of(
    st.text(max_size=300).map(lambda t: frame(1, t.encode())),
    st.binary(max_size=300).map(lambda b: frame(2, b)),
    st.binary(min_size=130, max_size=70000).map(lambda b: frame(2, b)),
    st.binary(max_size=20).map(lambda b: frame(9, b)),                      # ping
    st.just(frame(8, struct.pack('!H', 1000) + b'bye')),                   # close
    st.integers(0, 5100).map(lambda c: frame(8, struct.pack('!H', c))),     # any close code
    st.just(frame(8, b'')),                                                 # close, no code
    st.just(frame(8, b'\x03')),                                             # 1-byte close
    st.just(frame(8, struct.pack('!H', 1000) + b'\xff')),                   # reason not UTF-8
    st.just(frame(8, struct.pack('!H', 1000) + b'x' * 130, long16=True)),   # too long
    st.just(frame(1, b'\xff\xfe')),                                         # not UTF-8
    st.just(frame(1, 'half'.encode(), fin=False)),                          # a fragment
    st.just(frame(0, b' done')),                                            # continuation
    st.just(frame(1, b'no mask', mask=False)),
    st.just(frame(1, b'rsv', rsv=0x40)),
    st.just(frame(2, b'short', long16=True)),                               # not minimal
)


@given(st.lists(FRAMES, max_size=8), st.integers(min_value=0, max_value=20))
def test_the_same_messages_as_wsproto(frames, cut):
    data = b''.join(frames)
    assert split_events(data) == wsproto_events(data)
    # a partial frame at the end goes to wsproto whole (it then waits for the rest)
    if cut and len(data) > cut:
        events, rest = split_simple_frames(data[:-cut])
        assert [_plain(e) for e in events] == split_events(data[:-cut])[:len(events)]


def test_simple_frames_are_taken_and_the_rest_is_handed_on():
    ping = frame(9, b'hi')
    data = frame(1, 'hello'.encode()) + frame(2, b'\x00\x01') + ping + frame(1, b'later')
    events, rest = split_simple_frames(data)
    assert [(type(e), e.data) for e in events] == [(TextMessage, 'hello'),
                                                   (BytesMessage, b'\x00\x01')]
    assert rest == data[-len(ping) - len(frame(1, b'later')):] and rest[0] == 0x89
    # a close ends the list; nothing after it is read
    events, rest = split_simple_frames(frame(8, b'\x03\xe8ok') + frame(1, b'after'))
    assert [(type(e), int(e.code), e.reason) for e in events] == [(CloseConnection, 1000, 'ok')]
    assert rest == b''


_payloads = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.sampled_from([126, 65535, 65536, 70000]).map(lambda n: 'x' * n),
    st.sampled_from([125, 126, 65535, 65536]).map(lambda n: b'\x00' * n))


@given(_payloads)
def test_server_frames_are_the_bytes_wsproto_writes(data):
    from wsproto.frame_protocol import FrameProtocol

    from flask_feathers.transport.frames import encode_frame
    expected = bytes(FrameProtocol(client=False, extensions=[]).send_data(data, True))
    assert encode_frame(data) == expected
