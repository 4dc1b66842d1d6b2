"""What every authentication strategy shares."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping

from .. import errors

if TYPE_CHECKING:
    from .service import AuthenticationService


def without(params: Mapping[str, Any], *keys: str) -> Dict[str, Any]:
    """A copy of ``params`` without ``keys`` (``'provider'``: an internal call's params)."""
    return {key: value for key, value in params.items() if key not in keys}


class AuthenticationBaseStrategy:
    """What strategies share: their name, the service they belong to and their settings (the
    authentication settings' section named like the strategy, e.g. ``'local'``)."""

    name: str = ''
    authentication: 'AuthenticationService'

    def set_up(self, authentication: 'AuthenticationService', name: str) -> None:
        self.authentication = authentication
        self.name = name

    @property
    def configuration(self) -> Dict[str, Any]:
        return dict(self.authentication.configuration.get(self.name) or {})

    def verify_configuration(self) -> None:
        """Raise ValueError for settings the strategy cannot work with (the service's set-up
        calls it, when the app's settings are known)."""

    def entity_service(self) -> Any:
        """The wrapped entity service (``users``), or None when ``service`` is not set."""
        config = self.authentication.configuration
        path = config.get('service')
        if not path:
            return None
        return self.authentication.app.service(path)

    def entity_id_field(self) -> str:
        return self.authentication.entity_id_field()

    def entity_for_client(self, entity_id: Any, entity: Any, params: Dict[str, Any]) -> Any:
        """``entity`` as the entity service sends it to the caller of ``params``: for a client
        call, the service's ``get`` with the client's params through its hooks (so ``protect``
        and other after hooks apply); for an internal call, ``entity`` unchanged."""
        if not params.get('provider'):
            return entity
        service = self.entity_service()
        config = self.authentication.configuration
        get_params = dict(params, query={}, authenticated=True)
        get_params[config.get('entity') or 'user'] = entity
        try:
            return service.call_context('get', (entity_id,), get_params).dispatch
        except errors.NotFound:
            raise errors.NotAuthenticated('Could not find the signed-in entity') from None
