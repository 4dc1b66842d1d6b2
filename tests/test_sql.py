"""SQLService: SQL specifics on SQLite (a file), PostgreSQL and MariaDB (the conformance suite in
tests/test_conformance_*.py runs on them too).

PostgreSQL is expected on 127.0.0.1:5432, database ``test`` (override with FEATHERS_TEST_POSTGRES_URL);
when it is not reachable the PostgreSQL tests fail, they are never skipped. MariaDB (or MySQL) is
expected on 127.0.0.1:3306, user root without a password, database ``test``, through PyMySQL
(override with FEATHERS_TEST_MYSQL_URL); ``scripts/test`` starts it when it is installed and down,
and its tests are skipped, saying why, only when it cannot be reached.
"""
import datetime
import threading

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_feathers.errors import BadRequest, Conflict, FeathersError
from flask_feathers.memory import MemoryService
from flask_feathers.sql import SQLService

from support.services import PEOPLE, names, people_table, seed, unique_name

# pg_engine, mysql_engine, sqlite_url and services are fixtures of support.services (conftest.py)


@pytest.fixture(params=['sqlite', 'postgresql', 'mariadb'])
def engine_or_url(request, sqlite_url):
    if request.param == 'sqlite':
        return sqlite_url
    return request.getfixturevalue('pg_engine' if request.param == 'postgresql' else 'mysql_engine')


@pytest.fixture
def make_service(engine_or_url, services):
    def make(table=None, **options):
        service = SQLService(table if table is not None else people_table(), engine_or_url, **options)
        service.create_table()
        services.append(service)
        return service
    return make


# -- construction ---------------------------------------------------------------------------------

class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = unique_name('notes')
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(200))
    done: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime.datetime] = mapped_column(nullable=True)


def test_accepts_a_declarative_model(make_service):
    service = make_service(Note)
    note = service.create({'text': 'hi', 'at': '2024-05-01T10:00:00'})
    assert note['done'] is False and note['at'] == datetime.datetime(2024, 5, 1, 10, 0)
    assert service.find({'query': {'at': {'$gt': '2024-04-30'}}, 'paginate': False}) == [note]
    assert service.find({'query': {'at': {'$lt': '2024-04-30'}}, 'paginate': False}) == []
    update = service.update(note['id'], {'text': 'replaced'})
    assert update['done'] is False and update['at'] is None  # the column default, then NULL


def test_accepts_an_engine_and_leaves_it_open(sqlite_url):
    engine = sa.create_engine(sqlite_url)
    try:
        service = SQLService(people_table(), engine)
        service.create_table()
        service.create({'name': 'x'})
        service.close()  # not the service's engine: still usable
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(service.table)).scalar() == 1
    finally:
        engine.dispose()


def test_setup_creates_the_table_once(sqlite_url, services):
    service = SQLService(people_table(), sqlite_url)
    services.append(service)
    service.setup(None, 'people')
    service.create({'name': 'kept'})
    service.setup(None, 'people')
    assert service.find({'query': {}})['total'] == 1
    lazy = SQLService(people_table(), sqlite_url, create_table=False)
    lazy.setup(None, 'x')
    with pytest.raises(FeathersError):
        lazy.find()
    lazy.close()


def test_in_memory_sqlite_url_is_shared_by_threads(services):
    service = SQLService(people_table(), 'sqlite://')
    services.append(service)
    service.create_table()
    done = []
    thread = threading.Thread(target=lambda: done.append(service.create({'name': 'from thread'})))
    thread.start()
    thread.join(10)
    assert service.get(done[0]['id'])['name'] == 'from thread'


def test_misuse_raises_builtin_errors(sqlite_url):
    with pytest.raises(TypeError, match='Table or a declarative model'):
        SQLService(object(), sqlite_url)
    with pytest.raises(ValueError, match="no column 'uid'"):
        SQLService(people_table(), sa.create_engine('sqlite://'), id='uid')
    with pytest.raises(ValueError, match='paginate'):
        SQLService(people_table(), sa.create_engine('sqlite://'), paginate={'size': 3})


