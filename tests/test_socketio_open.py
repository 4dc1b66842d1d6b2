"""A Socket.IO client that opens as a websocket is answered on the connection layer
(``providers/_eio_open.py``, ``Delivery.answer_connect``): the packets engine.io and python-socketio
would send, and whatever is unusual still goes their way (docs/protocol.rst, "Socket.IO connect
over a websocket")."""
import json

import pytest
from flask import Flask

from flask_feathers import Feathers, MemoryService, errors, socketio
from flask_feathers.providers._eio_open import _opens_websocket
from support.ws import SIO_PATH, Closed, RawWS


@pytest.mark.parametrize('query, expected', [
    ('EIO=4&transport=websocket', True),
    ('transport=websocket&EIO=4&companyId=1', True),
    ('EIO=3&transport=websocket', False),
    ('EIO=4&transport=polling', False),
    ('EIO=4', False),
    ('EIO=4&transport=websocket&sid=abc', False),
    ('EIO=4&transport=websocket&j=1', False),
    ('EIO=4&EIO=4&transport=websocket', False),
    ('EIO=4&transport=web%73ocket', False),
    ('', False),
])
def test_which_requests_open_a_new_websocket_session(query, expected):
    assert _opens_websocket(query) is expected


def _server(live_server, seen=None):
    app = Flask('open')
    api = Feathers(app)

    def setup_io(io):
        @io.use
        def authorize(socket, next):
            if seen is not None:
                seen.append((socket.auth, socket.request.headers.get('X-Probe')))
            if (socket.auth or {}).get('user') == 'mallory':
                return next(errors.NotAuthenticated('Not you'))
            socket.feathers['user'] = socket.auth
            next()
    api.configure(socketio(setup_io))
    api.use('todos', MemoryService())
    server = live_server(app)
    # engine.io starts its service task on the first client, which so takes its own way
    first = RawWS(server.port, SIO_PATH)
    assert first.recv_text().startswith('0{')
    first.close()
    return app, server


def _text(ws, prefix):
    """The next text message starting with ``prefix`` (events of other clients are skipped)."""
    while True:
        text = ws.recv_text()
        if text.startswith(prefix):
            return text


def test_open_connect_and_call(live_server):
    seen = []
    app, server = _server(live_server, seen)
    eio = app.extensions['feathers'].io.server.eio
    engineio_requests = []
    handle_request = eio.handle_request
    eio.handle_request = lambda *args: engineio_requests.append(args) or handle_request(*args)
    ws = RawWS(server.port, SIO_PATH + '&x=1', {'X-Probe': 'yes'})
    try:
        assert ws.accepted
        opening = ws.recv_text()
        assert opening[0] == '0'
        assert set(json.loads(opening[1:])) == {'sid', 'upgrades', 'pingTimeout', 'pingInterval',
                                                'maxPayload'}
        assert json.loads(opening[1:])['upgrades'] == []
        ws.send_text('40{"user":"alice"}')
        accepted = ws.recv_text()
        assert accepted.startswith('40{') and json.loads(accepted[2:])['sid']
        assert seen == [({'user': 'alice'}, 'yes')]
        assert engineio_requests == []  # answered on the connection layer
        ws.send_text('420["todos::create",{"text":"a"},{}]')
        ack = json.loads(_text(ws, '430')[3:])
        assert ack[0] is None and ack[1]['text'] == 'a'
    finally:
        ws.close()


@pytest.mark.parametrize('connect, answer', [
    ('40', '40{"sid":'),
    ('40{"user":"bob"}', '40{"sid":'),
    ('40{"user":"mallory"}', '44{"message":"Not you"'),  # refused: CONNECT_ERROR
])
def test_connect_is_answered(live_server, connect, answer):
    _, server = _server(live_server)
    ws = RawWS(server.port, SIO_PATH)
    try:
        ws.recv_text()
        ws.send_text(connect)
        text = ws.recv_text()
        assert text.startswith(answer)
        if text.startswith('44'):  # with the Feathers error as its data
            assert json.loads(text[2:])['data']['name'] == 'NotAuthenticated'
    finally:
        ws.close()


def test_unusual_connects_take_python_socketios_way(live_server):
    _, server = _server(live_server)
    ws = RawWS(server.port, SIO_PATH)
    try:
        ws.recv_text()
        # another namespace: python-socketio's answer (no such namespace)
        ws.send_text('40/admin,')
        assert ws.recv_text().startswith('44/admin,')
        # a CONNECT whose JSON does not parse: python-socketio drops it; the connection stays usable
        ws.send_text('40{broken')
        ws.send_text('40')
        assert ws.recv_text().startswith('40{"sid":')
    except Closed:  # pragma: no cover - the server must not close this connection
        pytest.fail('the server closed the connection')
    finally:
        ws.close()


def test_a_refused_origin_still_gets_engineios_answer(live_server):
    _, server = _server(live_server)
    evil = RawWS(server.port, SIO_PATH, {'Origin': 'http://evil.example'})
    assert not evil.accepted and evil.status == 400
