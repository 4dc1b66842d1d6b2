"""SQLService: a Feathers service over one table, on SQLAlchemy 2 Core.

SQLite (a file) is the embedded default; PostgreSQL and MariaDB/MySQL are where an application goes
when it outgrows it.
Filters, sorting, pagination and counting run in SQL (the query in SQL:
:mod:`flask_feathers._sql_query`). Every call runs in its own transaction; on SQLite, writes open it
with ``BEGIN IMMEDIATE`` so two writers queue on the database lock instead of deadlocking while
upgrading a read lock. Query values and data are coerced by column type (see
:func:`flask_feathers._coercion.coerce_column`).

Needs the ``sql`` extra: ``pip install flask-feathers[sql]``.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, ContextManager, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

try:
    import sqlalchemy as sa
    from sqlalchemy.pool import SingletonThreadPool, StaticPool
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('SQLService needs SQLAlchemy: pip install "flask-feathers[sql]" (from a '
                      'checkout or a built wheel: pip install ".[sql]"; [postgres] adds psycopg)') from exc

from . import _query as q
from ._adapter import AdapterOptions, check_data
from ._pagination import Page, check_multi, effective_limit, page
from ._sql_errors import database_errors
from ._sql_query import Clause, Column, SQLQuery
from .errors import BadRequest, NotFound
from .memory import DEFAULT_PAGINATE

log = logging.getLogger(__name__)

#: Seconds a SQLite writer waits for the database lock (engines the service makes from a URL).
SQLITE_BUSY_TIMEOUT = 30.0
#: Label of the window count a paginated find selects next to the columns.
_TOTAL = '__feathers_total'


def _table_of(model_or_table: Any) -> sa.Table:
    if isinstance(model_or_table, sa.Table):
        return model_or_table
    table = getattr(model_or_table, '__table__', None)
    if isinstance(table, sa.Table):  # declarative models, Flask-SQLAlchemy's db.Model included
        return table
    raise TypeError(f'SQLService needs a sqlalchemy Table or a declarative model class, got {model_or_table!r}')


def _is_memory_sqlite(url: sa.URL) -> bool:
    return url.get_backend_name() == 'sqlite' and url.database in (None, '', ':memory:')


class SQLService(AdapterOptions):
    """A Feathers service storing records in one SQL table.

    :param model_or_table: a :class:`sqlalchemy.Table` or a declarative model class (a
        Flask-SQLAlchemy ``db.Model`` works; pass ``db.engine`` as the engine).
    :param engine_or_url: an :class:`sqlalchemy.Engine` or a database URL such as
        ``'sqlite:///instance/app.db'`` (an engine made from a URL is the service's own; see
        :meth:`close`).
    :param id: the id column.
    :param paginate: as for :class:`~flask_feathers.memory.MemoryService` (default 10, max 50;
        ``None`` returns plain lists).
    :param multi: allow ``create`` with a list and ``patch``/``remove`` with ``id=None``; ``True`` or a
        list of those method names. Otherwise such calls raise MethodNotAllowed.
    :param create_table: create the table in :meth:`setup` when it does not exist yet.
    :param operators: extra query operators, ``{'$name': fn(column, operand) -> SQL expression}``.
    :param filters: extra top-level query keys, ``{'$name': True or converter}`` (see
        :mod:`flask_feathers._adapter`).

    ``params['adapter']`` overrides ``paginate``, ``multi``, ``operators`` and ``filters`` for one
    call (Feathers 5). ``$like``/``$notlike``/``$ilike`` take SQL patterns with ``\\`` as the
    escape character and match the same on every database, whatever its collation: ``$like``
    respects case, ``$ilike`` ignores it (non-ASCII letters as the database folds them; SQLite folds
    ASCII only), both respect accents.
    """

    def __init__(self, model_or_table: Any, engine_or_url: Union[sa.Engine, str, sa.URL], id: str = 'id',
                 paginate: Optional[Mapping[str, Any]] = DEFAULT_PAGINATE,
                 multi: Union[bool, Iterable[str]] = False, create_table: bool = True,
                 operators: Optional[Mapping[str, Any]] = None,
                 filters: Optional[Mapping[str, Any]] = None) -> None:
        self.table = _table_of(model_or_table)
        if id not in self.table.c:
            raise ValueError(f'Table {self.table.name!r} has no column {id!r}; pass id=<the id column>')
        self.id = id
        self.id_column = self.table.c[id]
        self._db_makes_ids = (self.table.autoincrement_column is self.id_column
                              or self.id_column.default is not None
                              or self.id_column.server_default is not None)
        self._init_options(paginate, multi, operators, filters)
        self.create_table_on_setup = create_table
        self._owns_engine = not isinstance(engine_or_url, sa.Engine)
        #: the engine every call uses (made from the URL when a URL was given)
        self.engine: sa.Engine = (engine_or_url if isinstance(engine_or_url, sa.Engine)
                                  else self._make_engine(engine_or_url))
        dialect = self.engine.dialect
        self._immediate = dialect.name == 'sqlite' and dialect.driver == 'pysqlite'
        self._sql = SQLQuery(self.table, self.id_column, dialect.name)
        # One in-memory SQLite database is one connection: calls must take turns on it.
        self._serial = threading.Lock() if _is_memory_sqlite(self.engine.url) else None
        if self._serial and isinstance(self.engine.pool, SingletonThreadPool):
            log.warning('In-memory SQLite with SingletonThreadPool gives every thread its own empty '
                        'database; pass the URL string instead of an engine, or use a file')

    @staticmethod
    def _make_engine(url: Union[str, sa.URL]) -> sa.Engine:
        url = sa.make_url(url)
        if _is_memory_sqlite(url):
            return sa.create_engine(url, poolclass=StaticPool, connect_args={'check_same_thread': False})
        if url.get_backend_name() == 'sqlite' and 'timeout' not in url.query:
            # Writers queue on SQLite's file lock; wait longer than sqlite3's 5 s before "locked".
            return sa.create_engine(url, connect_args={'timeout': SQLITE_BUSY_TIMEOUT})
        return sa.create_engine(url)

    # -- lifecycle --------------------------------------------------------------------------------

    def setup(self, app: Any, path: str) -> None:
        """Called once by the application: creates the table unless ``create_table=False``."""
        if self.create_table_on_setup:
            self.create_table()

    def create_table(self) -> None:
        """Create the table if it does not exist (``CREATE TABLE`` only; no migrations)."""
        with self._errors():
            self.table.create(self.engine, checkfirst=True)

    def drop_table(self) -> None:
        """Drop the table if it exists."""
        with self._errors():
            self.table.drop(self.engine, checkfirst=True)

    def close(self) -> None:
        """Dispose of the engine when the service made it from a URL."""
        if self._owns_engine:
            self.engine.dispose()

    # -- Feathers methods -------------------------------------------------------------------------

    def find(self, params: Optional[Dict[str, Any]] = None) -> Union[List[Dict[str, Any]], Page]:
        """Rows matching ``params['query']``; a page dict when paginating."""
        options = self.options_for(params)
        parsed = self.parse(params, options)
        paginate = options.paginate
        filters = parsed.filters
        limit = effective_limit(filters, paginate)
        where = self._sql.where(parsed.where, options.operators)
        columns: List[sa.ColumnElement[Any]] = list(self._sql.columns(filters.select))
        if paginate is not None:
            # The total rides along in the same statement (a window count is taken before LIMIT), so
            # a page and its total always come from one snapshot.
            columns.append(sa.func.count().over().label(_TOTAL))
        stmt = sa.select(*columns).where(where).order_by(*self._sql.order(filters.sort))
        if limit is not None:
            stmt = stmt.limit(limit)
        if filters.skip:
            stmt = stmt.offset(filters.skip)
        with self._transaction(write=False) as conn:
            data = [] if limit == 0 else self._rows(conn.execute(stmt))
            if paginate is None:
                return data
            if data:
                total = data[0][_TOTAL]
            else:  # past the end, or $limit 0: no row to carry the total
                total = conn.scalar(sa.select(sa.func.count()).select_from(self.table).where(where)) or 0
        for row in data:
            del row[_TOTAL]
        return page(total, limit, filters.skip, data)

    def get(self, id: Any, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The row with ``id`` (which must also match ``params['query']``)."""
        options = self.options_for(params)
        parsed = self.parse(params, options)
        cond = self._sql.id_condition(id, parsed.where, options.operators)
        stmt = sa.select(*self._sql.columns(parsed.filters.select)).where(cond)
        with self._transaction(write=False) as conn:
            return self._one(conn.execute(stmt), id)

    def create(self, data: Any, params: Optional[Dict[str, Any]] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Insert ``data`` (a list of rows under ``multi``, all in one transaction)."""
        options = self.options_for(params)
        select = self.parse(params, options).filters.select
        many = isinstance(data, list)
        if many:
            check_multi(options.multi, 'create')
        rows = [self._sql.values(check_data(item)) for item in (data if many else [data])]
        for row in rows:
            if row.get(self.id) is None:
                if not self._db_makes_ids:
                    raise BadRequest(f'{self.id!r} is required: {self.table.name!r} does not generate ids')
                row.pop(self.id, None)  # let the database choose
        columns = self._sql.columns(select)
        explicit = [row[self.id] for row in rows if self.id in row]
        out: List[Dict[str, Any]] = []
        with self._transaction(write=True) as conn:
            for row in rows:
                stmt = sa.insert(self.table).values(row)
                if self.engine.dialect.insert_returning:
                    out.extend(self._rows(conn.execute(stmt.returning(*columns))))
                else:
                    inserted = conn.execute(stmt).inserted_primary_key
                    assert inserted is not None  # one row was inserted
                    key = inserted[0]
                    out.extend(self._rows(conn.execute(sa.select(*columns).where(self.id_column == key))))
            if explicit and self._advances_sequence:
                self._advance_sequence(conn, explicit)
        return out if many else out[0]

    @property
    def _advances_sequence(self) -> bool:
        """PostgreSQL hands out serial / identity ids from a sequence that an explicit id does not
        move: the next generated id could be one a caller already chose."""
        return (self.engine.dialect.name == 'postgresql'
                and self.table.autoincrement_column is self.id_column)

    def _advance_sequence(self, conn: sa.Connection, ids: List[Any]) -> None:
        """Move the id column's sequence past the largest of ``ids`` (never back)."""
        try:
            top = max(int(i) for i in ids)
        except (TypeError, ValueError):
            return
        table = self.engine.dialect.identifier_preparer.format_table(self.table)
        conn.execute(sa.text(
            'SELECT setval(s.seq::regclass, :top) '
            'FROM (SELECT pg_get_serial_sequence(:table, :column) AS seq) AS s '
            'WHERE s.seq IS NOT NULL '
            'AND :top > COALESCE(pg_sequence_last_value(s.seq::regclass), 0)'),
            {'top': top, 'table': table, 'column': self.id_column.name})

    def update(self, id: Any, data: Any, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Replace the row with ``id``: columns missing from ``data`` get their default or NULL."""
        if id is None:
            raise BadRequest('update replaces one record and needs an id; use patch to change many')
        given = self._sql.values(check_data(data))
        values = {c.key: given[c.key] if c.key in given else _default(c)
                  for c in self.table.c if c.key != self.id}
        options = self.options_for(params)
        parsed = self.parse(params, options)
        cond = self._sql.id_condition(id, parsed.where, options.operators)
        with self._transaction(write=True) as conn:
            rows = self._write_rows(conn, cond, values, parsed.filters.select)
        return self._single(rows, id)

    def _target(self, id: Any, params: Optional[Dict[str, Any]], method: str) -> Tuple[Clause, q.ParsedQuery]:
        """The WHERE of a patch/remove: the row ``id`` (and the query), or with ``id=None`` every
        match of the query, which needs ``multi`` for ``method``."""
        options = self.options_for(params)
        parsed = self.parse(params, options)
        if id is None:
            check_multi(options.multi, method)
            return self._sql.where(parsed.where, options.operators), parsed
        return self._sql.id_condition(id, parsed.where, options.operators), parsed

    def patch(self, id: Any, data: Any, params: Optional[Dict[str, Any]] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Set the columns in ``data`` on the row with ``id``, or on every match when ``id`` is None.

        One ``UPDATE`` (with ``RETURNING`` where the database has it), so concurrent patches of
        different columns never undo each other.
        """
        values = self._sql.values(check_data(data))
        values.pop(self.id, None)
        cond, parsed = self._target(id, params, 'patch')
        with self._transaction(write=True) as conn:
            if id is None:
                cond = self._lock_in_order(conn, cond)
            rows = self._write_rows(conn, cond, values, parsed.filters.select)
        return self._sorted(rows) if id is None else self._single(rows, id)

    def remove(self, id: Any, params: Optional[Dict[str, Any]] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Delete the row with ``id``, or every match when ``id`` is None; returns what was deleted."""
        cond, parsed = self._target(id, params, 'remove')
        columns = self._sql.columns(parsed.filters.select)
        with self._transaction(write=True) as conn:
            if id is None:
                cond = self._lock_in_order(conn, cond)
            stmt = sa.delete(self.table).where(cond)
            if self.engine.dialect.delete_returning:
                rows = self._rows(conn.execute(stmt.returning(*columns)))
            else:
                rows = self._rows(conn.execute(sa.select(*columns).where(cond)))
                conn.execute(sa.delete(self.table).where(self.id_column.in_([r[self.id] for r in rows])))
        return self._sorted(rows) if id is None else self._single(rows, id)

    # -- writes ---------------------------------------------------------------------------------------

    def _lock_in_order(self, conn: sa.Connection, cond: Clause) -> Clause:
        # Two multi-row UPDATEs lock their rows in scan order, which differs between them once rows
        # have moved: PostgreSQL then aborts one with "deadlock detected". Locking the matches in id
        # order first makes every multi-row write queue instead. SQLite serialises writers anyway.
        if self._immediate:
            return cond
        stmt = sa.select(self.id_column).where(cond).order_by(self.id_column).with_for_update()
        return self.id_column.in_(list(conn.scalars(stmt)))

    def _write_rows(self, conn: sa.Connection, cond: Clause, values: Dict[str, Any],
                    select: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
        columns = self._sql.columns(select)
        if not values:
            return self._rows(conn.execute(sa.select(*columns).where(cond)))
        stmt = sa.update(self.table).where(cond).values(values)
        if self.engine.dialect.update_returning:
            return self._rows(conn.execute(stmt.returning(*columns)))
        ids = list(conn.scalars(sa.select(self.id_column).where(cond)))
        conn.execute(sa.update(self.table).where(self.id_column.in_(ids)).values(values))
        return self._rows(conn.execute(sa.select(*columns).where(self.id_column.in_(ids))))

    # -- results and transactions -----------------------------------------------------------------

    @staticmethod
    def _rows(result: sa.Result[Any]) -> List[Dict[str, Any]]:
        return [dict(row._mapping) for row in result]

    def _one(self, result: sa.Result[Any], id: Any) -> Dict[str, Any]:
        return self._single(self._rows(result), id)

    def _single(self, rows: List[Dict[str, Any]], id: Any) -> Dict[str, Any]:
        if not rows:
            raise NotFound(f"No record found for id '{id}'", data={self.id: id})
        return rows[0]

    def _sorted(self, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return sorted(rows, key=lambda row: row[self.id])

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[sa.Connection]:
        with self._errors(), (self._serial or contextlib.nullcontext()):
            with self.engine.connect() as conn:
                with conn.begin():
                    if write and self._immediate and not _in_transaction(conn):
                        # pysqlite would BEGIN (deferred) on the first write only; a transaction
                        # that read first then fails to upgrade its lock with "database is locked".
                        conn.exec_driver_sql('BEGIN IMMEDIATE')
                    yield conn

    def _errors(self) -> ContextManager[None]:
        return database_errors(self.table.name)


def _in_transaction(conn: sa.Connection) -> bool:
    """The DB-API connection has a transaction open (sqlite3's ``in_transaction``)."""
    return bool(getattr(conn.connection.dbapi_connection, 'in_transaction', False))


def _default(column: Column) -> Any:
    default = column.default
    if isinstance(default, sa.ColumnDefault) and default.is_scalar:
        return default.arg
    return None
