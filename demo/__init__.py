"""The flask_feathers demo: real-time todos for two companies.

Run it with ``flask --app demo run`` (``scripts/demo`` installs what it needs first) and open
http://127.0.0.1:5000/. Sign in as a user of Acme or Globex; todos are stored with
:class:`flask_feathers.SQLService` in SQLite under the app's instance folder and reach the other
tabs of the same company live, over Primus (default) or Socket.IO (``/?transport=socketio``).

Configuration (``create_app(config)``, or ``FLASK_<KEY>`` environment variables):

``DEMO_DATABASE_URL``
    where todos live; default ``sqlite:///<instance folder>/demo.db``.
``SOCKETIO_CLIENT_FILE``
    the ``socket.io.min.js`` the demo serves at ``/socket.io-client.js`` for its Socket.IO page;
    default the copy ``scripts/demo`` installs from npm (``demo/js/node_modules``), so the demo
    works offline on both transports. A relative path is taken from the working directory; a
    file that does not exist stops the start with a clear error.
``SOCKETIO_CLIENT_URL``
    load socket.io-client from this URL instead (a CDN, for instance); the demo never does by
    default.
``SECRET_KEY``
    signs the session cookie and the access tokens (``FEATHERS_AUTHENTICATION``'s secret); by
    default a random key kept in ``<instance folder>/secret_key``, so sign-ins survive restarts.
``FEATHERS_MESSAGE_QUEUE`` & co.
    as for any flask_feathers app (see ``demo/multi``).
"""
from __future__ import annotations

import hashlib
import os
import secrets
from typing import Any, Dict, Optional

from flask import Flask

from flask_feathers import Feathers, primus, rest, socketio
from flask_feathers.authentication import AuthenticationService, JWTStrategy, LocalStrategy
from flask_feathers.hooks import protect

from . import auth, pages
from .services import TODO_HOOKS, TODO_METHODS, Todos, Users, todos_table


#: The socket.io-client build scripts/demo installs from npm (demo/js/package.json).
BUNDLED_SOCKETIO_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'js',
                                       'node_modules', 'socket.io-client', 'dist',
                                       'socket.io.min.js')

api = Feathers()


def setup_io(io: Any) -> None:
    """The seed's ``feathers.socketio(function (io) {...})``."""
    io.use(auth.authorize_socket)

    @io.on('connect')
    def news() -> None:  # the seed's socket.emit('news', { hello: 'world' })
        from flask_socketio import emit
        emit('news', pages.news_for(api.service('todos'), _connection_user()))

    @io.on('typing')
    def typing(is_typing: Any = True, *_: Any) -> None:  # a custom event from the client
        user = _connection_user()
        if user is not None:
            api.service('todos').emit('typing', typing_event(user, is_typing))


def _connection_user() -> Optional[Dict[str, Any]]:
    # Inside a Socket.IO handler the request is the handshake; its connection signed in with the
    # session's token (see demo.auth), so its params hold the user.
    # (A connect handler runs before the connection is registered: the session has its params.)
    from flask import request, session
    connection = api.state.connections.get(request.sid)
    params = connection.params if connection is not None else session.get('feathers') or {}
    return params.get('user')


def setup_primus(server: Any) -> None:
    """The seed's ``feathers.primus(config, function (primus) {...})``."""
    server.authorize(auth.authorize_primus)
    app = server.state.app

    @server.on('connection')
    def welcome(spark: Any) -> None:
        user = spark.feathers['user']  # signed in with the session's token (see demo.auth)
        with app.app_context():
            todos = api.service('todos')
        spark.send('news', pages.news_for(todos, user))

        @spark.on('typing')
        def typing(is_typing: Any = True, *_: Any) -> None:  # extra args: an ack, if asked for
            if spark.feathers.get('user') is not None:
                todos.emit('typing', typing_event(spark.feathers['user'], is_typing))


def typing_event(user: Dict[str, Any], is_typing: Any) -> Dict[str, Any]:
    """What ``todos typing`` carries; ``companyId`` lets the filter pick the receivers."""
    return {'userId': user['id'], 'name': user['name'], 'companyId': user['companyId'],
            'typing': bool(is_typing)}


