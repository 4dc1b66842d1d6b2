"""Sign-in for the demo, through flask_feathers' authentication service (local strategy).

The sign-in card posts a username and password to ``/login``, which calls ``create`` on the
``authentication`` service like any client would; the access token it answers is kept in
Flask's signed session cookie. Every transport then signs in with that token, never with
anything else a client sends:

* REST: :func:`load_user` is a ``before_request`` hook putting the token in
  ``request.feathers['authentication']``; the todos' ``authenticate('jwt')`` hook verifies it and
  loads ``params['user']``.
* Socket.IO: :func:`authorize_socket` is the seed's ``io.use(function (socket, next) {...})``;
  it hands the token of the handshake's cookie to ``socket.feathers['authentication']``, and the
  connection is signed in with it before it is admitted (a bad or expired token refuses it).
* Primus: :func:`authorize_primus` is the seed's ``primus.authorize(function (req, done) {...})``,
  the same for the WebSocket upgrade.

Clients that are not browsers can skip the cookie: ``POST /authentication`` with
``{"strategy": "local", "username": ..., "password": ...}`` and send ``Authorization: Bearer
<accessToken>`` (REST, or the socket handshake), as @feathersjs/client does.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from flask import Blueprint, current_app, redirect, request, session, url_for

from flask_feathers import errors

from .services import user_by_id

bp = Blueprint('auth', __name__)

TOKEN_KEY = 'access_token'


def _session_from_cookies(cookies: Mapping[str, str]) -> Dict[str, Any]:
    interface = current_app.session_interface
    raw = cookies.get(current_app.config['SESSION_COOKIE_NAME'])
    serializer = interface.get_signing_serializer(current_app)  # type: ignore[attr-defined]
    if not raw or serializer is None:
        return {}
    try:
        data = serializer.loads(raw, max_age=int(current_app.permanent_session_lifetime
                                                 .total_seconds()))
    except Exception:  # a forged, stale or foreign cookie is simply no sign-in
        return {}
    return data if isinstance(data, dict) else {}


def token_from_cookies(cookies: Mapping[str, str]) -> Optional[str]:
    """The access token a request's signed session cookie holds, or None."""
    token = _session_from_cookies(cookies).get(TOKEN_KEY)
    return token if isinstance(token, str) else None


def user_of_token(token: Optional[str]) -> Optional[Dict[str, Any]]:
    """The demo user a valid access token names (for the page), or None."""
    if not token:
        return None
    from . import api
    try:
        result = api.service('authentication').service.authenticate(
            {'strategy': 'jwt', 'accessToken': token}, {}, 'jwt')
    except errors.FeathersError:  # expired, or signed with another secret
        return None
    return user_by_id(result['user']['id'])


def current_user() -> Optional[Dict[str, Any]]:
    """The signed-in user of this request's session, or None."""
    return user_of_token(session.get(TOKEN_KEY))


def load_user() -> None:
    """``before_request``: the REST provider merges ``request.feathers`` into params."""
    token = session.get(TOKEN_KEY)
    if isinstance(token, str):
        request.feathers['authentication'] = {'strategy': 'jwt', 'accessToken': token}


def authorize_socket(socket: Any, next: Any) -> None:
    """``io.use``: the handshake signs in with the session's token; none refuses it."""
    token = token_from_cookies(socket.request.cookies)
    if token is None:
        return next(errors.NotAuthenticated('Not authenticated! Sign in on the demo page first'))
    socket.feathers['authentication'] = {'strategy': 'jwt', 'accessToken': token}
    next()


def authorize_primus(req: Any, done: Any) -> None:
    """``primus.authorize``: the same rule for the Primus WebSocket upgrade."""
    token = token_from_cookies(req.cookies)
    if token is None:
        return done(errors.NotAuthenticated('Not authenticated! Sign in on the demo page first'))
    req.feathers['authentication'] = {'strategy': 'jwt', 'accessToken': token}
    done()


def _back_to_page() -> Any:
    transport = request.values.get('transport')
    return redirect(url_for('pages.index', transport=transport) if transport
                    else url_for('pages.index'))


@bp.post('/login')
def login() -> Any:
    """Sign in with ``user`` and ``password`` (form or query fields) through the authentication
    service; a wrong password answers the page again with the error (401, or 429 when rate
    limited)."""
    from . import api, pages
    try:
        result = api.service('authentication').create(
            {'strategy': 'local', 'username': request.values.get('user', ''),
             'password': request.values.get('password', '')},
            {'provider': 'rest', 'headers': dict(request.headers)})
    except errors.FeathersError as exc:
        return pages.render_index(error=exc.message), exc.code
    session.clear()
    session[TOKEN_KEY] = result['accessToken']
    session.permanent = True
    return _back_to_page()


@bp.post('/logout')
def logout() -> Any:
    from . import api
    token = session.get(TOKEN_KEY)
    if isinstance(token, str):
        try:  # fires `logout`, as a client's sign-out does
            api.service('authentication').remove(None, {
                'provider': 'rest', 'authentication': {'strategy': 'jwt', 'accessToken': token}})
        except errors.FeathersError:
            pass  # an expired token: signed out anyway
    session.clear()
    return _back_to_page()
