"""Primus provider end to end: npm primus 8 + primus-emitter, feathers-client 2.x, raw frames."""
import json
import threading

import pytest
import requests
import simple_websocket
from flask import Flask

from flask_feathers import Feathers, errors, primus, rest, socketio

PRIMUS_SOCKET = """
const Primus = require('primus');
const Socket = Primus.createSocket({transformer: 'websockets',
                                    plugin: {emitter: require('primus-emitter')}});
const timeout = (ms, why) => setTimeout(() => fail('timed out: ' + why), ms);
"""


class CompanyTodos:
    """Return-style todos with the seed's company filter on created/updated."""

    def __init__(self):
        self.store = {}

    def find(self, params):
        return list(self.store.values())

    def get(self, id, params):
        try:
            return self.store[int(id)]
        except (KeyError, ValueError):
            raise errors.NotFound(f'No record found for id {id}') from None

    def create(self, data, params):
        record = dict(data, id=len(self.store) + 1, by=(params.get('user') or {}).get('name'))
        self.store[record['id']] = record
        return record

    def update(self, id, data, params):
        self.get(id, params)
        self.store[int(id)] = dict(data, id=int(id))
        return self.store[int(id)]

    def created(self, data, params):
        return data if data.get('companyId') == params['user']['companyId'] else None

    def updated(self, data, params, callback):
        callback(None, data if data.get('companyId') == params['user']['companyId'] else False)


USERS = {'alice': {'name': 'alice', 'companyId': 1}, 'bob': {'name': 'bob', 'companyId': 1},
         'carol': {'name': 'carol', 'companyId': 2}}


def make_app(config=None, with_socketio=False):
    app = Flask('primus_test')
    api = Feathers(app)
    api.configure(rest())

    def authorize(req, done):
        user = USERS.get(req.args.get('user', ''))
        if user is None:
            return done(errors.NotAuthenticated('Unknown user'))
        req.feathers['user'] = user
        done()

    def setup_primus(server):
        server.authorize(authorize)
    api.configure(primus(dict({'transformer': 'websockets'}, **(config or {})), setup_primus))
    if with_socketio:
        def setup_io(io):
            @io.use
            def auth(socket, next):
                user = USERS.get((socket.auth or {}).get('user', ''))
                if user is None:
                    return next(errors.NotAuthenticated('Unknown user'))
                socket.feathers['user'] = user
                next()
        api.configure(socketio(setup_io))
    api.use('todos', CompanyTodos())
    return app, api


@pytest.fixture
def server(live_server):
    app, api = make_app()
    return live_server(app)


def test_acked_calls_errors_and_filtered_events(server, node):
    out = node(PRIMUS_SOCKET + f"""
    timeout(10000, 'events');
    const alice = new Socket('{server.url}?user=alice');
    const bob = new Socket('{server.url}?user=bob');
    const carol = new Socket('{server.url}?user=carol');
    carol.on('todos created', (t) => out({{carol: t}}));
    let opened = 0;
    const go = () => {{
      if (++opened < 3) return;
      alice.send('todos::create', {{text: 'for company 1', companyId: 1}}, {{}}, (err, todo) => {{
        out({{ack: [err, todo]}});
        alice.send('todos::get', 42, {{}}, (err2) => {{
          out({{error: err2}});
          alice.send('create', 'todos', {{text: 'modern', companyId: 2}}, {{}}, (e3, t3) => {{
            out({{modern: [e3, t3]}});
          }});
        }});
      }});
    }};
    [alice, bob, carol].forEach((s) => s.on('open', go));
    bob.on('todos created', (t) => {{ out({{bob: t}}); }});
    carol.on('todos created', () => setTimeout(done, 100));
    """)
    by_key = {}
    for item in out:
        for key, value in item.items():
            by_key.setdefault(key, []).append(value)
    first = {'text': 'for company 1', 'companyId': 1, 'id': 1, 'by': 'alice'}
    assert by_key['ack'] == [[None, first]]
    assert by_key['error'] == [{'name': 'NotFound', 'message': 'No record found for id 42',
                                'code': 404, 'className': 'not-found'}]
    assert by_key['modern'][0][1]['text'] == 'modern'
    assert by_key['bob'] == [first]                      # same company
    assert [t['text'] for t in by_key['carol']] == ['modern']  # only her company's todo


