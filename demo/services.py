"""The demo's services: read-only users of two companies, and todos kept per company in SQL.

``Todos`` wraps a :class:`flask_feathers.SQLService`; its hooks (:data:`TODO_HOOKS`) add what the
seed's examples leave to the app: every call from a client (``params['provider']`` set) runs as
``params['user']`` (put there by the ``io.use`` / ``primus.authorize`` / ``before_request``
functions in :mod:`demo.auth`), is limited to that user's company, and a new todo's
``companyId`` comes from the user, never from the client.
The event filters (``created/updated/patched/removed`` and the custom ``typing`` event) send a todo
only to connections of the same company, exactly like the seed's ``updated`` filter.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import sqlalchemy as sa

from flask_feathers import errors
from flask_feathers.authentication import authenticate
from flask_feathers.sql import SQLService

COMPANIES: Dict[int, str] = {1: 'Acme', 2: 'Globex'}

#: The demo's users. Their passwords are shown on the sign-in card (it is a demo); the users
#: service keeps only bcrypt hashes of them, and never sends those (see demo.create_app).
USERS: List[Dict[str, Any]] = [
    {'id': 1, 'username': 'alice', 'name': 'Alice', 'companyId': 1},
    {'id': 2, 'username': 'bob', 'name': 'Bob', 'companyId': 1},
    {'id': 3, 'username': 'carol', 'name': 'Carol', 'companyId': 2},
    {'id': 4, 'username': 'dave', 'name': 'Dave', 'companyId': 2},
]
DEMO_PASSWORDS: Dict[str, str] = {'alice': 'alice-demo', 'bob': 'bob-demo',
                                  'carol': 'carol-demo', 'dave': 'dave-demo'}
_HASHES: Dict[str, str] = {}


def password_hash(username: str) -> str:
    """The bcrypt hash of a demo user's password (made once per process)."""
    if username not in _HASHES:
        import bcrypt
        _HASHES[username] = bcrypt.hashpw(DEMO_PASSWORDS[username].encode(),
                                          bcrypt.gensalt(10)).decode()
    return _HASHES[username]

MAX_TEXT = 200

metadata = sa.MetaData()
todos_table = sa.Table(
    'todos', metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('text', sa.String(MAX_TEXT), nullable=False),
    sa.Column('done', sa.Boolean, nullable=False, default=False),
    sa.Column('companyId', sa.Integer, nullable=False, index=True),
    sa.Column('author', sa.String(40)),
)


def user_by_id(user_id: Any) -> Optional[Dict[str, Any]]:
    """A copy of the user with ``user_id``, with ``company`` (its name) added; None if unknown."""
    for user in USERS:
        if user['id'] == user_id:
            return dict(user, company=COMPANIES[user['companyId']])
    return None


class Users:
    """The seed's ``users`` service, read-only: ``find`` (by ``username`` or ``companyId``), ``get``.

    Records carry the ``password`` hash the local strategy checks; a ``protect('password')``
    hook keeps it from clients (see demo.create_app).
    """

    def find(self, params):
        query = (params or {}).get('query') or {}
        users = [self._record(u['id']) for u in USERS]
        for key in ('username', 'companyId', 'id'):
            if key in query:
                users = [u for u in users if str(u[key]) == str(query[key])]
        return users

    def get(self, id, params):
        try:
            user = self._record(int(id))
        except (TypeError, ValueError):
            user = None
        if user is None:
            raise errors.NotFound(f'No user {id}')
        return user

    @staticmethod
    def _record(user_id: int) -> Optional[Dict[str, Any]]:
        user = user_by_id(user_id)
        if user is not None:
            user['password'] = password_hash(user['username'])
        return user


def same_company(data: Dict[str, Any], params: Dict[str, Any]) -> Any:
    """The seed's filter: a connection gets the event only when its user is of the data's company."""
    user = (params or {}).get('user')
    return data if user is not None and data.get('companyId') == user['companyId'] else False


def require_user(context: Any) -> None:
    """Before every todos call from a client: there must be a signed-in user (the
    ``authenticate('jwt')`` hook before it loaded it from the call's access token)."""
    if context.params.get('provider') and context.params.get('user') is None:
        raise errors.NotAuthenticated('Sign in first: pick a user on the demo page')


def scope_to_company(context: Any) -> None:
    """Before every todos call from a client: its query is narrowed to the user's company (it
    replaces any ``companyId`` the client asked for; a client's ``$or`` is ANDed with it)."""
    query = copy.deepcopy(context.params.get('query') or {})
    if context.params.get('provider'):
        query['companyId'] = context.params['user']['companyId']
    context.params = dict(context.params, query=query)


