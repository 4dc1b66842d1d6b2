"""Sign-in for the demo: pick a user, keep their id in Flask's signed session cookie.

The server never takes a user (or a company) from what a client sends: every transport reads the
session cookie and looks the user up itself.

* REST: :func:`load_user` is a ``before_request`` hook filling ``request.feathers['user']``
  (Express's ``req.feathers`` in the seed).
* Socket.IO: :func:`authorize_socket` is the seed's ``io.use(function (socket, next) {...})``;
  it reads the cookie of the handshake and sets ``socket.feathers['user']``.
* Primus: :func:`authorize_primus` is the seed's ``primus.authorize(function (req, done) {...})``;
  it reads the cookie of the WebSocket upgrade and sets ``req.feathers['user']``.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from flask import (Blueprint, abort, current_app, redirect, request, session, url_for)

from flask_feathers import errors

from .services import USERS, user_by_id

bp = Blueprint('auth', __name__)

SESSION_KEY = 'user_id'


def user_from_cookies(cookies: Mapping[str, str]) -> Optional[Dict[str, Any]]:
    """The signed-in user of a request's cookies (the signed Flask session), or None."""
    interface = current_app.session_interface
    raw = cookies.get(current_app.config['SESSION_COOKIE_NAME'])
    if not raw:
        return None
    serializer = interface.get_signing_serializer(current_app)  # type: ignore[attr-defined]
    if serializer is None:  # no SECRET_KEY: no sessions at all
        return None
    try:
        data = serializer.loads(raw, max_age=int(current_app.permanent_session_lifetime
                                                 .total_seconds()))
    except Exception:  # a forged, stale or foreign cookie is simply no sign-in
        return None
    return user_by_id(data.get(SESSION_KEY)) if isinstance(data, dict) else None


def load_user() -> None:
    """``before_request``: the REST provider merges ``request.feathers`` into params."""
    user = user_by_id(session.get(SESSION_KEY))
    if user is not None:
        request.feathers['user'] = user


def authorize_socket(socket: Any, next: Any) -> None:
    """``io.use``: refuse the connection unless the handshake carries a signed-in session."""
    user = user_from_cookies(socket.request.cookies)
    if user is None:
        return next(errors.NotAuthenticated('Not authenticated! Sign in on the demo page first'))
    socket.feathers['user'] = user  # becomes params['user'] in every call and every filter
    next()


def authorize_primus(req: Any, done: Any) -> None:
    """``primus.authorize``: the same rule for the Primus WebSocket upgrade."""
    user = user_from_cookies(req.cookies)
    if user is None:
        return done(errors.NotAuthenticated('Not authenticated! Sign in on the demo page first'))
    req.feathers['user'] = user
    done()


def _back_to_page() -> Any:
    transport = request.values.get('transport')
    return redirect(url_for('pages.index', transport=transport) if transport
                    else url_for('pages.index'))


@bp.post('/login')
def login() -> Any:
    """Sign in as ``user`` (a username of :data:`demo.services.USERS`); form or query field."""
    username = request.values.get('user', '')
    match = [u for u in USERS if u['username'] == username]
    if not match:
        abort(400, f'Unknown demo user {username!r}; pick one of '
                   f'{", ".join(u["username"] for u in USERS)}')
    session.clear()
    session[SESSION_KEY] = match[0]['id']
    session.permanent = True
    return _back_to_page()


@bp.post('/logout')
def logout() -> Any:
    session.clear()
    return _back_to_page()
