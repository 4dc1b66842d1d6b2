"""WebSocket frames the connection layer reads and writes itself (RFC 6455, section 5), beside
wsproto, which does the rest: :class:`Message`, a server frame built once for many connections, and
:func:`split_simple_frames`, the reader of the frames clients send most (the protocol notes:
docs/protocol.rst, "Connection layer")."""
from __future__ import annotations

import struct
from typing import Any, List, Optional, Tuple, Union

from wsproto.events import BytesMessage, CloseConnection, TextMessage
from wsproto.frame_protocol import CloseReason


class Message:
    """A message framed once for every connection without extensions (server frames are not
    masked, so those connections all get the same bytes)."""

    __slots__ = ('data', '_wire')

    def __init__(self, data: Union[str, bytes]) -> None:
        self.data = data
        self._wire: Optional[bytes] = None

    @property
    def wire(self) -> bytes:
        wire = self._wire
        if wire is None:
            wire = self._wire = encode_frame(self.data)
        return wire


def encode_frame(data: Union[str, bytes]) -> bytes:
    """One whole server data frame without extensions: text for ``str`` (UTF-8), binary for
    ``bytes``; FIN set, no mask (RFC 6455 section 5.2), the bytes wsproto would write, at a
    fraction of the cost of its per-message frame machinery."""
    if isinstance(data, str):
        payload, first = data.encode('utf-8'), 0x81
    else:
        payload, first = bytes(data), 0x82
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return _HEADER_16.pack(first, 126, size) + payload
    return _HEADER_64.pack(first, 127, size) + payload


_HEADER_16 = struct.Struct('!BBH')
_HEADER_64 = struct.Struct('!BBQ')


def split_simple_frames(data: bytes) -> Tuple[List[Any], bytes]:
    """The messages of the whole, masked, unfragmented text and binary frames (no extension
    bits, at most 65,535 bytes) at the start of ``data``, as wsproto's events, and the bytes from
    the first other frame on (a ping, a fragment, a longer or partial frame, text that is not
    UTF-8: wsproto's to parse, or to refuse as it does). A client's close frame with a valid code
    ends the list as wsproto's CloseConnection (nothing after it is read). wsproto's
    generator-based parser was half of the server's GIL time in a reconnect storm, for frames of
    a few bytes."""
    events: List[Any] = []
    at, end = 0, len(data)
    while at + 2 <= end:
        first, second = data[at], data[at + 1]
        opcode = first & 0x0F
        if first & 0xF0 != 0x80 or opcode not in (1, 2, 8) or not second & 0x80:
            break  # not FIN, extension bits, a continuation, ping or pong frame, or unmasked
        length = second & 0x7F
        if opcode == 8 and length > 125:
            break  # a control frame is at most 125 bytes: wsproto refuses it
        head = at + 6
        if length == 126:
            if at + 4 > end:
                break
            length = (data[at + 2] << 8) | data[at + 3]
            if length < 126:
                break  # not the shortest encoding: wsproto's to judge
            head = at + 8
        elif length == 127:
            break
        if head + length > end:
            break  # partial
        mask = data[head - 4:head]
        payload = data[head:head + length]
        if length:
            key = int.from_bytes((mask * (length // 4 + 1))[:length], 'little')
            payload = (int.from_bytes(payload, 'little') ^ key).to_bytes(length, 'little')
        if opcode == 8:
            close = _close_event(payload)
            if close is None:
                break  # a close frame wsproto refuses: its answer
            events.append(close)
            return events, b''
        if opcode == 1:
            try:
                events.append(TextMessage(data=payload.decode('utf-8')))
            except UnicodeDecodeError:
                break
        else:
            events.append(BytesMessage(data=payload))
        at = head + length
    return events, data[at:]


def _close_event(payload: bytes) -> Optional[CloseConnection]:
    """A client's close frame as wsproto reads it, or None for one it would refuse (a 1-byte
    payload, a code a peer may not send, a reason that is not UTF-8)."""
    if not payload:
        return CloseConnection(code=CloseReason.NO_STATUS_RCVD, reason='')
    if len(payload) < 2:
        return None
    code = (payload[0] << 8) | payload[1]
    if 3000 <= code <= 4999:
        known: Any = code
    else:
        try:
            known = CloseReason(code)
        except ValueError:
            return None
        if known in (CloseReason.NO_STATUS_RCVD, CloseReason.ABNORMAL_CLOSURE,
                     CloseReason.TLS_HANDSHAKE_FAILED):
            return None
    try:
        reason = payload[2:].decode('utf-8')
    except UnicodeDecodeError:
        return None
    return CloseConnection(code=known, reason=reason)
