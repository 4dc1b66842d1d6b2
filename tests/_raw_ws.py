"""Raw WebSocket clients on plain TCP sockets, for tests that need control a library client does not
give: a tiny receive buffer, not reading at all, reading the server's frames byte for byte."""
import base64
import os
import socket


def raw_upgrade(port, path):
    """A WebSocket handshake on a plain TCP socket with a tiny receive buffer; then never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(('127.0.0.1', port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n'
                  f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n'
                  f'Sec-WebSocket-Version: 13\r\n\r\n').encode())
    head = b''
    while b'\r\n\r\n' not in head:
        chunk = sock.recv(1)
        assert chunk, 'handshake refused'
        head += chunk
    assert head.startswith(b'HTTP/1.1 101'), head
    return sock


def masked_text(text):
    payload = text.encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frames(sock, count, timeout=20, skip=()):
    """Server-to-client websocket frames (unmasked) from a raw socket: ``count`` text payloads,
    not counting those equal to one in ``skip`` (bytes)."""
    sock.settimeout(timeout)
    buf = bytearray()

    def need(n):
        while len(buf) < n:
            chunk = sock.recv(1 << 16)
            assert chunk, f'the server closed the socket after {len(out)} frames'
            buf.extend(chunk)

    out = []
    while len(out) < count:
        need(2)
        opcode, length, head = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if length == 126:
            need(4)
            length, head = int.from_bytes(buf[2:4], 'big'), 4
        elif length == 127:
            need(10)
            length, head = int.from_bytes(buf[2:10], 'big'), 10
        need(head + length)
        payload = bytes(buf[head:head + length])
        del buf[:head + length]
        assert opcode == 0x1, f'unexpected frame opcode {opcode}'
        if payload not in skip:
            out.append(payload.decode())
    return out


def events_to_fill_buffers(size, least=300):
    """How many events of ``size`` bytes overflow the kernel's socket buffers for one connection
    (the server's send buffer grows up to ``tcp_wmem``'s maximum), so some must queue."""
    try:
        with open('/proc/sys/net/ipv4/tcp_wmem') as fh:
            most = int(fh.read().split()[2])
    except (OSError, ValueError, IndexError):
        most = 4 * 1024 * 1024
    return max(least, 2 * most // size)


def assert_events_in_order(frames, decode, count, body):
    """``frames`` are ``todos created`` events carrying ``body`` whose ``i`` run from 0 to
    ``count - 1`` in order; ``decode(frame)`` gives a frame's ``(event name, data)``."""
    order = []
    for frame in frames:
        name, data = decode(frame)
        assert name == 'todos created', frame[:60]
        assert data['body'] == body
        order.append(data['i'])
    assert order == list(range(count))


def assert_server_hung_up(sock, what, timeout=10.0):
    """The server closed its end of ``sock``: reading what it buffered ends in end of file (a
    server thread left blocked on the socket would keep it open)."""
    import pytest
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        pytest.fail(f'the server never closed the socket of {what}')
    except ConnectionResetError:
        pass
