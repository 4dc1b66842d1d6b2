"""The authentication service (flask_feathers/authentication) against the real
@feathersjs/client 5 with its authentication client, Node's @feathersjs/authentication and
bcryptjs, over Socket.IO, REST and Primus."""
import base64
import json
import os

import jwt as pyjwt
import pytest
import requests
import simple_websocket
from flask import Flask

from flask_feathers import Feathers, MemoryService, errors, primus, rest, socketio
from flask_feathers.authentication import (AuthenticationService, JWTStrategy, LocalStrategy,
                                           authenticate, hash_password)
from flask_feathers.hooks import protect
from flask_feathers.testing import realtime_client

SECRET = 'a test secret of more than thirty-two bytes, for HS256'
AUDIENCE = 'https://example.com'
USERS = [('alice@example.com', 'alice-password', 1), ('bob@example.com', 'bob-password', 2)]


def settings(**overrides):
    config = {
        'secret': SECRET, 'entity': 'user', 'service': 'users',
        'authStrategies': ['jwt', 'local'],
        'jwtOptions': {'header': {'typ': 'access'}, 'audience': AUDIENCE, 'algorithm': 'HS256',
                       'expiresIn': '1d'},
        'local': {'usernameField': 'email', 'passwordField': 'password'},
    }
    config.update(overrides)
    return config


def without_password(user):
    # params['user'] is the entity as the users service holds it (as in Feathers 5)
    return {k: v for k, v in user.items() if k != 'password'} if user else user


def make_app(**overrides):
    """Users (passwords hashed, never sent), a ``whoami`` service that needs a signed-in user,
    ``messages`` published to the channel of their company, joined on ``login``."""
    app = Flask('auth_test')
    app.config['FEATHERS_AUTHENTICATION'] = settings(**overrides)
    api = Feathers(app)
    api.configure(rest())
    api.configure(socketio())
    api.configure(primus({'transformer': 'websockets'}))
    api.use('users', MemoryService())
    api.use('messages', MemoryService())
    api.use('whoami', {'find': lambda params: {'user': without_password(params.get('user')),
                                               'provider': params.get('provider')}})
    auth = AuthenticationService(api)
    auth.register('jwt', JWTStrategy())
    auth.register('local', LocalStrategy())
    api.use('authentication', auth)
    api.service('users').hooks(before={'find': [authenticate('jwt')],
                                       'create': [hash_password('password')]},
                               after={'all': [protect('password')]})
    api.service('whoami').hooks(before={'all': [authenticate('jwt')]})
    logins, logouts = [], []

    @api.on('login')
    def join_company(result, params, context):
        logins.append((result['user']['email'], params.get('provider'), context.path))
        connection = params.get('connection')
        if connection is not None:
            api.channel(f"company/{result['user']['companyId']}").join(connection)

    api.on('logout', lambda result, params: logouts.append(result['user']['email']))
    api.on('connection', lambda connection: api.channel('everyone').join(connection))

    @api.service('messages').publish('created')
    def by_company(data, context):
        # companyId 0 is the end-of-test marker every connection gets
        return api.channel('everyone' if data['companyId'] == 0 else f"company/{data['companyId']}")

    with app.app_context():
        for email, password, company in USERS:
            api.service('users').create({'email': email, 'password': password,
                                         'companyId': company})
    app.logins, app.logouts, app.api = logins, logouts, api
    return app


@pytest.fixture
def server(live_server):
    return live_server(make_app())


CLIENT_JS = r"""
const { feathers } = require('@feathersjs/client');
const socketio = require('@feathersjs/socketio-client');
const restClient = require('@feathersjs/rest-client');
const authClient = require('@feathersjs/authentication-client');
const { io } = require('socket.io-client');
const SERVER = process.env.SERVER_URL;
const storage = new authClient.MemoryStorage();
const socketClient = (store = storage) => {
  const app = feathers();
  const socket = io(SERVER, { transports: ['websocket'], forceNew: true, reconnection: false });
  app.configure(socketio(socket));
  app.configure(authClient.default({ storage: store }));
  return app;
};
const httpClient = async () => {  // its own storage, holding the token stored so far
  const own = new authClient.MemoryStorage();
  await own.setItem('feathers-jwt', await storage.getItem('feathers-jwt'));
  const app = feathers();
  app.configure(restClient(SERVER).fetch(fetch));
  app.configure(authClient.default({ storage: own }));
  return app;
};
const failure = async (promise) => {
  try { await promise; return 'no error'; } catch (e) { return [e.name, e.code, e.message]; }
};
"""


