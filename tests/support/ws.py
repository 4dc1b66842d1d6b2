"""The one hand-written WebSocket client of the tests, on a plain TCP socket.

Library clients (simple-websocket, wsproto, python-socketio, the npm clients) are what users run;
this one is for what they do not allow: sending any frame, even an invalid one (bad UTF-8, lying
length headers, stray continuation frames); a tiny receive buffer; not reading at all; reading the
server's frames byte for byte. :func:`parse_frame` is the one frame reader: :class:`RawWS`,
:func:`read_frames`, :func:`read_close_code` and tests that watch a library client's bytes use it.
"""
from __future__ import annotations

import base64
import os
import socket
import struct
from typing import Any, Callable, Dict, List, Optional, Tuple

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
SIO_PATH = '/socket.io/?EIO=4&transport=websocket'


class Closed(Exception):
    """The server closed the connection."""


# -- frames ----------------------------------------------------------------------------------------

def mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n < 4096:
        return bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    stream = int.from_bytes((key * (n // 4 + 1))[:n], 'big')
    return (int.from_bytes(payload, 'big') ^ stream).to_bytes(n, 'big')


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0,
                 length: Optional[int] = None) -> bytes:
    """One masked client frame; ``length`` may lie about the payload's length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack('!H', n)
    else:
        head += bytes([0x80 | 127]) + struct.pack('!Q', n)
    key = os.urandom(4)
    return head + key + mask(payload, key)


def masked_text(text: str) -> bytes:
    return client_frame(OP_TEXT, text.encode())


def masked_close(code: int) -> bytes:
    return client_frame(OP_CLOSE, code.to_bytes(2, 'big'))


def parse_frame(buf: bytearray) -> Optional[Tuple[int, int, bytes]]:
    """Take one whole unmasked (server) frame off the front of ``buf``: ``(first byte, opcode,
    payload)``, or None while ``buf`` holds less than a frame."""
    if len(buf) < 2:
        return None
    length, head = buf[1] & 0x7F, 2
    if length == 126:
        if len(buf) < 4:
            return None
        length, head = int.from_bytes(buf[2:4], 'big'), 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length, head = int.from_bytes(buf[2:10], 'big'), 10
    if len(buf) < head + length:
        return None
    first, payload = buf[0], bytes(buf[head:head + length])
    del buf[:head + length]
    return first, first & 0x0F, payload


# -- the client ------------------------------------------------------------------------------------

class RawWS:
    """A WebSocket client over a plain socket: any frame can be sent, even an invalid one.

    The handshake is read byte by byte, so nothing after the server's head is taken off the
    socket: a test may then read ``sock`` itself, or not at all (``rcvbuf`` shrinks the kernel's
    receive buffer first). ``recv()`` answers pings and returns ``(opcode, payload)`` of data
    frames; a close frame or end of file raises :class:`Closed`. When the server refuses the
    upgrade, ``status``, ``response_headers`` and ``body`` say how, and the socket is closed.
    """

    def __init__(self, port: int, path: str, headers: Optional[Dict[str, str]] = None,
                 timeout: float = 10.0, rcvbuf: Optional[int] = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(('127.0.0.1', port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.status = 0
        self.response_headers: Dict[str, str] = {}
        self.body = b''
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f'GET {path} HTTP/1.1', f'Host: 127.0.0.1:{port}', 'Upgrade: websocket',
                 'Connection: Upgrade', f'Sec-WebSocket-Key: {key}', 'Sec-WebSocket-Version: 13']
        lines += [f'{k}: {v}' for k, v in (headers or {}).items()]
        head = bytearray()
        try:
            self.sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
            while not head.endswith(b'\r\n\r\n'):
                chunk = self.sock.recv(1)
                if not chunk:
                    break
                head += chunk
        except OSError:
            self.close()
            raise
        first, *rest = head.decode('latin-1').split('\r\n')
        self.status = int(first.split()[1]) if len(first.split()) > 1 else 0
        for line in rest:
            k, _, v = line.partition(':')
            self.response_headers[k.strip().lower()] = v.strip()
        if self.status != 101:
            length = int(self.response_headers.get('content-length', '0') or 0)
            try:
                while len(self.buf) < length:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    self.buf += chunk
            except OSError:
                pass
            self.body = bytes(self.buf)
            self.close()

    @property
    def accepted(self) -> bool:
        return self.status == 101

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, rsv: int = 0,
                   length: Optional[int] = None) -> None:
        self.sock.sendall(client_frame(opcode, payload, fin, rsv, length))

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode('utf-8', 'surrogatepass'))

    def send_binary(self, data: bytes) -> None:
        self.send_frame(OP_BINARY, data)

    def frame(self, timeout: Optional[float] = 10.0) -> Tuple[int, int, bytes]:
        """The next frame of any kind, as :func:`parse_frame` gives it; raises
        ``socket.timeout`` when none comes within ``timeout`` and :class:`Closed` at end of
        file."""
        self.sock.settimeout(timeout)
        while True:
            frame = parse_frame(self.buf)
            if frame is not None:
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed('EOF')
            self.buf += chunk

    def recv(self, timeout: Optional[float] = 10.0) -> Tuple[int, bytes]:
        """The next data frame; raises socket.timeout when none comes within ``timeout`` (None:
        wait as long as it takes)."""
        while True:
            _, opcode, payload = self.frame(timeout)
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                raise Closed(payload[:2].hex() if payload else 'no code')
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                return opcode, payload

    def recv_text(self, timeout: float = 10.0) -> str:
        return self.recv(timeout)[1].decode('utf-8')

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass

    def __enter__(self) -> 'RawWS':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def raw_upgrade(port: int, path: str) -> socket.socket:
    """A WebSocket handshake on a plain TCP socket with a tiny receive buffer (4 KB), in
    blocking mode; the test then reads it itself, or never."""
    ws = RawWS(port, path, rcvbuf=4096)
    assert ws.accepted, f'handshake refused: {ws.status} {ws.body[:200]!r}'
    ws.sock.settimeout(None)
    return ws.sock


def read_frames(sock: socket.socket, count: int, timeout: float = 20,
                skip: Tuple[bytes, ...] = ()) -> List[str]:
    """``count`` text payloads of server frames read from a raw socket, not counting those equal
    to one in ``skip`` (bytes)."""
    sock.settimeout(timeout)
    buf = bytearray()
    out: List[str] = []
    while len(out) < count:
        frame = parse_frame(buf)
        if frame is None:
            chunk = sock.recv(1 << 16)
            assert chunk, f'the server closed the socket after {len(out)} frames'
            buf.extend(chunk)
            continue
        _, opcode, payload = frame
        assert opcode == OP_TEXT, f'unexpected frame opcode {opcode}'
        if payload not in skip:
            out.append(payload.decode())
    return out


def read_close_code(sock: socket.socket, timeout: float = 10.0) -> int:
    """Read server frames until the close frame; its status code (other frames are skipped)."""
    sock.settimeout(timeout)
    buf = bytearray()
    while True:
        frame = parse_frame(buf)
        if frame is not None:
            if frame[1] == OP_CLOSE:
                assert len(frame[2]) >= 2, 'a close frame without a status code'
                return int.from_bytes(frame[2][:2], 'big')
            continue
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f'no close frame within {timeout} s') from None
        except ConnectionResetError:
            raise AssertionError('the connection was reset instead of closed with a close '
                                 'frame') from None
        assert chunk, 'the server hung up without a close frame'
        buf.extend(chunk)


def assert_server_hung_up(sock: socket.socket, what: str, timeout: float = 10.0) -> None:
    """The server closed its end of ``sock``: reading what it buffered ends in end of file (a
    server thread left blocked on the socket would keep it open)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        raise AssertionError(f'the server never closed the socket of {what}') from None
    except ConnectionResetError:
        pass


def events_to_fill_buffers(size: int, least: int = 300) -> int:
    """How many events of ``size`` bytes overflow the kernel's socket buffers for one connection
    (the server's send buffer grows up to ``tcp_wmem``'s maximum), so some must queue."""
    try:
        with open('/proc/sys/net/ipv4/tcp_wmem') as fh:
            most = int(fh.read().split()[2])
    except (OSError, ValueError, IndexError):
        most = 4 * 1024 * 1024
    return max(least, 2 * most // size)


def assert_events_in_order(frames: List[str], decode: Callable[[str], Tuple[str, Any]],
                           count: int, body: str) -> None:
    """``frames`` are ``todos created`` events carrying ``body`` whose ``i`` run from 0 to
    ``count - 1`` in order; ``decode(frame)`` gives a frame's ``(event name, data)``."""
    order = []
    for frame in frames:
        name, data = decode(frame)
        assert name == 'todos created', frame[:60]
        assert data['body'] == body
        order.append(data['i'])
    assert order == list(range(count))
