"""Admission, the same for both socket transports: the connect rate per client address and what
a refused client is told (the authorization chains themselves are the providers': ``io.use`` and
``primus.authorize``)."""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

from .. import errors

log = logging.getLogger(__name__)


def connection_refusal(exc: BaseException) -> Optional[Dict[str, Any]]:
    """The wire dict for a refused connection when ``exc`` is a FeathersError, else None."""
    return exc.to_dict() if isinstance(exc, errors.FeathersError) else None


#: What a refused client is told when the hook failed with something other than a FeathersError.
REFUSED_MESSAGE = 'Connection refused by server'


def refusal_message(exc: BaseException, debug: bool) -> str:
    """The message a refused client may see: a FeathersError's own, anything else's only in
    debug (``'str' object has no attribute 'get'`` or a database error says too much)."""
    if isinstance(exc, errors.FeathersError) or debug:
        return str(exc) or REFUSED_MESSAGE
    return REFUSED_MESSAGE


def over_connect_rate(rate: Any, address: Optional[str]) -> Optional[errors.FeathersError]:
    """TooManyRequests when ``address`` is over ``FEATHERS_CONNECT_RATE`` (``rate`` is the
    state's :class:`~flask_feathers.connections.ConnectRate` or None), else None."""
    if rate is None or rate.admit(address):
        return None
    log.info('connection from %s refused: over FEATHERS_CONNECT_RATE', address)
    return errors.TooManyRequests('Too many connections from this address; try again later')


def over_connection_caps(state: Any, address: Optional[str]) -> Optional[errors.FeathersError]:
    """Unavailable (503) when the app holds ``FEATHERS_MAX_CONNECTIONS`` socket connections,
    TooManyRequests (429) when ``address`` holds ``FEATHERS_MAX_CONNECTIONS_PER_ADDRESS``; else
    None. Checked before the authorization hooks run (a refused client costs no hook call)."""
    cap = state.max_connections
    if cap and len(state.connections) >= cap:
        log.warning('connection from %s refused: %d connections, FEATHERS_MAX_CONNECTIONS', address,
                    len(state.connections))
        return errors.Unavailable('This server holds all the connections it may; try another '
                                  'or later')
    per_address = state.max_connections_per_address
    if per_address and state.connections_of(address) >= per_address:
        log.info('connection from %s refused: over FEATHERS_MAX_CONNECTIONS_PER_ADDRESS', address)
        return errors.TooManyRequests('Too many connections from this address')
    return None


def authenticate_handshake(application: Any, connection: Any,
                           headers: Callable[[], Dict[str, str]]) -> None:
    """Sign ``connection`` in when the app has an authentication service and the connection has
    authentication: what ``io.use`` / ``primus.authorize`` put in its ``feathers`` params, else
    its handshake's (Socket.IO) or upgrade request's (Primus) ``Authorization`` header
    (``headers()`` gives them; read only when there is a service). A bad token raises
    NotAuthenticated, which refuses the connection."""
    wrapped = application.authentication()
    if wrapped is None:
        return
    found = headers()
    if 'authorization' in found or connection.params.get('authentication'):
        wrapped.service.authenticate_connection(wrapped, connection, found)