def run_client(node, server, script, timeout=60):
    return node(CLIENT_JS + script, timeout=timeout, env={'SERVER_URL': server.url})


def test_sign_in_calls_reauthenticate_and_logout_with_the_feathers_client(node, server):
    out = run_client(node, server, """
    (async () => {
      const app = socketClient();
      out(await failure(app.service('whoami').find()));
      out(await failure(app.authenticate({ strategy: 'local', email: 'alice@example.com',
                                           password: 'wrong' })));
      const result = await app.authenticate({ strategy: 'local', email: 'alice@example.com',
                                              password: 'alice-password' });
      out(Object.keys(result).sort());
      out(result.user);
      out(result.authentication.strategy);
      out(await app.service('whoami').find());
      // a new connection signs in again with the stored token: the same token comes back
      const again = socketClient();
      const re = await again.reAuthenticate();
      out(re.accessToken === result.accessToken);
      out((await again.service('whoami').find()).user.email);
      // REST with the stored token (POST /authentication with the jwt strategy, then the header)
      const http = await httpClient();
      await http.reAuthenticate();
      out(await http.service('whoami').find());
      out(await failure(http.service('users').find({ headers: { Authorization: 'Bearer x' } })));
      await app.logout();
      out(await failure(app.service('whoami').find()));
      out((await again.service('whoami').find()).user.email);  // another connection stays in
      await http.logout();
      out(await failure(http.service('whoami').find()));
      await again.logout();  // (a signed-in socket client signs in again when its socket closes)
      app.io.close(); again.io.close();
      done();
    })();
    """)
    not_authenticated = ['NotAuthenticated', 401, 'Not authenticated']
    assert out[0] == not_authenticated
    assert out[1] == ['NotAuthenticated', 401, 'Invalid login']
    assert out[2] == ['accessToken', 'authentication', 'user']
    assert out[3] == {'email': 'alice@example.com', 'companyId': 1, 'id': 1}  # no password
    assert out[4] == 'local'
    assert out[5] == {'user': {'email': 'alice@example.com', 'companyId': 1, 'id': 1},
                      'provider': 'socketio'}
    assert out[6] is True
    assert out[7] == 'alice@example.com'
    assert out[8] == {'user': {'email': 'alice@example.com', 'companyId': 1, 'id': 1},
                      'provider': 'rest'}
    assert out[9][:2] == ['NotAuthenticated', 401]
    assert out[10] == not_authenticated
    assert out[11] == 'alice@example.com'
    assert out[12] == not_authenticated
    emails = [entry[0] for entry in server.app.logins]
    assert emails == ['alice@example.com'] * 3
    assert server.app.logouts == ['alice@example.com'] * 3


def test_the_token_has_feathers_claims_and_node_verifies_it(node, server):
    r = requests.post(server.url + '/authentication', json={
        'strategy': 'local', 'email': 'bob@example.com', 'password': 'bob-password'}, timeout=10)
    assert r.status_code == 201, r.text
    body = r.json()
    token = body['accessToken']
    header = pyjwt.get_unverified_header(token)
    assert header == {'alg': 'HS256', 'typ': 'access'}
    claims = pyjwt.decode(token, SECRET, algorithms=['HS256'], audience=AUDIENCE)
    assert set(claims) == {'iat', 'exp', 'aud', 'iss', 'sub', 'jti'}
    assert claims['sub'] == '2' and claims['iss'] == 'feathers'
    assert claims['exp'] - claims['iat'] == 86400
    assert body['authentication']['payload'] == claims
    out = node(f"""
    const {{ feathers }} = require('@feathersjs/feathers');
    const {{ AuthenticationService }} = require('@feathersjs/authentication');
    const app = feathers();
    app.set('authentication', {{ secret: {json.dumps(SECRET)}, entity: null,
      authStrategies: [], jwtOptions: {{ audience: {json.dumps(AUDIENCE)}, algorithm: 'HS256',
      issuer: 'feathers' }} }});
    const service = new AuthenticationService(app);
    (async () => {{
      const payload = await service.verifyAccessToken({json.dumps(token)});
      out(payload.sub);
      // and a token Node makes for user 1 works here
      out(await service.createAccessToken({{}}, {{ subject: '1', expiresIn: '1h' }}));
      done();
    }})();
    """)
    assert out[0] == '2'
    r = requests.get(server.url + '/whoami', headers={'Authorization': 'Bearer ' + out[1]},
                     timeout=10)
    assert r.status_code == 200 and r.json()['user']['email'] == 'alice@example.com'


