"""The demo's page at ``/`` (server-rendered, plus static/demo.js) and the local socket.io-client."""
from __future__ import annotations

from typing import Any, Dict, Optional

from flask import Blueprint, abort, current_app, render_template, request, send_file, url_for

from .services import COMPANIES, DEMO_PASSWORDS, USERS

bp = Blueprint('pages', __name__)

TRANSPORTS = ('primus', 'socketio')
DEFAULT_TRANSPORT = 'primus'


def news_for(todos: Any, user: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The ``news`` event sent on connect (the seed's ``socket.emit('news', ...)``)."""
    if user is None:
        return {'hello': 'world'}
    mine = todos.find({'query': {'companyId': user['companyId']}})
    open_count = sum(1 for t in mine if not t['done'])
    return {'hello': user['name'], 'company': user['company'], 'open': open_count,
            'message': f"Welcome, {user['name']}! {user['company']} has {open_count} open "
                       f"todo{'' if open_count == 1 else 's'}."}


def socketio_client_url() -> str:
    """Where the Socket.IO page loads socket.io-client from: the app itself unless
    ``SOCKETIO_CLIENT_URL`` says otherwise (checked at start-up, see demo.create_app)."""
    return current_app.config.get('SOCKETIO_CLIENT_URL') or url_for('pages.socketio_client')


@bp.get('/')
def index() -> Any:
    return render_index()


def render_index(error: Optional[str] = None) -> str:
    """The page: the sign-in card (with ``error``, e.g. ``Invalid login``) or the todo list."""
    from . import api
    from .auth import current_user
    transport = request.values.get('transport', DEFAULT_TRANSPORT)
    if transport not in TRANSPORTS:
        abort(400, f'Unknown transport {transport!r}; use ?transport=primus or ?transport=socketio')
    user = current_user()
    todos = []
    if user is not None:
        todos = api.service('todos').find({'query': {'companyId': user['companyId'],
                                                     '$sort': {'id': 1}}})
    companies = [(name, [dict(u, password=DEMO_PASSWORDS[u['username']]) for u in USERS
                         if u['companyId'] == cid])
                 for cid, name in COMPANIES.items()]
    names = {u['username']: u['name'] for u in USERS}  # todos keep the author's username
    return render_template('index.html', user=user, todos=todos, transport=transport,
                           transports=TRANSPORTS, companies=companies, error=error,
                           names=names,
                           socketio_client=socketio_client_url())


@bp.get('/socket.io-client.js')
def socketio_client() -> Any:
    """The app's own copy of socket.io.min.js (``SOCKETIO_CLIENT_FILE``)."""
    path = current_app.config.get('SOCKETIO_CLIENT_FILE')
    if not path:
        abort(404)
    return send_file(path, mimetype='application/javascript', max_age=3600)
