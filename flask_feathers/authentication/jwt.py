"""The ``jwt`` strategy: an access token signs a client in (Feathers 5's ``JWTStrategy``)."""
from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional

from .. import errors
from .strategy import AuthenticationBaseStrategy, without
from .tokens import expiry_timers

#: ``<scheme> <token>`` in an Authorization header
_SCHEMED = re.compile(r'^\s*(\S+)\s+(\S+)\s*$')


class JWTStrategy(AuthenticationBaseStrategy):
    """Signs in with ``{strategy: 'jwt', accessToken}``, parses ``Authorization: Bearer <token>``
    (also ``JWT <token>`` and a bare token), and keeps a signed-in socket's ``user`` and
    ``authentication`` in its params until sign-out, disconnect or the token's expiry (then the
    socket is disconnected: the client reconnects and signs in again, or is signed out).

    Settings (section ``jwt``): ``header`` (``'Authorization'``), ``schemes``
    (``['Bearer', 'JWT']``).
    """

    @property
    def configuration(self) -> Dict[str, Any]:
        auth = self.authentication.configuration
        config: Dict[str, Any] = {'service': auth.get('service'), 'entity': auth.get('entity'),
                                  'entityId': auth.get('entityId'), 'header': 'Authorization',
                                  'schemes': ['Bearer', 'JWT']}
        config.update(super().configuration)
        return config

    def verify_configuration(self) -> None:
        allowed = {'entity', 'entityId', 'service', 'header', 'schemes'}
        for key in super().configuration:
            if key not in allowed:
                raise ValueError(f"unknown jwt strategy setting {key!r} (token options go in "
                                 f"'jwtOptions')")

    def authenticate(self, authentication: Mapping[str, Any], params: Dict[str, Any]
                     ) -> Dict[str, Any]:
        token = authentication.get('accessToken')
        if not token:
            raise errors.NotAuthenticated('No access token')
        payload = self.authentication.verify_access_token(token, params.get('jwt'))
        result: Dict[str, Any] = {'accessToken': token, 'authentication': {
            'strategy': 'jwt', 'accessToken': token, 'payload': payload}}
        entity = self.configuration.get('entity')
        if entity is None:
            return result
        result[entity] = self.get_entity(payload.get('sub'), params)
        return result

    def get_entity(self, entity_id: Any, params: Dict[str, Any]) -> Any:
        """The token's entity: the entity service's ``get`` (internal), then as the caller gets
        it (see :meth:`entity_for_client`)."""
        service = self.entity_service()
        if service is None:
            raise errors.NotAuthenticated('Could not find entity service')
        if entity_id is None:
            raise errors.NotAuthenticated('The access token names no entity (`sub`)')
        internal = dict(without(params, 'provider'), query={})
        try:
            entity = service.get(entity_id, internal)
        except errors.NotFound:
            raise errors.NotAuthenticated('Could not find the entity of this access token') \
                from None
        return self.entity_for_client(entity_id, entity, params)

    def parse(self, headers: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        config = self.configuration
        value = headers.get(str(config['header']).lower())
        if value is None:
            value = headers.get(config['header'])
        if not value or not isinstance(value, str):
            return None
        match = _SCHEMED.match(value)
        if match is not None:
            scheme, token = match.groups()
            if scheme.lower() not in {s.lower() for s in config['schemes']}:
                return None
        else:
            token = value.strip()
        return {'strategy': self.name, 'accessToken': token}

    def handle_connection(self, event: str, connection: Any,
                          result: Optional[Mapping[str, Any]] = None) -> None:
        entity = self.configuration.get('entity') or 'user'
        params = connection.params
        token = (result or {}).get('accessToken')
        current = params.get('authentication')
        if event == 'login' and token:
            payload = ((result or {}).get('authentication') or {}).get('payload') or \
                self.authentication.verify_access_token(token)
            params['authentication'] = {'strategy': self.name, 'accessToken': token}
            if entity in (result or {}):
                params[entity] = result[entity]  # type: ignore[index]
            exp = payload.get('exp')
            if isinstance(exp, (int, float)):
                expiry_timers.schedule(connection, float(exp), self._expired)
            else:
                expiry_timers.cancel(connection)
        elif event == 'disconnect' or (event == 'logout' and isinstance(current, Mapping) and
                                       token and current.get('accessToken') == token):
            params.pop(entity, None)
            params.pop('authentication', None)
            expiry_timers.cancel(connection)

    def _expired(self, connection: Any) -> None:
        self.authentication.handle_connection('disconnect', connection)
        self.authentication.leave_channels(connection)
        connection.disconnect()
