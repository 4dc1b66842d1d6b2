"""Pure encoding and decoding of Primus frames and primus-emitter packets.

No sockets and no Flask here: the Primus provider feeds every text frame it
receives to :func:`decode` and sends what the ``encode_*`` functions return.

Wire facts (docs/protocol.rst, "Primus", checked against the npm ``primus`` 8 and
``primus-emitter`` 3.1.1 packages):

* Every frame is one text frame holding ``JSON.stringify(value)``, control
  strings included, so a ping travels as ``"primus::ping::1795529598969"``
  with the quotes.
* Control strings are ``primus::<kind>::<value>``: ``ping`` and ``pong`` carry
  a timestamp in ms that the peer echoes unchanged, ``id`` with an empty value
  asks for the connection id and with a value answers it, ``server::close``
  tells the client not to reconnect. Other ``primus::`` strings are plain data,
  as they are to Primus itself.
* primus-emitter packets are objects ``{"type": 0, "data": [name, *args]}``
  (an event, with ``"id": n`` when the sender wants an ack) and
  ``{"type": 1, "id": n, "data": [*args]}`` (the ack).

:func:`decode` never raises: whatever a client sends, the result is one of the
small frozen classes below, :class:`Invalid` with a reason for what cannot be
used.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

__all__ = [
    "PROTOCOL_PREFIX", "PING_PREFIX", "PONG_PREFIX", "ID_PREFIX", "ID_REQUEST",
    "SERVER_CLOSE", "EVENT", "ACK", "MAX_ACK_ID", "SPARK_RESERVED_EVENTS",
    "Ping", "Pong", "Id", "ServerClose", "Event", "Ack", "Data", "Invalid",
    "Frame", "decode", "is_reserved_event",
    "encode_ping", "encode_pong", "encode_id_request", "encode_id",
    "encode_server_close", "encode_event", "encode_ack", "encode_data",
    "ID_REQUEST_FRAME", "SERVER_CLOSE_FRAME", "unusable_event_id", "encode_error_ack",
]

#: Every control string starts with this.
PROTOCOL_PREFIX = "primus::"
#: ``primus::ping::<ms>``: primus 7+ servers send it, primus 5/6 clients too.
PING_PREFIX = "primus::ping::"
#: ``primus::pong::<ms>``: the answer, echoing the ping's value.
PONG_PREFIX = "primus::pong::"
#: ``primus::id::<id>`` answers :data:`ID_REQUEST`.
ID_PREFIX = "primus::id::"
#: What a client sends to ask for its connection id.
ID_REQUEST = "primus::id::"
#: Sent before a deliberate close: the client must not reconnect.
SERVER_CLOSE = "primus::server::close"

#: primus-emitter packet types.
EVENT = 0
ACK = 1

#: Ack ids are positive integers a JavaScript number holds exactly
#: (``Number.MAX_SAFE_INTEGER``); primus-emitter counts them up from 1.
MAX_ACK_ID = 2 ** 53 - 1

#: Event names a server-side spark emits itself; primus-emitter drops incoming
#: events with these names (and any ``incoming::`` / ``outgoing::`` name).
SPARK_RESERVED_EVENTS = frozenset({"readyStateChange", "heartbeat", "error", "data", "end"})

_RESERVED_PREFIXES = ("incoming::", "outgoing::")


@dataclass(frozen=True)
class Ping:
    """``primus::ping::<value>``; answer with ``encode_pong(value)``.

    The value stays the text the peer sent so the pong echoes it exactly.
    """

    value: str


@dataclass(frozen=True)
class Pong:
    """``primus::pong::<value>``, the answer to a ping."""

    value: str


@dataclass(frozen=True)
class Id:
    """``primus::id::<value>``: a request when ``value`` is empty, else the id."""

    value: str

    @property
    def is_request(self) -> bool:
        return self.value == ""


@dataclass(frozen=True)
class ServerClose:
    """``primus::server::close``: the server closes on purpose, do not reconnect."""


@dataclass(frozen=True)
class Event:
    """A primus-emitter event: ``name`` with ``args``; ``ack_id`` when the
    sender waits for an :func:`encode_ack` reply carrying the same id."""

    name: str
    args: Tuple[Any, ...]
    ack_id: Optional[int] = None


@dataclass(frozen=True)
class Ack:
    """A primus-emitter ack: the arguments for the callback registered as ``ack_id``."""

    ack_id: int
    args: Tuple[Any, ...]


@dataclass(frozen=True)
class Data:
    """Any other JSON value, what ``primus.write(value)`` sent."""

    value: Any


@dataclass(frozen=True)
class Invalid:
    """A frame that cannot be used; ``reason`` is meant for a log line."""

    reason: str


Frame = Union[Ping, Pong, Id, ServerClose, Event, Ack, Data, Invalid]


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON.parse does not, and a
    # non-finite number cannot be sent back to a JavaScript peer either.
    raise ValueError(f"{name} is not JSON")


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but JSON true is not the number 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_ack_id(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= MAX_ACK_ID


def decode(frame: Any) -> Frame:
    """Classify one received frame. Never raises.

    :param frame: the text of a WebSocket text frame. Anything else (a binary
        frame's ``bytes``, ``None``) gives :class:`Invalid`.
    """
    if not isinstance(frame, str):
        return Invalid(f"not a text frame ({type(frame).__name__})")
    try:
        value = json.loads(frame, parse_constant=_reject_constant)
    except RecursionError:
        return Invalid("JSON nested too deeply")
    except (ValueError, TypeError) as exc:
        # JSONDecodeError is a ValueError, and so is int()'s digit limit.
        return Invalid(f"invalid JSON: {str(exc)[:100]}")
    if isinstance(value, str):
        return _decode_string(value)
    if isinstance(value, dict) and _is_int(value.get("type")) and value["type"] in (EVENT, ACK):
        return _decode_packet(value)
    return Data(value)


def _decode_string(text: str) -> Frame:
    if not text.startswith(PROTOCOL_PREFIX):
        return Data(text)
    if text.startswith(PING_PREFIX):
        return Ping(text[len(PING_PREFIX):])
    if text.startswith(PONG_PREFIX):
        return Pong(text[len(PONG_PREFIX):])
    if text.startswith(ID_PREFIX):
        return Id(text[len(ID_PREFIX):])
    if text == SERVER_CLOSE:
        return ServerClose()
    # Primus hands unknown primus:: strings to the application as data.
    return Data(text)


def _decode_packet(packet: Dict[str, Any]) -> Frame:
    data = packet.get("data")
    if not isinstance(data, list):
        return Invalid("emitter packet data is not a list")
    if packet["type"] == ACK:
        ack_id = packet.get("id")
        if ack_id is None or not _valid_ack_id(ack_id):
            return Invalid(f"emitter ack with a bad id: {_short(ack_id)}")
        return Ack(ack_id, tuple(data))
    ack_id = packet.get("id")
    if ack_id is not None and not _valid_ack_id(ack_id):
        return Invalid(f"emitter event with a bad ack id: {_short(ack_id)}")
    if not data or not isinstance(data[0], str):
        return Invalid("emitter event without a string name")
    return Event(data[0], tuple(data[1:]), ack_id)


def unusable_event_id(frame: Any) -> Any:
    """The ``id`` of an emitter event packet that :func:`decode` found :class:`Invalid` (a bad ack
    id, data that is not a list, no string name), so the sender can still be answered with an
    error: primus-emitter acks any id that is not null, echoing it. None when there is none or
    the frame is not such a packet."""
    if not isinstance(frame, str):
        return None
    try:
        value = json.loads(frame, parse_constant=_reject_constant)
    except (ValueError, TypeError, RecursionError):
        return None
    if isinstance(value, dict) and value.get("type") == EVENT and _is_int(value["type"]):
        return value.get("id")
    return None


def encode_error_ack(raw_id: Any, error: Any) -> str:
    """An ack packet for :func:`unusable_event_id`'s id (any JSON value, echoed unchecked)
    carrying one error dict."""
    return _dumps({"type": ACK, "id": raw_id, "data": [error]})


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a deeply nested id
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def is_reserved_event(name: str) -> bool:
    """True for event names a client must not trigger on a spark."""
    return name in SPARK_RESERVED_EVENTS or name.startswith(_RESERVED_PREFIXES)


Default = Optional[Callable[[Any], Any]]


def _dumps(value: Any, default: Default = None) -> str:
    """``JSON.stringify(value)``.

    Non-ASCII text stays as it is (what JSON.stringify does, and up to six
    times shorter than \\u escapes), except when it holds a lone surrogate,
    which cannot be sent as UTF-8: then everything is escaped.

    :raises TypeError: for a value JSON cannot hold and ``default`` does not turn
        into one.
    :raises ValueError: for NaN, infinities and circular references.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False, default=default)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=default)
    return text