def test_custom_id_column_of_type_string(make_service):
    table = sa.Table(unique_name('codes'), sa.MetaData(), sa.Column('code', sa.String(20), primary_key=True),
                     sa.Column('label', sa.String(50)))
    service = make_service(table, id='code')
    service.create({'code': 'A1', 'label': 'first'})
    assert service.get('A1') == {'code': 'A1', 'label': 'first'}
    with pytest.raises(Conflict):
        service.create({'code': 'A1'})
    with pytest.raises(BadRequest):  # no id and no way for the database to make one
        service.create({'label': 'no code'})


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('call', [
    lambda s: s.find({'query': {'nope': 1}}),
    lambda s: s.find({'query': {'$or': [{'nope': 1}]}}),
    lambda s: s.find({'query': {'$sort': {'nope': 1}}}),
    lambda s: s.find({'query': {'$select': ['nope']}}),
    lambda s: s.create({'nope': 1}),
    lambda s: s.patch(1, {'nope': 1}),
])
def test_unknown_field_is_badrequest_naming_it(make_service, call):
    service = make_service()
    service.create({'name': 'x'})
    with pytest.raises(BadRequest, match="'nope'"):
        call(service)


@pytest.mark.parametrize('data', [{'age': 'abc'}, {'age': 2.5}, {'active': 'maybe'}, {'score': [1]},
                                  {'name': {'a': 1}}, {'name': True}])
def test_wrong_types_are_badrequest(make_service, data):
    service = make_service()
    with pytest.raises(BadRequest, match=repr(next(iter(data)))):
        service.create(data)
    assert service.find({'query': {}})['total'] == 0


def test_query_value_of_wrong_type_is_badrequest(make_service):
    service = make_service()
    with pytest.raises(BadRequest, match="'age'"):
        service.find({'query': {'age': {'$gt': 'old'}}})


def test_database_constraints_are_badrequest(make_service):
    table = sa.Table(unique_name('strict'), sa.MetaData(), sa.Column('id', sa.Integer, primary_key=True),
                     sa.Column('name', sa.String(5), nullable=False, unique=True))
    service = make_service(table)
    service.create({'name': 'ok'})
    with pytest.raises(BadRequest, match='database'):
        service.create({})
    with pytest.raises(Conflict):
        service.create({'name': 'ok'})


def test_value_too_long_is_badrequest_on_postgresql(pg_engine, services):
    service = SQLService(people_table(), pg_engine)
    services.append(service)
    service.create_table()
    with pytest.raises(BadRequest, match='database'):
        service.create({'name': 'x' * 60})


def test_missing_table_is_a_feathers_error(engine_or_url):
    service = SQLService(people_table(), engine_or_url)
    try:
        with pytest.raises(FeathersError) as info:
            service.find()
        assert info.value.code == 500 and info.value.message == 'Database error'
    finally:
        service.close()


# -- SQL does the work ----------------------------------------------------------------------------

class Statements(list):
    """SQL statements sent to the listened engines, whitespace-normalised and upper-cased."""

    def __init__(self):
        super().__init__()
        self.engines = []

    def record(self, conn, cursor, statement, *rest):
        self.append(' '.join(statement.split()).upper())

    def listen(self, engine):
        sa.event.listen(engine, 'before_cursor_execute', self.record)
        self.engines.append(engine)


@pytest.fixture
def statements():
    captured = Statements()
    yield captured
    for engine in captured.engines:
        sa.event.remove(engine, 'before_cursor_execute', captured.record)


def test_find_pushes_filter_sort_limit_and_count_into_sql(make_service, statements):
    service = make_service()
    seed(service)
    statements.listen(service.engine)
    result = service.find({'query': {'age': {'$gte': '25'}, '$sort': {'age': '-1'}, '$skip': '1', '$limit': '2'}})
    assert names(result) == ['Carol', 'Alice'] and result['total'] == 5
    selects = [s for s in statements if s.startswith('SELECT')]
    assert len(selects) == 1  # rows and total in one statement, hence one snapshot
    # MariaDB/MySQL spell the offset LIMIT %s, %s
    offset = 'LIMIT' if service.engine.dialect.name in ('mysql', 'mariadb') else 'OFFSET'
    assert all(word in selects[0] for word in ('WHERE', 'ORDER BY', 'LIMIT', offset, 'COUNT(*) OVER ()'))


def test_patch_is_a_single_update(make_service, statements):
    service = make_service()
    record = service.create({'name': 'a'})
    statements.listen(service.engine)
    service.patch(record['id'], {'age': 3})
    writes = [s for s in statements if not s.startswith(('BEGIN', 'SAVEPOINT', 'RELEASE'))]
    if service.engine.dialect.update_returning:
        assert len(writes) == 1 and writes[0].startswith('UPDATE') and 'RETURNING' in writes[0]
    else:  # MariaDB/MySQL: no UPDATE ... RETURNING, still one UPDATE (then a read of the rows)
        assert [s.split()[0] for s in writes] == ['SELECT', 'UPDATE', 'SELECT']