def test_authorize_refusal_is_401_with_json_error(server, node):
    out = node(PRIMUS_SOCKET + f"""
    timeout(5000, 'refusal');
    const s = new Socket('{server.url}?user=mallory', {{reconnect: {{retries: 0}}}});
    s.on('open', () => fail('should have been refused'));
    s.on('error', (e) => {{ out({{message: e.message}}); done(); }});
    """)
    assert out == [{'message': 'Unexpected server response: 401'}]
    r = requests.get(server.url + '/primus?user=mallory', headers={
        'Upgrade': 'websocket', 'Connection': 'Upgrade', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=='}, timeout=5)
    assert r.status_code == 401 and r.json() == {'error': 'Unknown user'}


def test_plain_get_is_426_and_client_library_has_an_etag(server):
    r = requests.get(server.url + '/primus', timeout=5)
    assert r.status_code == 426
    lib = requests.get(server.url + '/primus/primus.js', timeout=5)
    assert lib.status_code == 200 and 'javascript' in lib.headers['Content-Type']
    assert "'/primus'" in lib.text and '__PRIMUS_PATHNAME__' not in lib.text
    again = requests.get(server.url + '/primus/primus.js', timeout=5,
                         headers={'If-None-Match': lib.headers['ETag']})
    assert again.status_code == 304


def test_heartbeat_with_a_short_interval(live_server, node):
    app, _ = make_app({'pingInterval': 200})
    server = live_server(app)
    out = node(PRIMUS_SOCKET + f"""
    timeout(8000, 'heartbeat');
    const s = new Socket('{server.url}?user=alice', {{pingTimeout: 1000}});
    let pings = 0, closed = false;
    s.on('incoming::ping', () => pings++);
    s.on('close', () => {{ closed = true; }});
    s.on('open', () => setTimeout(() => {{
      s.send('todos::find', {{}}, (err, todos) => {{ out({{pings, closed, err}}); done(); }});
    }}, 1500));
    """)
    assert out[0]['closed'] is False and out[0]['err'] is None
    assert out[0]['pings'] >= 3, out


def ws_connect(server, user='alice'):
    return simple_websocket.Client.connect(server.url.replace('http', 'ws') + f'/primus?user={user}')


def close_quietly(ws):
    try:
        ws.close()
    except simple_websocket.ConnectionClosed:
        ws.sock.close()


def receive(ws, timeout=5.0):
    frame = ws.receive(timeout=timeout)
    assert frame is not None, f'no frame within {timeout} s'
    return json.loads(frame)


def test_silent_client_is_dropped(live_server):
    app, _ = make_app({'pingInterval': 200})
    server = live_server(app)
    ws = ws_connect(server)
    try:
        assert receive(ws).startswith('primus::ping::')
        # Never answer: the server drops us after a whole silent interval.
        dropped = threading.Event()

        def wait_close():
            while ws.connected:
                try:
                    if ws.receive(timeout=0.1) is None and not ws.connected:
                        break
                except simple_websocket.ConnectionClosed:
                    break
            dropped.set()
        waiter = threading.Thread(target=wait_close)
        waiter.start()
        assert dropped.wait(15), 'a silent client was not dropped'
        waiter.join(5)
    finally:
        close_quietly(ws)


def test_old_client_pings_get_pongs_and_id_requests_get_the_id(server):
    ws = ws_connect(server)
    try:
        ws.send(json.dumps('primus::ping::1795529598969'))
        assert receive(ws) == 'primus::pong::1795529598969'
        ws.send(json.dumps('primus::id::'))
        answer = receive(ws)
        assert answer.startswith('primus::id::') and len(answer) > len('primus::id::')
    finally:
        close_quietly(ws)


def test_malformed_frames_are_ignored_and_the_connection_keeps_going(server):
    ws = ws_connect(server)
    try:
        for bad in ['{not json', json.dumps({'type': 0, 'data': 'not a list', 'id': 1}),
                    json.dumps({'type': 0, 'data': [], 'id': 2}), '[' * 5000 + ']' * 5000]:
            ws.send(bad)
        ws.send(b'\x00\xff binary')
        ws.send(json.dumps({'type': 0, 'data': ['todos::find', {}], 'id': 7}))
        # Unusable packets that carry an id are answered with BadRequest (the sender would wait
        # for its ack forever); the rest are dropped.
        for ack_id in (1, 2):
            reply = receive(ws)
            assert reply['id'] == ack_id and reply['data'][0]['name'] == 'BadRequest', reply
        assert receive(ws) == {'type': 1, 'id': 7, 'data': [None, []]}
        ws.send(json.dumps({'type': 0, 'data': ['todos::create', 'not an object', {}], 'id': 8}))
        reply = receive(ws)
        assert reply['id'] == 8 and reply['data'][0]['name'] == 'BadRequest'
    finally:
        close_quietly(ws)


def test_oversize_message_closes_only_that_connection(live_server):
    app, _ = make_app({'maxLength': 10000})
    server = live_server(app)
    big, good = ws_connect(server), ws_connect(server, 'bob')
    try:
        big.send(json.dumps({'type': 0, 'data': ['todos::create', {'x': 'y' * 50000}]}))
        with pytest.raises(simple_websocket.ConnectionClosed):
            while True:
                if big.receive(timeout=5) is None:
                    pytest.fail('oversize sender was not closed')
        good.send(json.dumps({'type': 0, 'data': ['todos::find', {}], 'id': 1}))
        assert receive(good)['data'] == [None, []]
    finally:
        close_quietly(big)
        close_quietly(good)


def test_feathers_client_2_over_primus(server, node):
    out = node(PRIMUS_SOCKET + f"""
    timeout(10000, 'feathers-client');
    const feathers = require('feathers-client');
    const socket = new Socket('{server.url}?user=alice');
    const app = feathers().configure(feathers.primus(socket));
    const todos = app.service('todos');
    todos.on('created', (t) => out({{event: t.text}}));
    (async () => {{
      const made = await todos.create({{text: 'via feathers-client', companyId: 1}});
      out({{created: made}});
      out({{found: (await todos.find()).length}});
      out({{got: (await todos.get(made.id)).text}});
      try {{ await todos.get(999); fail('get 999 resolved'); }}
      catch (e) {{ out({{rejected: e.name, code: e.code}}); }}
      setTimeout(done, 200);
    }})();
    """)
    assert {'created': {'text': 'via feathers-client', 'companyId': 1, 'id': 1, 'by': 'alice'}} in out
    assert {'found': 1} in out and {'got': 'via feathers-client'} in out
    assert {'rejected': 'NotFound', 'code': 404} in out
    assert {'event': 'via feathers-client'} in out


def test_custom_spark_events_and_server_send(live_server, node):
    app, api = make_app()
    seen = []

    def on_connection(spark):
        spark.send('news', {'hello': 'world'})

        def on_ping(payload, reply):
            seen.append((spark.feathers['user']['name'], payload))
            reply('pong', payload)
        spark.on('my other event', on_ping)
    api.primus.on('connection', on_connection)
    server = live_server(app)
    out = node(PRIMUS_SOCKET + f"""
    timeout(5000, 'custom events');
    const s = new Socket('{server.url}?user=bob');
    s.on('news', (n) => {{
      out({{news: n}});
      s.send('my other event', {{n: 1}}, (a, b) => {{ out({{reply: [a, b]}}); done(); }});
    }});
    """)
    assert out == [{'news': {'hello': 'world'}}, {'reply': ['pong', {'n': 1}]}]
    assert seen == [('bob', {'n': 1})]


def test_mixed_transports_see_their_own_filtered_events(live_server, node):
    app, api = make_app(with_socketio=True)
    server = live_server(app)
    out = node(PRIMUS_SOCKET + f"""
    timeout(10000, 'mixed');
    const {{ io }} = require('socket.io-client');
    const p1 = new Socket('{server.url}?user=alice');          // company 1 over Primus
    const s2 = io('{server.url}', {{transports: ['websocket'], auth: {{user: 'carol'}}}});  // company 2
    const got = {{p1: [], s2: []}};
    p1.on('todos updated', (t) => got.p1.push(t.text));
    s2.on('todos updated', (t) => got.s2.push(t.text));
    let ready = 0;
    const go = async () => {{
      if (++ready < 2) return;
      const call = (...a) => new Promise((res) => s2.emit(...a, (e, r) => res([e, r])));
      await call('todos::create', {{text: 'c1', companyId: 1}}, {{}});
      await call('todos::create', {{text: 'c2', companyId: 2}}, {{}});
      await call('todos::update', 1, {{text: 'c1 updated', companyId: 1}}, {{}});
      await call('todos::update', 2, {{text: 'c2 updated', companyId: 2}}, {{}});
      p1.send('todos::update', 1, {{text: 'c1 again', companyId: 1}}, {{}}, () => {{
        setTimeout(() => {{ out(got); s2.close(); done(); }}, 300);
      }});
    }};
    p1.on('open', go); s2.on('connect', go);
    """)
    assert out == [{'p1': ['c1 updated', 'c1 again'], 's2': ['c2 updated']}]


def test_unsupported_transformer_and_options_are_refused():
    with pytest.raises(ValueError, match="'sockjs' is not supported; supported: websockets"):
        primus({'transformer': 'sockjs'})
    with pytest.raises(ValueError, match='unknown Primus option'):
        primus({'pathnme': '/x'})
    with pytest.raises(TypeError):
        primus('websockets')


def test_direct_writes_keep_order_when_the_socket_buffer_fills_and_drains(live_server):
    """A frame for a spark with nothing queued is written by the sending thread; once the client's
    socket buffer is full the rest queues for the writer thread. The client still gets every
    event, in order."""
    from flask_feathers import MemoryService
    from flask_feathers.testing import wait_for_dispatch

    from support.ws import assert_events_in_order, events_to_fill_buffers, raw_upgrade, read_frames

    body = 'z' * 20000
    count = events_to_fill_buffers(len(body))
    app = Flask('primus_direct')
    api = Feathers(app)
    api.configure(primus({'transformer': 'websockets', 'pingInterval': 0, 'maxQueue': 10 * count}))
    api.use('todos', MemoryService(paginate=None))
    started = threading.Event()
    api.primus.on('connection', lambda spark: started.set())
    server = live_server(app)
    sock = raw_upgrade(server.port, '/primus')
    try:
        assert started.wait(10), 'the spark never started'
        (spark,) = api.primus.sparks.values()
        assert spark._ws is not None, 'a spark on a plain blocking socket is handed over'
        with app.app_context():
            for i in range(count):  # MBs while the client does not read: never blocks
                api.service('todos').create({'i': i, 'body': body})
        wait_for_dispatch(api, 20)
        queued = spark._ws.backlog_size()
        assert 0 < queued < count, (
            f'{queued} frames queued: the buffer should take the first events directly and '
            'queue the rest')
        assert_events_in_order(read_frames(sock, count), lambda frame: json.loads(frame)['data'],
                               count, body)
    finally:
        sock.close()


@pytest.mark.parametrize('compression', [False, True])
def test_a_broadcast_is_framed_once_for_every_spark(prebuilt_frames, live_server, compression):
    """Every spark without permessage-deflate gets the same websocket frame, built once per event,
    whether or not the server would allow compression."""
    from flask_feathers import MemoryService
    from flask_feathers.testing import wait_for_dispatch

    from support.ws import raw_upgrade, read_frames

    built = prebuilt_frames
    app = Flask('primus_frame_once')
    api = Feathers(app)
    api.configure(primus({'transformer': 'websockets', 'pingInterval': 0,
                          'compression': compression}))
    api.use('todos', MemoryService(paginate=None))
    started = threading.Semaphore(0)
    api.primus.on('connection', lambda spark: started.release())
    server = live_server(app)
    socks = [raw_upgrade(server.port, '/primus') for _ in range(3)]
    try:
        for _ in socks:
            assert started.acquire(timeout=10), 'a spark never started'
        with app.app_context():
            for i in range(20):
                api.service('todos').create({'i': i, 'text': 'é ' * i})
        wait_for_dispatch(api, 10)
        for sock in socks:
            frames = [json.loads(frame) for frame in read_frames(sock, 20)]
            assert [f['data'][0] for f in frames] == ['todos created'] * 20
            assert [f['data'][1]['i'] for f in frames] == list(range(20))
            assert frames[3]['data'][1]['text'] == 'é ' * 3
        # These clients offer no permessage-deflate: even with compression allowed they share
        # the frame (a client that negotiates it frames its own: test_eio_websocket).
        assert len(built) == 20, f'{len(built)} frames built for 20 events to 3 sparks'
    finally:
        for sock in socks:
            sock.close()
