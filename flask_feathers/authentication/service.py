"""The authentication service: sign-in with strategies, access tokens (JWT), connection login.

Wire behaviour as Feathers 5's ``@feathersjs/authentication`` (docs/protocol.rst, section
"Authentication"): ``create`` on the service answers ``{accessToken, authentication: {strategy,
payload}, user}``; ``remove`` signs out; a socket that signs in keeps ``user`` and
``authentication`` in its params until it signs out, disconnects or its token expires.
"""
from __future__ import annotations

import copy
import time
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .. import errors
from ..extension import FEATHERS_AUTHENTICATION as CONFIG_KEY
from .tokens import _TOKEN_ERRORS, _merge, _need_jwt, duration_seconds

#: Defaults under the app's settings (``jwtOptions`` is merged key by key).
DEFAULT_OPTIONS: Dict[str, Any] = {
    'authStrategies': [],
    'entity': 'user',
    'jwtOptions': {
        'header': {'typ': 'access'},
        'audience': 'https://yourdomain.com',
        'issuer': 'feathers',
        'algorithm': 'HS256',
        'expiresIn': '1d',
    },
}


class AuthenticationService:
    """Feathers 5's authentication service: ``api.use('authentication', AuthenticationService(api))``.

    :param api: the :class:`~flask_feathers.Feathers` extension (before or after ``init_app``).
    :param config_key: where the settings live in ``app.config``.
    :param options: settings merged over the app's (handy in tests and app factories).

    Settings (``app.config['FEATHERS_AUTHENTICATION']``, Feathers' names): ``secret`` (required,
    a string), ``entity`` (``'user'``; None for no entity), ``service`` (the entity service's
    path), ``entityId`` (its id field; else the service's ``id`` attribute, else ``'id'``),
    ``authStrategies`` (the strategies ``create`` accepts), ``parseStrategies`` (those read from
    an ``Authorization`` header; default ``authStrategies``), ``jwtOptions`` (``header``,
    ``audience``, ``issuer``, ``algorithm``, ``expiresIn``, ``notBefore``; merged over
    Feathers' defaults) and one section per strategy (``local``, ``jwt``).
    """

    #: tells the registry this service is an authentication service (see Application.use)
    is_authentication_service = True

    def __init__(self, api: Any, config_key: str = CONFIG_KEY,
                 options: Optional[Mapping[str, Any]] = None) -> None:
        if api is None or not callable(getattr(api, 'use', None)):
            raise TypeError('AuthenticationService(api) needs the Feathers extension object')
        _need_jwt()
        self.app = api
        self.config_key = config_key
        self.options = dict(options or {})
        self.strategies: Dict[str, Any] = {}
        self._listening = False
        #: (app settings, options, merged) of the last read (see configuration)
        self._configuration: Optional[Tuple[Any, Dict[str, Any], Dict[str, Any]]] = None

    def __repr__(self) -> str:
        return f'<AuthenticationService strategies={sorted(self.strategies)}>'

    # -- settings and strategies ------------------------------------------------------------------
    @property
    def configuration(self) -> Dict[str, Any]:
        """The settings: Feathers' defaults, then the app's ``config_key`` entry, then
        ``options``."""
        from flask import current_app, has_app_context
        app_settings: Any = None
        if has_app_context():
            app_settings = current_app.config.get(self.config_key)
        else:
            state = self.app._current(required=False)
            flask_app = state.app if state is not None else None
            if flask_app is not None:
                app_settings = flask_app.config.get(self.config_key)
        if app_settings is not None and not isinstance(app_settings, Mapping):
            raise TypeError(f'app.config[{self.config_key!r}] must be a dict of settings, got '
                            f'{type(app_settings).__name__}')
        cached = self._configuration
        if cached is not None and cached[0] == app_settings and cached[1] == self.options:
            return cached[2]  # read on every authenticated call: merged once per change
        merged = _merge(_merge(DEFAULT_OPTIONS, app_settings), self.options)
        self._configuration = (copy.deepcopy(app_settings), copy.deepcopy(self.options), merged)
        return merged

    def register(self, name: str, strategy: Any) -> None:
        """Add ``strategy`` under ``name`` (``'jwt'``, ``'local'``...)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f'a strategy name is a non-empty string, got {name!r}')
        if not callable(getattr(strategy, 'authenticate', None)):
            raise TypeError(f'strategy {name!r} needs an authenticate(data, params) method')
        set_up = getattr(strategy, 'set_up', None)
        if set_up is not None:
            set_up(self, name)
        self.strategies[name] = strategy

    def get_strategy(self, name: str) -> Any:
        return self.strategies.get(name)

    def entity_id_field(self) -> str:
        """The entity's id field: ``entityId``, else the entity service's ``id``, else
        ``'id'``."""
        config = self.configuration
        service = self.app.service(config['service']) if config.get('service') else None
        return str(config.get('entityId') or getattr(service, 'id', None) or 'id')

    def get_strategies(self, *names: str) -> List[Any]:
        return [self.strategies[name] for name in names if name in self.strategies]

    def _secret(self, override: Optional[str] = None) -> str:
        secret = override or self.configuration.get('secret')
        if not isinstance(secret, str) or not secret:
            raise errors.GeneralError('The authentication settings have no secret')
        return secret

    # -- tokens ------------------------------------------------------------------------------------
    def create_access_token(self, payload: Mapping[str, Any],
                            jwt_options: Optional[Mapping[str, Any]] = None,
                            secret: Optional[str] = None) -> str:
        """A signed JWT of ``payload`` with the claims of ``jwtOptions`` (merged with
        ``jwt_options``): ``iat``, ``exp``, ``aud``, ``iss``, ``sub``, ``jti`` (a new UUID)."""
        options = _merge(self.configuration['jwtOptions'], jwt_options)
        claims = dict(payload)
        now = int(time.time())
        claims.setdefault('iat', now)
        if options.get('expiresIn') is not None:
            claims['exp'] = claims['iat'] + int(duration_seconds(options['expiresIn']))
        if options.get('notBefore') is not None:
            claims['nbf'] = claims['iat'] + int(duration_seconds(options['notBefore'],
                                                                 'notBefore'))
        for option, claim in (('audience', 'aud'), ('issuer', 'iss'), ('subject', 'sub')):
            if options.get(option) is not None:
                claims[claim] = options[option]
        claims['jti'] = options.get('jwtid') or str(uuid.uuid4())
        header = {key: value for key, value in (options.get('header') or {}).items()
                  if key != 'alg'}
        token: str = _need_jwt().encode(claims, self._secret(secret),
                                        algorithm=options.get('algorithm') or 'HS256',
                                        headers=header)
        return token

    def verify_access_token(self, token: Any, jwt_options: Optional[Mapping[str, Any]] = None,
                            secret: Optional[str] = None) -> Dict[str, Any]:
        """The payload of a valid token; NotAuthenticated (with jsonwebtoken's message) for a
        bad, forged or expired one."""
        jwt = _need_jwt()
        if not isinstance(token, str) or not token:
            raise errors.NotAuthenticated('jwt must be provided')
        options = _merge(self.configuration['jwtOptions'], jwt_options)
        algorithms = options.get('algorithms') or options.get('algorithm') or 'HS256'
        if isinstance(algorithms, str):
            algorithms = [algorithms]
        try:
            payload: Dict[str, Any] = jwt.decode(
                token, self._secret(secret), algorithms=list(algorithms),
                audience=options.get('audience'), issuer=options.get('issuer'),
                options={'verify_aud': options.get('audience') is not None})
            return payload
        except jwt.PyJWTError as exc:
            message = next((text for name, text in _TOKEN_ERRORS if isinstance(
                exc, getattr(jwt, name))), 'jwt malformed')
            raise errors.NotAuthenticated(message) from None

    # -- authenticating ------------------------------------------------------------------------
    def authenticate(self, authentication: Any, params: Dict[str, Any], *allowed: str
                     ) -> Dict[str, Any]:
        """Run the strategy ``authentication['strategy']`` names, if it is one of ``allowed``."""
        strategy_name = authentication.get('strategy') if isinstance(authentication, Mapping) \
            else None
        strategy = self.strategies.get(strategy_name) if isinstance(strategy_name, str) else None
        if strategy is None or strategy_name not in allowed:
            detail = ' (no `strategy` set)' if not strategy_name else \
                ' (strategy not allowed in authStrategies)' if strategy_name not in allowed else ''
            raise errors.NotAuthenticated('Invalid authentication information' + detail)
        result: Dict[str, Any] = strategy.authenticate(authentication,
                                                       dict(params, authenticated=True))
        return result

    def parse(self, headers: Mapping[str, Any], *names: str) -> Optional[Dict[str, Any]]:
        """The authentication a request's headers carry (``Authorization: Bearer <token>``), for
        the first of ``names`` whose strategy parses headers; None without any."""
        if not names:
            config = self.configuration
            names = tuple(config.get('parseStrategies') or config.get('authStrategies') or ())
        for strategy in self.get_strategies(*names):
            parse = getattr(strategy, 'parse', None)
            if parse is not None:
                found: Optional[Dict[str, Any]] = parse(headers)
                if found is not None:
                    return found
        return None

    def get_payload(self, auth_result: Dict[str, Any], params: Dict[str, Any]) -> Dict[str, Any]:
        """The token's own payload (``params['payload']`` or empty); override to add claims."""
        return dict(params.get('payload') or {})

    def get_token_options(self, auth_result: Dict[str, Any], params: Dict[str, Any]
                          ) -> Dict[str, Any]:
        """JWT options for this sign-in: the subject is the entity's id as a string."""
        config = self.configuration
        options = _merge(params.get('jwtOptions') or {}, params.get('jwt'))
        entity = config.get('entity')
        value = auth_result.get(entity) if config.get('service') and entity else None
        if value and not options.get('subject'):
            field = self.entity_id_field()
            subject = value.get(field) if isinstance(value, Mapping) else None
            if subject is None:
                raise errors.NotAuthenticated(f'Can not set subject from {entity}.{field}')
            options['subject'] = str(subject)
        return options

    # -- the service methods -------------------------------------------------------------------
    def create(self, data: Any, params: Dict[str, Any]) -> Dict[str, Any]:
        """Sign in: ``{strategy, ...}`` -> ``{accessToken, authentication, user}``."""
        if not isinstance(data, Mapping):
            raise errors.BadRequest('Sign in with an object like {"strategy": "local", ...}')
        strategies = params.get('authStrategies') or self.configuration.get('authStrategies')
        if not strategies:
            raise errors.NotAuthenticated('No authentication strategies allowed for creating a '
                                          'JWT (`authStrategies`)')
        auth_result = self.authenticate(data, params, *strategies)
        if auth_result.get('accessToken'):
            return auth_result
        payload = self.get_payload(auth_result, params)
        options = self.get_token_options(auth_result, params)
        token = self.create_access_token(payload, options, params.get('secret'))
        authentication = dict(auth_result.get('authentication') or {})
        authentication['payload'] = _need_jwt().decode(token, options={'verify_signature': False})
        return {'accessToken': token, **auth_result, 'authentication': authentication}

    def remove(self, id: Any, params: Dict[str, Any]) -> Dict[str, Any]:
        """Sign out: verifies the caller's authentication (``id``, when given, must be its
        access token) and answers it."""
        authentication = params.get('authentication')
        if not isinstance(authentication, Mapping):
            raise errors.NotAuthenticated('Not authenticated')
        if id is not None and id != authentication.get('accessToken'):
            raise errors.NotAuthenticated('Invalid access token')
        return self.authenticate(authentication, params,
                                 *(self.configuration.get('authStrategies') or ()))

    def setup(self, app: Any, path: str) -> None:
        """Check the settings, and hook sign-in and sign-out on the service at ``path``."""
        config = self.configuration
        if not isinstance(config.get('secret'), str) or not config['secret']:
            raise ValueError(f"the authentication settings (app.config[{self.config_key!r}]) "
                             f"need a 'secret' string")
        application = app._application()
        if config.get('entity') is not None:
            if not config.get('service'):
                raise ValueError("the authentication settings need 'service' (the path of the "
                                 "users service), or 'entity': None")
            if application.lookup(str(config['service']).strip('/')) is None:
                raise ValueError(f"the authentication settings name the service "
                                 f"{config['service']!r}, which is not registered")
        for strategy in self.strategies.values():
            verify = getattr(strategy, 'verify_configuration', None)
            if verify is not None:
                verify()
        wrapped = application.lookup(path)
        if wrapped is not None:
            # Straight onto this app's service (not recorded for replay: setup runs per app).
            wrapped._hooks.register(around={'create': [self._connection_hook('login')],
                                            'remove': [self._connection_hook('logout')]})
        if not self._listening:
            self._listening = True
            app.on('disconnect', self._on_disconnect)

    # -- connections ---------------------------------------------------------------------------
    def _connection_hook(self, event: str) -> Callable[..., None]:
        def authentication_events(context: Any, next: Callable[[], Any]) -> None:
            next()
            context.event = None  # sign-ins are never broadcast
            params = context.params
            connection = params.get('connection')
            if connection is not None and context.result:
                self.handle_connection(event, connection, context.result)
            if params.get('provider') and context.result:
                context.app.emit(event, context.result, params, context)
        authentication_events.__name__ = f'authentication_{event}'
        return authentication_events

    def handle_connection(self, event: str, connection: Any,
                          result: Optional[Dict[str, Any]] = None) -> None:
        """Every strategy's ``handle_connection`` for ``'login'``, ``'logout'`` or
        ``'disconnect'``; a signed-out connection then leaves every channel."""
        for strategy in self.strategies.values():
            handle = getattr(strategy, 'handle_connection', None)
            if handle is not None:
                handle(event, connection, result)
        if event == 'logout':
            self.leave_channels(connection)

    def leave_channels(self, connection: Any) -> None:
        """``connection`` leaves every channel of its app."""
        for state in self.app._states:
            if state.connections.get(connection.id) is connection:
                state.channels._leave_all(connection)

    def authenticate_connection(self, wrapped: Any, connection: Any,
                                headers: Mapping[str, Any]) -> None:
        """Sign a connecting socket in with the authentication its authorization hook set
        (``socket.feathers['authentication']``), else its handshake's ``Authorization`` header
        (a bad token raises NotAuthenticated: the connection is refused)."""
        authentication = connection.params.get('authentication') or self.parse(headers)
        if not authentication:
            return
        connection.params['authentication'] = authentication
        wrapped.create(authentication, {'provider': connection.provider,
                                        'connection': connection,
                                        'headers': dict(headers)})

    def _on_disconnect(self, connection: Any) -> None:
        self.handle_connection('disconnect', connection)