def test_failed_call_rolls_back(make_service):
    service = make_service(multi=True)
    service.create({'name': 'first'})
    with pytest.raises(BadRequest):
        service.create([{'name': 'ok'}, {'name': 'bad', 'age': 'x'}])
    with pytest.raises(BadRequest):
        service.create([{'name': 'ok'}, {'name': 'x' * 5000, 'id': None, 'nope': 1}])
    assert names(service.find({'query': {}})) == ['first']


# -- the two services agree -----------------------------------------------------------------------

VALUES = {'age': st.sampled_from([20, 25, 30, None]), 'name': st.sampled_from(['a', 'b', 'B', '']),
          'active': st.sampled_from([True, False, None])}
CONDITION = st.one_of(
    *[st.builds(lambda f, v: {f: v}, st.just(f), s) for f, s in VALUES.items()],
    *[st.builds(lambda f, op, v: {f: {op: v}}, st.just(f), st.sampled_from(['$ne', '$lt', '$lte', '$gt', '$gte']), s)
      for f, s in VALUES.items() if f != 'active'],
    *[st.builds(lambda f, op, v: {f: {op: v}}, st.just(f), st.sampled_from(['$in', '$nin']), st.lists(s, max_size=3))
      for f, s in VALUES.items()],
)
QUERY = st.recursive(CONDITION, lambda inner: st.builds(
    lambda op, subs: {op: subs}, st.sampled_from(['$or', '$and']), st.lists(inner, min_size=1, max_size=3)),
    max_leaves=6)


def _as_rest(value):
    if isinstance(value, dict):
        return {k: _as_rest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_rest(v) for v in value]
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value) if isinstance(value, int) else value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.fixed_dictionaries(VALUES), max_size=8), query=QUERY,
       sort=st.sampled_from(['age', 'name', 'active']), direction=st.sampled_from([1, -1]))
def test_sqlite_and_memory_agree(records, query, sort, direction):
    table = people_table()
    sql = SQLService(table, 'sqlite://', paginate=None)
    sql.create_table()
    memory = MemoryService(paginate=None)
    try:
        for record in records:
            sql.create(dict(record))
            memory.create(dict(record))
        params = {'query': {**query, '$sort': {sort: direction}}}
        expected = [r['id'] for r in memory.find(params)]
        assert [r['id'] for r in sql.find(params)] == expected
        rest = {'query': {**_as_rest(query), '$sort': {sort: str(direction)}}}
        if all(r['age'] is not None and r['active'] is not None for r in records):
            assert [r['id'] for r in memory.find(rest)] == expected
    finally:
        sql.close()


LIKE_TEXT = st.text(alphabet='aAbB_%\\xé', max_size=6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(LIKE_TEXT, min_size=1, max_size=6), pattern=LIKE_TEXT,
       op=st.sampled_from(['$like', '$notlike', '$ilike']))
def test_like_agrees_on_memory_sqlite_and_the_database(engine_or_url, names, pattern, op):
    # % and _ as wildcards (_ is one character, é included), \\ as the escape, case respected by
    # $like only, accents always: the memory service, and the SQL service on SQLite, PostgreSQL and
    # MariaDB, select the same records.
    memory = MemoryService(paginate=None)
    sql = SQLService(people_table(), engine_or_url, paginate=None)
    sql.create_table()
    try:
        for name in names:
            memory.create({'name': name})
            sql.create({'name': name})
        params = {'query': {'name': {op: pattern}, '$sort': {'id': 1}}}

        def outcome(service):
            try:
                return [r['id'] for r in service.find(params)]
            except BadRequest as exc:  # a pattern ending in a lone escape, on both
                return exc.message
        assert outcome(sql) == outcome(memory)
    finally:
        sql.drop_table()
        sql.close()


def test_custom_operators_run_in_sql(make_service):
    service = make_service(operators={'$startswith': lambda column, operand: column.startswith(operand,
                                                                                                autoescape=True)})
    seed(service)
    assert sorted(r['name'] for r in service.find({'query': {'name': {'$startswith': 'Ca'}}, 'paginate': False})) == [
        'Carol']
    plain = make_service()
    with pytest.raises(BadRequest, match=r'\$startswith'):
        plain.find({'query': {'name': {'$startswith': 'Ca'}}})
    per_call = {'operators': {'$startswith': lambda column, operand: column.startswith(operand)}}
    assert plain.find({'query': {'name': {'$startswith': 'x'}}, 'adapter': per_call, 'paginate': False}) == []

    def checked(column, operand):
        if not isinstance(operand, str):
            raise TypeError('$startswith takes a string')
        return column.startswith(operand)
    with pytest.raises(BadRequest, match='takes a string'):
        plain.find({'query': {'name': {'$startswith': ['x']}}, 'adapter': {'operators': {'$startswith': checked}}})


