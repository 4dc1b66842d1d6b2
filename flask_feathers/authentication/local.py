"""The ``local`` strategy: username and password against bcrypt hashes (Feathers 5's
``@feathersjs/authentication-local``), and the ``hash_password`` hook."""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .. import errors
from ..connections import RateWindow
from .strategy import AuthenticationBaseStrategy, without

#: bcrypt reads at most 72 bytes of a password (Node's bcryptjs too): longer ones are cut there,
#: so hashes stay interchangeable with a Node Feathers service.
BCRYPT_MAX_BYTES = 72


def _need_bcrypt() -> Any:
    """bcrypt, or an ImportError naming the extra to install."""
    try:
        import bcrypt
    except ImportError:  # pragma: no cover - the extra is missing
        raise ImportError('the local strategy needs bcrypt: pip install "flask-feathers[auth]"') \
            from None
    return bcrypt


def _password_bytes(password: str) -> bytes:
    return password.encode('utf-8')[:BCRYPT_MAX_BYTES]


class LocalStrategy(AuthenticationBaseStrategy):
    """Signs in with ``{strategy: 'local', <usernameField>: ..., <passwordField>: ...}``.

    Settings (section ``local``): ``usernameField`` and ``passwordField`` (required),
    ``entityUsernameField`` / ``entityPasswordField`` (the entity's fields; default the same),
    ``hashSize`` (bcrypt cost, 10), ``errorMessage`` (``'Invalid login'``). An unknown user and a
    wrong password get the same error in the same time (a bcrypt check runs either way).
    Failed sign-ins are limited per username (``FEATHERS_LOGIN_RATE``) and per client address
    (``FEATHERS_LOGIN_RATE_PER_ADDRESS``): past either, TooManyRequests.
    """

    def __init__(self) -> None:
        self._limits: Optional[Tuple[Any, ...]] = None
        self._dummy_hash: Optional[bytes] = None

    @property
    def configuration(self) -> Dict[str, Any]:
        auth = self.authentication.configuration
        own = super().configuration
        config: Dict[str, Any] = {'hashSize': 10, 'service': auth.get('service'),
                                  'entity': auth.get('entity'), 'entityId': auth.get('entityId'),
                                  'errorMessage': 'Invalid login',
                                  'entityUsernameField': own.get('usernameField'),
                                  'entityPasswordField': own.get('passwordField')}
        config.update(own)
        return config

    def verify_configuration(self) -> None:
        config = self.configuration
        for field in ('usernameField', 'passwordField'):
            if not isinstance(config.get(field), str):
                raise ValueError(f"the '{self.name}' strategy needs a '{field}' setting (in the "
                                 f"authentication settings' '{self.name}' section)")

    def hash_password(self, password: str) -> str:
        """A bcrypt hash (``$2b$``) of ``password`` with the ``hashSize`` cost."""
        bcrypt = _need_bcrypt()
        salt = bcrypt.gensalt(rounds=int(self.configuration['hashSize']))
        hashed: bytes = bcrypt.hashpw(_password_bytes(password), salt)
        return hashed.decode('ascii')

    def compare_password(self, entity: Any, password: str) -> Any:
        """``entity`` when ``password`` matches its hash, else NotAuthenticated."""
        config = self.configuration
        stored = entity.get(config['entityPasswordField']) if isinstance(entity, Mapping) \
            else None
        if not isinstance(stored, str) or not self._matches(password, stored):
            raise errors.NotAuthenticated(config['errorMessage'])
        return entity

    def _matches(self, password: str, stored: str) -> bool:
        bcrypt = _need_bcrypt()
        try:
            return bool(bcrypt.checkpw(_password_bytes(password), stored.encode('ascii')))
        except (ValueError, UnicodeEncodeError):  # not a bcrypt hash
            return False

    def _burn_time(self, password: str) -> None:
        # The same work as a real check, so an unknown user answers as slowly as a known one.
        if self._dummy_hash is None:
            self._dummy_hash = self.hash_password('not a password').encode('ascii')
        _need_bcrypt().checkpw(_password_bytes(password), self._dummy_hash)

    def find_entity(self, username: Any, params: Dict[str, Any]) -> Any:
        config = self.configuration
        service = self.entity_service()
        if service is None:
            raise errors.NotAuthenticated('Could not find entity service')
        query = {config['entityUsernameField']: username, '$limit': 1}
        found = service.find(dict(params, query=query))
        items = found.get('data') if isinstance(found, Mapping) else found
        return items[0] if isinstance(items, list) and items else None

    def _windows(self) -> Tuple[Any, ...]:
        from flask import current_app, has_app_context

        from ..extension import DEFAULTS, FEATHERS_LOGIN_RATE, FEATHERS_LOGIN_RATE_PER_ADDRESS
        config = current_app.config if has_app_context() else DEFAULTS
        per_user = config.get(FEATHERS_LOGIN_RATE, DEFAULTS[FEATHERS_LOGIN_RATE])
        per_address = config.get(FEATHERS_LOGIN_RATE_PER_ADDRESS,
                                 DEFAULTS[FEATHERS_LOGIN_RATE_PER_ADDRESS])
        if self._limits is None or self._limits[0] != (per_user, per_address):
            self._limits = ((per_user, per_address),
                            RateWindow(per_user, FEATHERS_LOGIN_RATE) if per_user else None,
                            RateWindow(per_address, FEATHERS_LOGIN_RATE_PER_ADDRESS)
                            if per_address else None)
        return self._limits[1], self._limits[2]

    def authenticate(self, data: Mapping[str, Any], params: Dict[str, Any]) -> Dict[str, Any]:
        config = self.configuration
        username = data.get(config['usernameField'])
        password = data.get(config['passwordField'])
        message = config['errorMessage']
        if not isinstance(username, str) or not username or not isinstance(password, str) \
                or not password:
            raise errors.NotAuthenticated(message)
        by_user, by_address = self._windows()
        address = client_address(params)
        user_key = username.strip().lower()
        if (by_user is not None and by_user.full(user_key)) or \
                (by_address is not None and by_address.full(address)):
            raise errors.TooManyRequests('Too many failed sign-ins; try again later')
        entity = self.find_entity(username, without(params, 'provider'))
        try:
            if entity is None:
                self._burn_time(password)
                raise errors.NotAuthenticated(message)
            self.compare_password(entity, password)
        except errors.NotAuthenticated:
            if by_user is not None:
                by_user.record(user_key)
            if by_address is not None:
                by_address.record(address)
            raise
        id_field = self.entity_id_field()
        entity_id = entity.get(id_field) if isinstance(entity, Mapping) else None
        if entity_id is None:
            raise errors.NotAuthenticated('Could not get local entity')
        entity_name = config.get('entity') or 'user'
        return {'authentication': {'strategy': self.name},
                entity_name: self.entity_for_client(entity_id, entity, params)}