def test_a_bcryptjs_hash_made_by_node_signs_in_here(node, server):
    node_hash = node("out(require('bcryptjs').hashSync('made-in-node', 10)); done();")[0]
    assert node_hash.startswith('$2a$10$')
    with server.app.app_context():  # straight into the store, as a shared user table would be
        server.app.api.service('users').service.create(
            {'email': 'node@example.com', 'password': node_hash, 'companyId': 3}, {})
    r = requests.post(server.url + '/authentication', json={
        'strategy': 'local', 'email': 'node@example.com', 'password': 'made-in-node'}, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()['user'] == {'email': 'node@example.com', 'companyId': 3, 'id': 3}
    # and Node's bcryptjs accepts the hashes made here
    with server.app.app_context():
        stored = server.app.api.service('users').service.get(1, {})['password']
    assert stored.startswith('$2b$10$')
    assert node(f"out(require('bcryptjs').compareSync('alice-password', {json.dumps(stored)})); "
                f"done();") == [True]


def _forged_tokens():
    good = pyjwt.encode({'sub': '1', 'aud': AUDIENCE, 'iss': 'feathers', 'exp': 2 ** 31},
                        SECRET, algorithm='HS256', headers={'typ': 'access'})
    wrong_secret = pyjwt.encode({'sub': '1', 'aud': AUDIENCE, 'iss': 'feathers', 'exp': 2 ** 31},
                                'not the secret, but just as long as the real one is', 'HS256')
    head, body, signature = good.split('.')
    def b64(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b'=').decode()
    alg_none = b64({'alg': 'none', 'typ': 'access'}) + '.' + body + '.'
    changed = head + '.' + b64({'sub': '2', 'aud': AUDIENCE, 'iss': 'feathers',
                                'exp': 2 ** 31}) + '.' + signature
    expired = pyjwt.encode({'sub': '1', 'aud': AUDIENCE, 'iss': 'feathers', 'exp': 1000},
                           SECRET, algorithm='HS256')
    other_audience = pyjwt.encode({'sub': '1', 'aud': 'https://elsewhere', 'iss': 'feathers',
                                   'exp': 2 ** 31}, SECRET, algorithm='HS256')
    return good, {'wrong secret': (wrong_secret, 'invalid signature'),
                  'alg none': (alg_none, 'invalid algorithm'),
                  'changed payload': (changed, 'invalid signature'),
                  'expired': (expired, 'jwt expired'),
                  'other audience': (other_audience, 'jwt audience invalid'),
                  'garbage': ('not.a.token', 'jwt malformed')}


def test_forged_and_expired_tokens_are_refused_on_every_transport(server):
    good, forged = _forged_tokens()
    assert requests.get(server.url + '/whoami', headers={'Authorization': 'Bearer ' + good},
                        timeout=10).status_code == 200
    for name, (token, message) in forged.items():
        for header in ('Bearer ' + token, 'JWT ' + token, token):
            r = requests.get(server.url + '/whoami', headers={'Authorization': header},
                             timeout=10)
            assert (r.status_code, r.json()['message']) == (401, message), (name, header)
        r = requests.post(server.url + '/authentication',
                          json={'strategy': 'jwt', 'accessToken': token}, timeout=10)
        assert (r.status_code, r.json()['name']) == (401, 'NotAuthenticated'), name
        with realtime_client(server.app) as client:
            error, _ = client.call('authentication', 'create',
                                   {'strategy': 'jwt', 'accessToken': token})
            assert (error['code'], error['message']) == (401, message), name
            assert client.call('whoami', 'find')[0]['code'] == 401
        # a handshake carrying it is refused
        refused = realtime_client(server.app, headers={'Authorization': 'Bearer ' + token})
        assert not refused.connected, name
        r = requests.get(server.url + '/primus', headers={
            'Upgrade': 'websocket', 'Connection': 'Upgrade', 'Sec-WebSocket-Version': '13',
            'Sec-WebSocket-Key': base64.b64encode(os.urandom(16)).decode(),
            'Authorization': 'Bearer ' + token}, timeout=10)
        assert (r.status_code, r.json()) == (401, {'error': message}), name


def test_a_socket_handshake_with_the_header_is_signed_in(server):
    good, _ = _forged_tokens()
    with realtime_client(server.app, headers={'Authorization': 'Bearer ' + good}) as client:
        error, result = client.call('whoami', 'find')
        assert error is None and result['user']['email'] == 'alice@example.com'
    ws = simple_websocket.Client.connect(f'ws://127.0.0.1:{server.port}/primus',
                                         headers={'Authorization': 'Bearer ' + good})
    try:
        ws.send(json.dumps({'type': 0, 'data': ['whoami::find', {}], 'id': 1}))
        frame = _primus_ack(ws)
        assert frame['data'][1]['user']['email'] == 'alice@example.com'
    finally:
        ws.close()
    assert [entry[:2] for entry in server.app.logins] == [('alice@example.com', 'socketio'),
                                                          ('alice@example.com', 'primus')]


def _primus_ack(ws):
    while True:
        frame = json.loads(ws.receive(timeout=10))
        if isinstance(frame, dict) and frame.get('type') == 1:
            return frame


PRIMUS_JS = r"""
const Primus = require('primus');
const Socket = Primus.createSocket({ transformer: 'websockets',
                                     plugin: { emitter: require('primus-emitter') } });
const call = (primus, name, ...args) => new Promise((resolve) =>
  primus.send(name, ...args, (error, result) => resolve([error, result])));
"""


def test_primus_signs_in_calls_and_signs_out(node, server):
    out = node(PRIMUS_JS + f"""
    (async () => {{
      const primus = new Socket('{server.url}', {{ strategy: false }});
      out((await call(primus, 'whoami::find', {{}}))[0].name);
      const [error, result] = await call(primus, 'authentication::create',
        {{ strategy: 'local', email: 'bob@example.com', password: 'bob-password' }}, {{}});
      out([error, result.user]);
      out((await call(primus, 'whoami::find', {{}}))[1]);
      out((await call(primus, 'authentication::remove', null, {{}}))[1].user.email);
      out((await call(primus, 'whoami::find', {{}}))[0].name);
      primus.end();
      done();
    }})();
    """)
    assert out[0] == 'NotAuthenticated'
    assert out[1] == [None, {'email': 'bob@example.com', 'companyId': 2, 'id': 2}]
    assert out[2] == {'user': {'email': 'bob@example.com', 'companyId': 2, 'id': 2},
                      'provider': 'primus'}
    assert out[3] == 'bob@example.com'
    assert out[4] == 'NotAuthenticated'


def test_login_moves_the_connection_into_its_company_channel(node, server):
    # Each client prints the messages it got; companyId 0 is a marker every connection gets,
    # after which nothing more of this test arrives (events reach one client in order).
    script = """
    (async () => {
      const own = () => socketClient(new authClient.MemoryStorage());
      const alice = own(), anonymous = own(), bob = own();
      const got = { alice: [], anonymous: [], bob: [] };
      const markers = [];
      for (const [name, app] of Object.entries({ alice, anonymous, bob })) {
        markers.push(new Promise((resolve) => app.service('messages').on('created', (m) => {
          if (m.companyId === 0) resolve(); else got[name].push(m.text);
        })));
      }
      await alice.authenticate({ strategy: 'local', email: 'alice@example.com',
                                 password: 'alice-password' });
      await bob.authenticate({ strategy: 'local', email: 'bob@example.com',
                               password: 'bob-password' });
      await anonymous.service('messages').find().catch(() => null);  // connected
      out('ready');
      await new Promise((resolve) => process.stdin.once('data', resolve));
      await Promise.all(markers);
      out(got);
      await alice.logout();
      out('signed out');
      for (const app of [alice, anonymous, bob]) app.io.close();
      done();
    })();
    """
    import subprocess
    import threading
    proc = subprocess.Popen(['node', '-e', NODE_PRELUDE + CLIENT_JS + script],
                            cwd=os.path.join(os.path.dirname(__file__), 'js'),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, 'SERVER_URL': server.url})
    timer = threading.Timer(60, proc.kill)
    timer.start()
    try:
        assert json.loads(proc.stdout.readline() or 'null') == 'ready', proc.stderr.read()
        api = server.app.api
        with server.app.app_context():
            for company, text in ((1, 'for company 1'), (2, 'for company 2'), (0, 'marker')):
                api.service('messages').create({'companyId': company, 'text': text})
        proc.stdin.write('go\n')
        proc.stdin.flush()
        got = json.loads(proc.stdout.readline() or 'null')
        assert got == {'alice': ['for company 1'], 'anonymous': [], 'bob': ['for company 2']}, \
            proc.stderr.read()
        assert json.loads(proc.stdout.readline() or 'null') == 'signed out'
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        timer.cancel()
        proc.kill()
        proc.communicate()
    # signed out: alice's connection left the company channel
    assert all(conn.params.get('user', {}).get('email') != 'alice@example.com'
               for conn in server.app.api.channel('company/1').connections)


