"""A connection that negotiated permessage-deflate still gets broadcasts right (the connection
layer frames shared messages once for the connections without it)."""
from __future__ import annotations

import collections
import json
import socket
from typing import List

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from flask_feathers.testing import wait_for_dispatch

from support.waiting import wait_for
from support.ws import parse_frame
from support.connections import SIO_PATH, make_app


# -- permessage-deflate ------------------------------------------------------------------------

class DeflateClient:
    """A websocket client (wsproto) that offers permessage-deflate; it records whether each data
    frame the server sent was compressed (RSV1) and decodes the messages."""

    offer = True

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.ws = WSConnection(ConnectionType.CLIENT)
        extensions = [PerMessageDeflate()] if self.offer else []
        self.sock.sendall(self.ws.send(Request(host=f'127.0.0.1:{port}', target=path,
                                               extensions=extensions)))
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = self.sock.recv(1)
            assert chunk, 'handshake refused'
            head += chunk
        self.ws.receive_data(head)
        (accepted,) = list(self.ws.events())
        assert isinstance(accepted, AcceptConnection), accepted
        self.extensions = [ext.name for ext in accepted.extensions]
        self.raw = bytearray()
        self.compressed: List[bool] = []  # per data frame
        self.parts: List[str] = []
        self.messages: 'collections.deque[str]' = collections.deque()

    def send(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def _walk(self, data: bytes) -> None:
        self.raw.extend(data)
        while True:
            frame = parse_frame(self.raw)
            if frame is None:
                return
            first, opcode, _ = frame
            if opcode in (0x1, 0x2):
                self.compressed.append(bool(first & 0x40))

    def receive(self, count: int, skip: tuple = (), timeout: float = 10.0) -> List[str]:
        self.sock.settimeout(timeout)
        out: List[str] = []
        while len(out) < count:
            while self.messages and len(out) < count:
                message = self.messages.popleft()
                if message not in skip:
                    out.append(message)
            if len(out) == count:
                break
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                pytest.fail(f'{len(out)} of {count} messages within {timeout} s')
            assert data, f'the server closed the connection after {len(out)} messages'
            self._walk(data)
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    self.parts.append(event.data)
                    if event.message_finished:
                        self.messages.append(''.join(self.parts))
                        self.parts = []
        return out

    def close(self) -> None:
        self.sock.close()


class PlainClient(DeflateClient):
    """The same client without the offer."""

    offer = False


def todo_body(i: int) -> str:
    if i % 5 == 0:
        return f'{i} ' + 'compressible ' * 2000  # 26 KB: several TCP segments
    return f'{i} é ' * i


@pytest.mark.parametrize('transport_name', ['socketio', 'primus'])
def test_a_permessage_deflate_client_gets_broadcasts_right(live_server, stopped_apps,
                                                           transport_name):
    app, api, state = make_app(f'deflate_{transport_name}', sio={'websocket_compression': True},
                               prim={'compression': True})
    stopped_apps(state)
    server = live_server(app)
    path = SIO_PATH if transport_name == 'socketio' else '/primus'
    clients = []
    try:
        clients.append(DeflateClient(server.port, path))
        clients.append(PlainClient(server.port, path))
        assert clients[0].extensions == ['permessage-deflate'], clients[0].extensions
        assert clients[1].extensions == []
        if transport_name == 'socketio':
            for client in clients:
                client.send('40')
            for client in clients:  # events reach a client once it got its CONNECT
                opened, connect = client.receive(2, skip=('2',))
                assert opened.startswith('0{') and connect.startswith('40{'), (opened, connect)
        wait_for(lambda: len(state.connections) == 2, 10, 'both clients connected',
                   lambda: len(state.connections))
        count = 30
        with app.app_context():
            for i in range(count):
                api.service('todos').create({'i': i, 'text': todo_body(i)})
        wait_for_dispatch(api, 10)

        for client in clients:
            if transport_name == 'socketio':
                frames = client.receive(count, skip=('2',))
                assert all(f.startswith('42') for f in frames), [f[:20] for f in frames]
                events = [json.loads(f[2:]) for f in frames]
            else:
                events = [json.loads(f)['data'] for f in client.receive(count)]
            assert [e[0] for e in events] == ['todos created'] * count
            assert [e[1] for e in events] == [{'i': i, 'text': todo_body(i), 'id': i + 1}
                                              for i in range(count)]
        deflated, plain = clients
        assert any(deflated.compressed), 'the client that negotiated compression got no ' \
                                         'compressed frame'
        assert not any(plain.compressed), 'a client without compression got compressed frames'
    finally:
        for client in clients:
            client.close()