def client_address(params: Mapping[str, Any]) -> str:
    """The calling client's address: the socket's, or the REST request's."""
    connection = params.get('connection')
    if connection is not None:
        return str(connection.extra.get('address') or '')
    from flask import has_request_context, request
    return str(request.remote_addr or '') if has_request_context() else ''


def hash_password(field: str, strategy: str = 'local') -> Callable[[Any], None]:
    """A before hook (create, update, patch) replacing ``data[field]`` with its bcrypt hash, made
    by the ``strategy`` of the app's authentication service (its ``hashSize``). Data without the
    field passes; a field that is not a string is a BadRequest."""
    if not isinstance(field, str) or not field:
        raise TypeError(f'hash_password() takes the name of the password field, got {field!r}')

    def hash_password_hook(context: Any) -> None:
        if context.type not in ('before', None):
            raise errors.GeneralError('hash_password must be used as a before hook')
        data = context.data
        items = data if isinstance(data, list) else [data]
        if not any(isinstance(item, Mapping) and item.get(field) is not None for item in items):
            return
        auth = context.service._app.authentication()
        local = auth.service.get_strategy(strategy) if auth is not None else None
        if local is None or not callable(getattr(local, 'hash_password', None)):
            raise errors.BadRequest(f"Could not find '{strategy}' strategy to hash password")
        hashed = []
        for item in items:
            if isinstance(item, Mapping) and item.get(field) is not None:
                value = item[field]
                if not isinstance(value, str):
                    raise errors.BadRequest(f'`{field}` must be a string')
                item = dict(item, **{field: local.hash_password(value)})
            hashed.append(item)
        context.data = hashed if isinstance(data, list) else hashed[0]
    return hash_password_hook