NODE_PRELUDE = (
    "const out = (v) => process.stdout.write(JSON.stringify(v === undefined ? null : v) + '\\n');\n"
    "const done = (code) => setTimeout(() => process.exit(code || 0), 10);\n"
    "process.on('unhandledRejection', (e) => { process.stderr.write(String(e && e.stack || e));"
    " process.exit(3); });\n"
)


def test_an_expiring_token_disconnects_the_socket_and_signs_the_client_out(node, live_server):
    server = live_server(make_app(jwtOptions={'expiresIn': '2s'}))
    out = run_client(node, server, """
    (async () => {
      const app = socketClient();
      await app.authenticate({ strategy: 'local', email: 'alice@example.com',
                               password: 'alice-password' });
      out((await app.service('whoami').find()).user.email);
      // the server disconnects the socket when the token expires
      await new Promise((resolve) => app.io.once('disconnect', resolve));
      out('disconnected');
      const fresh = socketClient();
      out(await failure(fresh.reAuthenticate()));
      out(await storage.getItem('feathers-jwt'));  // the client dropped the expired token
      fresh.io.close();
      done();
    })();
    """)
    assert out[0] == 'alice@example.com'
    assert out[1] == 'disconnected'
    assert out[2] == ['NotAuthenticated', 401, 'jwt expired']
    assert out[3] is None