def test_like_on_a_non_text_column_is_badrequest(make_service):
    service = make_service()
    seed(service)
    with pytest.raises(BadRequest, match='age'):
        service.find({'query': {'age': {'$like': '3%'}}})


def test_concurrent_writes_on_sqlite_file_never_report_locked(sqlite_url, services):
    # Two kinds of writer on one SQLite file: read-then-write transactions would deadlock on the lock
    # upgrade without BEGIN IMMEDIATE (sqlite answers "database is locked" at once, no waiting).
    service = SQLService(people_table(), sqlite_url, multi=True)
    services.append(service)
    service.create_table()
    seed(service)
    errors = []
    barrier = threading.Barrier(8)

    def work(t):
        try:
            barrier.wait()
            for i in range(25):
                service.patch(None, {f'f{t}': i}, {'query': {'name': {'$in': ['Alice', 'Bob']}}})
                service.update(1, dict(PEOPLE[0], **{f'f{t}': i}))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert service.get(2)['f7'] == 24


# -- through the application: REST strings in, events out -----------------------------------------

@pytest.mark.parametrize('kind', ['memory', 'sqlite'])
def test_rest_end_to_end(kind, sqlite_url, services):
    from flask import Flask

    from flask_feathers import Feathers, rest

    if kind == 'memory':
        service = MemoryService(multi=True)
    else:
        service = SQLService(people_table(), sqlite_url, multi=True)  # setup() creates the table
        services.append(service)
    app = Flask(__name__)
    api = Feathers(app)
    api.configure(rest())
    api.use('/people/', service)
    events = []
    for name in ('created', 'updated', 'patched', 'removed'):
        api.service('people').on(name, lambda data, name=name: events.append((name, data)))
    client = app.test_client()
    for person in PEOPLE:
        assert client.post('/people', json=person).status_code == 201
    r = client.get('/people?age[$gte]=25&active=true&$sort[age]=-1&$limit=2&$select[]=name')
    assert r.status_code == 200
    assert r.json == {'total': 3, 'limit': 2, 'skip': 0, 'data': [{'id': 3, 'name': 'Carol'}, {'id': 1, 'name': 'Alice'}]}
    assert client.get('/people?$or[0][name]=Bob&$or[1][city]=Rome').json['total'] == 2
    assert client.patch('/people/2', json={'age': 26}).json['age'] == 26
    r = client.patch('/people?age[$lt]=30', json={'city': 'Lyon'})
    assert sorted(p['name'] for p in r.json) == ['Bob', 'Dave']
    r = client.get('/people/999')
    assert r.status_code == 404 and r.json['name'] == 'NotFound' and '999' in r.json['message']
    assert client.get('/people?age[$regex]=x').status_code == 400
    # $like over a query string: %25 is the % wildcard, _ one character
    assert [p['name'] for p in client.get('/people?name[$like]=_a%25&$sort[name]=1').json['data']] == [
        'Carol', 'Dave']
    assert client.get('/people?name[$ilike]=EVE').json['total'] == 1
    r = client.get('/people?id[$gte]=abc')  # uncomparable with the int ids: 400 on both services
    assert r.status_code == 400 and r.json['name'] == 'BadRequest'
    assert client.get('/people?age[$gt]=ten').status_code == 400
    assert [name for name, _ in events] == ['created'] * 5 + ['patched'] * 3
    assert events[-1][1]['city'] == 'Lyon' and events[0][1] == {'id': 1, **PEOPLE[0]} | (
        {} if kind == 'memory' else {f'f{i}': None for i in range(8)})


def test_explicit_ids_move_the_generated_ones_past_them(make_service):
    """On PostgreSQL a serial column's sequence does not see explicit ids: the service moves it on,
    so the next generated id does not collide (SQLite picks max(id) + 1 by itself)."""
    service = make_service()
    first = service.create({'name': 'generated'})
    service.create({'id': first['id'] + 10, 'name': 'chosen'})
    service.create({'id': first['id'] + 5, 'name': 'lower, chosen'})  # never moves it back
    assert service.create({'name': 'next'})['id'] == first['id'] + 11
    service.create({'id': -3, 'name': 'negative'})
    assert service.create({'name': 'after'})['id'] == first['id'] + 12