def sort_by_id(context: Any) -> None:
    context.params['query'].setdefault('$sort', {'id': 1})


def one_at_a_time(context: Any) -> None:
    """Before patch and remove: one todo, never a multi call (``id`` None)."""
    if context.id is None:
        verb = 'Patch' if context.method == 'patch' else 'Remove'
        raise errors.MethodNotAllowed(f'{verb} one todo at a time: '
                                      f'{context.method.upper().replace("REMOVE", "DELETE")} '
                                      f'/todos/<id>')


def clean_todo(context: Any) -> None:
    """Before create, update and patch: the todo's fields, checked; a new todo's ``companyId``
    and ``author`` come from the user of a client call, never from the client."""
    data = context.data
    partial = context.method == 'patch'
    if not isinstance(data, dict):
        raise errors.BadRequest('A todo is an object like {"text": "Buy milk"}')
    out: Dict[str, Any] = {}
    if 'text' in data or not partial:
        text = data.get('text')
        if not isinstance(text, str) or not text.strip():
            raise errors.BadRequest('A todo needs a text', errors={'text': 'required'})
        if len(text) > MAX_TEXT:
            raise errors.BadRequest(f'A todo text has at most {MAX_TEXT} characters',
                                    errors={'text': 'too long'})
        out['text'] = text.strip()
    if 'done' in data:
        out['done'] = data['done']
    elif not partial:
        out['done'] = False
    if partial and not out:
        raise errors.BadRequest('Nothing to change: send "text" and/or "done"')
    if context.method == 'create':
        if context.params.get('provider'):
            user = context.params['user']
            out['companyId'] = user['companyId']
            out['author'] = user['username']
        else:  # an internal call (a script, a cron job): trusted, says its company itself
            if data.get('companyId') not in COMPANIES:
                raise errors.BadRequest(f'companyId must be one of {sorted(COMPANIES)}')
            out['companyId'] = data['companyId']
            out['author'] = data.get('author')
    context.data = out


#: The todos service's hooks: authorization, company scoping and validation live here, the
#: service only stores (see demo.create_app).
TODO_HOOKS = {
    'before': {
        'all': [authenticate('jwt'), require_user, scope_to_company],
        'find': [sort_by_id],
        'create': [clean_todo],
        'update': [clean_todo],
        'patch': [one_at_a_time, clean_todo],
        'remove': [one_at_a_time],
    },
}

#: What the demo's clients may call: the standard methods and one custom method.
TODO_METHODS = ['find', 'get', 'create', 'update', 'patch', 'remove', 'clear_completed']


class Todos:
    """Todos, stored by an :class:`SQLService`; who may see and change which is in
    :data:`TODO_HOOKS`.

    :param store: the SQLService (one per app; see :func:`demo.create_app`).
    """

    #: a custom event (``todos typing`` on the client): someone of your company is typing
    events = ['typing']

    def __init__(self, store: SQLService) -> None:
        self.store = store

    def setup(self, app: Any, path: str) -> None:
        self.store.setup(app, path)

    # -- Feathers methods (params scoped by the hooks) ----------------------------------------------
    def find(self, params):
        return self.store.find(params)

    def get(self, id, params):
        return self.store.get(id, params)

    def create(self, data, params):
        return self.store.create(data, {'query': {}})

    def update(self, id, data, params):
        current = self.store.get(id, params)
        record = dict(data, companyId=current['companyId'], author=current['author'])
        return self.store.update(id, record, params)

    def patch(self, id, data, params):
        return self.store.patch(id, data, params)

    def remove(self, id, params):
        return self.store.remove(id, params)

    def clear_completed(self, data, params):
        """A custom method (``todos::clear_completed``): remove the done todos of the caller's
        company (the hooks scoped ``params``); each goes through ``remove``, so its ``removed``
        event reaches the company's other tabs. Returns the todos removed."""
        from . import api  # the wrapped service: hooks and events
        query = dict(params.get('query') or {}, done=True)
        done = self.store.find({'query': query})
        todos = api.service('todos')
        return [todos.remove(todo['id'], {'query': {'companyId': todo['companyId']}})
                for todo in done]

    # -- event filters (params: the receiving connection's params) --------------------------------
    def created(self, todo, params):
        return same_company(todo, params)

    def updated(self, todo, params):
        return same_company(todo, params)

    def patched(self, todo, params):
        return same_company(todo, params)

    def removed(self, todo, params):
        return same_company(todo, params)

    def typing(self, data, params):
        # Your own tabs do not need to hear that you are typing.
        user = (params or {}).get('user')
        if user is not None and user['id'] == data.get('userId'):
            return False
        return same_company(data, params)