def test_failed_sign_ins_are_rate_limited_per_username_and_address(live_server):
    app = make_app()
    app.config['FEATHERS_LOGIN_RATE'] = '3/m'
    app.config['FEATHERS_LOGIN_RATE_PER_ADDRESS'] = '5/m'
    server = live_server(app)

    def sign_in(email, password):
        r = requests.post(server.url + '/authentication', json={
            'strategy': 'local', 'email': email, 'password': password}, timeout=10)
        return r.status_code, r.json().get('name')

    assert [sign_in('alice@example.com', 'nope') for _ in range(3)] == \
        [(401, 'NotAuthenticated')] * 3
    # the fourth try, even with the right password, is refused for that username
    assert sign_in('alice@example.com', 'alice-password') == (429, 'TooManyRequests')
    # another user from the same address still may: 2 more failures fill the address's 5
    assert sign_in('bob@example.com', 'bob-password')[0] == 201
    assert [sign_in('nobody@example.com', 'x') for _ in range(2)] == [(401, 'NotAuthenticated')] * 2
    assert sign_in('bob@example.com', 'bob-password') == (429, 'TooManyRequests')
    # a socket (from another address) is refused for the username too
    with realtime_client(app) as client:
        error, _ = client.call('authentication', 'create', {
            'strategy': 'local', 'email': 'alice@example.com', 'password': 'alice-password'})
    assert (error['name'], error['code']) == ('TooManyRequests', 429)


def test_an_unknown_user_costs_the_same_bcrypt_check_as_a_wrong_password(server, monkeypatch):
    import bcrypt
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, 'checkpw', lambda pw, hashed: calls.append(hashed) or
                        real(pw, hashed))
    for email in ('alice@example.com', 'nobody@example.com'):
        r = requests.post(server.url + '/authentication', json={
            'strategy': 'local', 'email': email, 'password': 'wrong'}, timeout=10)
        assert (r.status_code, r.json()['message']) == (401, 'Invalid login')
    assert len(calls) == 2 and all(h.startswith(b'$2b$10$') for h in calls)