def _control(prefix: str, value: Union[int, str]) -> str:
    if _is_int(value):
        value = str(value)
    elif not isinstance(value, str):
        raise TypeError(f"a Primus control value must be an int or a str, not {type(value).__name__}")
    return _dumps(prefix + value)


def encode_ping(value: Union[int, str]) -> str:
    """``"primus::ping::<value>"``; ``value`` is usually ``int(time.time() * 1000)``."""
    return _control(PING_PREFIX, value)


def encode_pong(value: Union[int, str]) -> str:
    """``"primus::pong::<value>"``; pass :attr:`Ping.value` unchanged."""
    return _control(PONG_PREFIX, value)


def encode_id(connection_id: str) -> str:
    """``"primus::id::<id>"``, the answer to an :class:`Id` request."""
    return _control(ID_PREFIX, connection_id)


def encode_id_request() -> str:
    """``"primus::id::"``, what a client sends to learn its id."""
    return ID_REQUEST_FRAME


def encode_server_close() -> str:
    """``"primus::server::close"``, sent just before a deliberate close."""
    return SERVER_CLOSE_FRAME


def encode_event(name: str, args: Sequence[Any] = (), ack_id: Optional[int] = None,
                 default: Default = None) -> str:
    """An emitter event packet ``{"type":0,"data":[name,*args]}`` (with ``"id"``
    when ``ack_id`` is given).

    :param default: called for values json cannot encode, like ``json.dumps``'s
        ``default`` (the provider passes the Flask app's JSON provider's).
    """
    if not isinstance(name, str):
        raise TypeError(f"an event name must be a str, not {type(name).__name__}")
    packet: Dict[str, Any] = {"type": EVENT, "data": [name, *args]}
    if ack_id is not None:
        if not _valid_ack_id(ack_id):
            raise ValueError(f"an ack id must be an int from 1 to {MAX_ACK_ID}, not {ack_id!r}")
        packet["id"] = ack_id
    return _dumps(packet, default)


def encode_ack(ack_id: int, args: Sequence[Any] = (), default: Default = None) -> str:
    """An emitter ack packet ``{"type":1,"id":ack_id,"data":[*args]}``, e.g.
    ``encode_ack(1, [None, result])`` or ``encode_ack(1, [error_dict])``."""
    if not _valid_ack_id(ack_id):
        raise ValueError(f"an ack id must be an int from 1 to {MAX_ACK_ID}, not {ack_id!r}")
    return _dumps({"type": ACK, "id": ack_id, "data": list(args)}, default)


def encode_data(value: Any, default: Default = None) -> str:
    """Any JSON value, what ``spark.write(value)`` sends."""
    return _dumps(value, default)


ID_REQUEST_FRAME = json.dumps(ID_REQUEST)
SERVER_CLOSE_FRAME = json.dumps(SERVER_CLOSE)
