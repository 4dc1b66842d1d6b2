"""The services the conformance suite (tests/test_conformance_*.py) runs on, and its data.

``new_service(**options)`` is a fresh, empty service whose records may hold the fields of
:data:`PEOPLE` plus integer fields ``f0`` ... ``f7``: a MemoryService, or an SQLService on SQLite (a
file), PostgreSQL and MariaDB. PostgreSQL is expected on 127.0.0.1:5432, database ``test``
(override with FEATHERS_TEST_POSTGRES_URL); when it is not reachable its tests fail, they are never
skipped. MariaDB (or MySQL) is expected on 127.0.0.1:3306, user root without a password,
database ``test``, through PyMySQL (override with FEATHERS_TEST_MYSQL_URL); ``scripts/test`` starts
it when it is installed and down, and its tests are skipped, saying why, only when it cannot be
reached.
The fixtures are made available to every test module by conftest.py.
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

PEOPLE = [
    {'name': 'Alice', 'age': 30, 'score': 1.5, 'active': True, 'city': 'Paris'},
    {'name': 'Bob', 'age': 25, 'score': 2.5, 'active': False, 'city': 'Berlin'},
    {'name': 'Carol', 'age': 35, 'score': 3.0, 'active': True, 'city': None},
    {'name': 'Dave', 'age': 25, 'score': 0.5, 'active': True, 'city': 'Paris'},
    {'name': 'Eve', 'age': 40, 'score': 4.25, 'active': False, 'city': 'Rome'},
]
ALL = ['Alice', 'Bob', 'Carol', 'Dave', 'Eve']
UNPAGED = {'paginate': False}

PG_URL = os.environ.get('FEATHERS_TEST_POSTGRES_URL',
                        'postgresql+psycopg://postgres@127.0.0.1:5432/test')
MYSQL_URL = os.environ.get('FEATHERS_TEST_MYSQL_URL',
                           'mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4')
#: The kinds of service the conformance suite runs on.
KINDS = ['memory', 'sqlite', 'postgresql', 'mariadb']


def seed(service: Any, people: List[Dict[str, Any]] = PEOPLE) -> List[Dict[str, Any]]:
    return [service.create(dict(person)) for person in people]


def names(result: Any) -> List[str]:
    rows = result['data'] if isinstance(result, dict) else result
    return [row['name'] for row in rows]


def find_names(service: Any, query: Any) -> List[str]:
    return sorted(names(service.find({'query': query, 'paginate': False})))


def subset(record: Dict[str, Any], expected: Dict[str, Any]) -> bool:
    return {key: record.get(key) for key in expected} == expected


# -- SQL ------------------------------------------------------------------------------------------

def unique_name(prefix: str = 'ff') -> str:
    return f'{prefix}_{uuid.uuid4().hex[:12]}'


def people_table(name: Optional[str] = None, metadata: Any = None) -> Any:
    import sqlalchemy as sa
    return sa.Table(
        name or unique_name('people'), metadata or sa.MetaData(),
        sa.Column('id', sa.Integer, primary_key=True),
        sa.Column('name', sa.String(50)),
        sa.Column('age', sa.Integer),
        sa.Column('score', sa.Float),
        sa.Column('active', sa.Boolean),
        sa.Column('city', sa.String(50)),
        *[sa.Column(f'f{i}', sa.Integer) for i in range(8)],
    )


def _reachable(url: str, unreachable: Callable[[Any], None]) -> Any:
    """An engine for ``url`` that answered ``select 1``; else ``unreachable(exc)`` (fail or
    skip)."""
    import sqlalchemy as sa
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text('select 1'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        unreachable(exc)
    return engine


@pytest.fixture(scope='module')
def pg_engine() -> Iterator[Any]:
    engine = _reachable(PG_URL, lambda exc: pytest.fail(
        f'PostgreSQL is not reachable at {PG_URL} ({exc.orig}); start it or set '
        'FEATHERS_TEST_POSTGRES_URL. These tests are required, not optional.', pytrace=False))
    yield engine
    engine.dispose()


@pytest.fixture(scope='module')
def mysql_engine() -> Iterator[Any]:
    engine = _reachable(MYSQL_URL, lambda exc: pytest.skip(
        f'MariaDB/MySQL is not reachable at {MYSQL_URL} ({exc.orig}); scripts/test starts it '
        'when installed, or set FEATHERS_TEST_MYSQL_URL'))
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f'sqlite:///{tmp_path / "test.db"}'


@pytest.fixture
def services() -> Iterator[List[Any]]:
    """SQL services made by a test: their tables are dropped and their engines closed after it."""
    made: List[Any] = []
    yield made
    for service in made:
        service.drop_table()
        service.close()


def sql_engine_or_url(request: Any, kind: str) -> Any:
    """The SQLite URL, or the PostgreSQL or MariaDB engine, for ``kind``."""
    if kind == 'sqlite':
        return request.getfixturevalue('sqlite_url')
    return request.getfixturevalue('pg_engine' if kind == 'postgresql' else 'mysql_engine')


@pytest.fixture(params=KINDS)
def new_service(request: Any) -> Callable[..., Any]:
    """``new_service(table=None, **options)``: a fresh, empty service, once per kind."""
    if request.param == 'memory':
        from flask_feathers.memory import MemoryService
        return MemoryService
    from flask_feathers.sql import SQLService
    engine_or_url = sql_engine_or_url(request, request.param)
    made = request.getfixturevalue('services')

    def make(table: Any = None, **options: Any) -> Any:
        service = SQLService(table if table is not None else people_table(), engine_or_url,
                             **options)
        service.create_table()
        made.append(service)
        return service
    return make