def test_bad_sign_in_requests_get_feathers_errors(server):
    cases = [
        ({'strategy': 'nope'}, 'Invalid authentication information (strategy not allowed in '
                               'authStrategies)'),
        ({'email': 'alice@example.com'}, 'Invalid authentication information (no `strategy` set)'),
        ({'strategy': 'local', 'email': 'alice@example.com'}, 'Invalid login'),
        ({'strategy': 'local', 'email': ['x'], 'password': 'y'}, 'Invalid login'),
        ({'strategy': 'jwt'}, 'No access token'),
    ]
    for data, message in cases:
        r = requests.post(server.url + '/authentication', json=data, timeout=10)
        assert (r.status_code, r.json()['message']) == (401, message), data
    r = requests.post(server.url + '/authentication', json=['strategy'], timeout=10)
    assert r.status_code == 400
    r = requests.delete(server.url + '/authentication', timeout=10)
    assert (r.status_code, r.json()['message']) == (401, 'Not authenticated')
    # sign-ins are never broadcast
    with realtime_client(server.app) as client:
        requests.post(server.url + '/authentication', json={
            'strategy': 'local', 'email': 'bob@example.com', 'password': 'bob-password'},
            timeout=10)
        with server.app.app_context():
            server.app.api.service('messages').create({'companyId': 0, 'text': 'marker'})
        names = [name for name, _ in client.received(timeout=10)]
    assert names == ['messages created']


def _app_with(settings_, strategies):
    app = Flask('bad_settings')
    app.config['FEATHERS_AUTHENTICATION'] = settings_
    api = Feathers(app)
    api.use('users', MemoryService())
    auth = AuthenticationService(api)
    for name, strategy in strategies.items():
        auth.register(name, strategy)
    api.use('authentication', auth)
    return app, api


@pytest.mark.parametrize('bad, strategies, message', [
    ({'secret': None}, {'jwt': JWTStrategy}, "need a 'secret' string"),
    ({'service': 'people'}, {'jwt': JWTStrategy}, "'people', which is not registered"),
    ({'service': None}, {'jwt': JWTStrategy}, "need 'service'"),
    ({'local': {'usernameField': 'email'}}, {'local': LocalStrategy}, "'passwordField' setting"),
    ({'jwt': {'expiresIn': '1d'}}, {'jwt': JWTStrategy}, "unknown jwt strategy setting"),
])
def test_settings_are_checked_with_clear_errors(bad, strategies, message):
    app, api = _app_with(settings(**bad), {name: cls() for name, cls in strategies.items()})
    with app.app_context(), pytest.raises(RuntimeError, match=message):
        api.service('users').find()


def test_bad_arguments_fail_at_once():
    with pytest.raises(ValueError, match='at least one strategy'):
        authenticate()
    with pytest.raises(TypeError, match='password field'):
        hash_password('')
    with pytest.raises(TypeError, match='Feathers extension'):
        AuthenticationService(None)
    with pytest.raises(TypeError, match='authenticate'):
        AuthenticationService(Feathers()).register('odd', object())
    app = Flask('bad_duration')
    app.config['FEATHERS_AUTHENTICATION'] = settings(jwtOptions={'expiresIn': 'soon'})
    api = Feathers(app)
    auth = AuthenticationService(api)
    with app.app_context(), pytest.raises(ValueError, match="expiresIn must be"):
        auth.create_access_token({})


def test_internal_calls_pass_the_authenticate_hook_and_errors_stay_feathers_errors(server):
    with server.app.app_context():
        api = server.app.api
        assert api.service('whoami').find() == {'user': None, 'provider': None}
        with pytest.raises(errors.NotAuthenticated, match='Invalid login'):
            api.service('authentication').create({'strategy': 'local',
                                                  'email': 'alice@example.com',
                                                  'password': 'wrong'})
        result = api.service('authentication').create({'strategy': 'local',
                                                       'email': 'alice@example.com',
                                                       'password': 'alice-password'})
        # an internal caller gets the user as the users service holds it
        assert result['user']['password'].startswith('$2b$')
        assert server.app.logins == []  # login fires for client sign-ins only