api.configure(rest())
api.configure(socketio(setup_io))
api.configure(primus({'transformer': 'websockets'}, setup_primus))
api.use('users', Users()).hooks(after={'all': [protect('password')]})
authentication = AuthenticationService(api)
authentication.register('jwt', JWTStrategy())
authentication.register('local', LocalStrategy())
api.use('authentication', authentication)


def authentication_settings(secret: str) -> Dict[str, Any]:
    """``FEATHERS_AUTHENTICATION`` of the demo: users sign in with username and password."""
    return {'secret': secret, 'entity': 'user', 'service': 'users',
            'authStrategies': ['jwt', 'local'],
            'jwtOptions': {'audience': 'flask-feathers-demo', 'expiresIn': '1d'},
            'local': {'usernameField': 'username', 'passwordField': 'password'}}


def create_app(config: Optional[Dict[str, Any]] = None,
               instance_path: Optional[str] = None) -> Flask:
    """The demo app; ``config`` overrides everything (tests pass a tmp_path database URL).

    :param instance_path: where the database and the secret key live by default (Flask's
        instance folder, ``instance/`` next to the package, unless given).
    """
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(SESSION_COOKIE_SAMESITE='Lax', SOCKETIO_CLIENT_URL=None,
                      SOCKETIO_CLIENT_FILE=None, DEMO_DATABASE_URL=None)
    app.config.from_prefixed_env()
    app.config.update(config or {})
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config.get('SECRET_KEY'):
        app.config['SECRET_KEY'] = _instance_secret(app)
    # The token key is derived from SECRET_KEY (its own key, and 64 characters whatever
    # SECRET_KEY's length: HS256 wants 32 bytes or more).
    token_secret = hashlib.sha256(b'demo access tokens:' +
                                  str(app.config['SECRET_KEY']).encode()).hexdigest()
    app.config.setdefault('FEATHERS_AUTHENTICATION', authentication_settings(token_secret))
    url = app.config['DEMO_DATABASE_URL'] or \
        'sqlite:///' + os.path.join(app.instance_path, 'demo.db')

    _check_socketio_client(app)
    api.init_app(app)
    # Todos are per app (each has its own database): registered on this app only, unlike the
    # module-level services, which api.use() without app= registers on every app.
    api.use('todos', Todos(_sql_service(todos_table, url)), app=app,
            methods=TODO_METHODS).hooks(TODO_HOOKS)

    app.before_request(auth.load_user)
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    return app


def _check_socketio_client(app: Flask) -> None:
    """Resolve ``SOCKETIO_CLIENT_FILE`` (relative: from the working directory) and check it now,
    not when a browser first asks for it."""
    if app.config.get('SOCKETIO_CLIENT_URL'):
        return
    configured = app.config.get('SOCKETIO_CLIENT_FILE')
    path = os.path.abspath(configured) if configured else BUNDLED_SOCKETIO_CLIENT
    if not os.path.isfile(path):
        if configured:
            raise RuntimeError(f'SOCKETIO_CLIENT_FILE {configured!r} is not a file (resolved to '
                               f'{path}); point it at socket.io.min.js from the socket.io-client '
                               f'npm package')
        raise RuntimeError(f'the Socket.IO page needs socket.io-client, not installed at {path}: '
                           f'run scripts/demo (it runs npm ci in demo/js), or set '
                           f'SOCKETIO_CLIENT_FILE or SOCKETIO_CLIENT_URL')
    app.config['SOCKETIO_CLIENT_FILE'] = path


def _sql_service(table: Any, url: str) -> Any:
    from flask_feathers import SQLService
    return SQLService(table, url, paginate=None)


def _instance_secret(app: Flask) -> str:
    # Written whole, then linked into place: two processes starting together (demo/multi) end up
    # with the same key and never read a half-written file.
    path = os.path.join(app.instance_path, 'secret_key')
    if not os.path.exists(path):
        tmp = f'{path}.{os.getpid()}.{secrets.token_hex(4)}'
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w', encoding='ascii') as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    with open(path, encoding='ascii') as fh:
        return fh.read().strip()


def close_app(app: Flask) -> None:
    """Stop the app's background work and close its database (tests and scripts)."""
    state = app.extensions['feathers']
    state.close()
    if state.io is not None:
        state.io.server.eio.shutdown()
    todos = state.application.lookup('todos')
    if todos is not None:
        todos.service.store.close()


__all__ = ['api', 'create_app', 'close_app']
