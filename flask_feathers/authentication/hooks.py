"""The ``authenticate`` hook: a service method only for signed-in clients."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .. import errors
from .strategy import without


def authenticate(*strategies: str, service: Optional[str] = None) -> Callable[[Any], None]:
    """A before hook that signs every client call in with one of ``strategies`` (``'jwt'``...):
    the call's ``params['authentication']`` (the socket's sign-in, or REST's ``Authorization``
    header) is verified and ``params['user']`` loaded, or the call fails with NotAuthenticated.
    Internal calls (no ``provider``) without authentication pass.

    :param service: the authentication service's path (default: the first one registered).
    """
    if not strategies or not all(isinstance(s, str) and s for s in strategies):
        raise ValueError('authenticate() needs at least one strategy name, e.g. '
                         "authenticate('jwt')")

    def authenticate_hook(context: Any) -> None:
        if context.type not in ('before', None):
            raise errors.NotAuthenticated('The authenticate hook must be used as a before hook')
        application = context.service._app
        wrapped = application.service(service) if service else application.authentication()
        if wrapped is None or not getattr(wrapped.service, 'is_authentication_service', False):
            raise errors.NotAuthenticated('Could not find a valid authentication service')
        if wrapped is context.service:
            raise errors.NotAuthenticated('The authenticate hook does not need to be used on '
                                          'the authentication service')
        params: Dict[str, Any] = context.params
        if params.get('authenticated') is True:
            return
        authentication = params.get('authentication')
        if authentication:
            result = wrapped.service.authenticate(
                authentication, without(params, 'provider', 'authentication'), *strategies)
            context.params = dict(params, **without(result, 'accessToken'), authenticated=True)
        elif params.get('provider'):
            raise errors.NotAuthenticated('Not authenticated')
    return authenticate_hook
