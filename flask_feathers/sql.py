"""SQLService: a Feathers service over one table, on SQLAlchemy 2 Core.

SQLite (a file) is the embedded default; PostgreSQL and MariaDB/MySQL are where an application goes
when it outgrows it.
Filters, sorting, pagination and counting run in SQL. Every call runs in its own transaction; on
SQLite, writes open it with ``BEGIN IMMEDIATE`` so two writers queue on the database lock instead of
deadlocking while upgrading a read lock. Query values and data are coerced by column type (see
:func:`flask_feathers._query.coerce_column`).

Needs the ``sql`` extra: ``pip install flask-feathers[sql]``.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, ContextManager, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

try:
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.dialects import mysql as sa_mysql
    from sqlalchemy.pool import SingletonThreadPool, StaticPool
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('SQLService needs SQLAlchemy: pip install "flask-feathers[sql]" (from a '
                      'checkout or a built wheel: pip install ".[sql]"; [postgres] adds psycopg)') from exc

from . import _query as q
from ._adapter import LIKE_ESCAPE, AdapterOptions, CallOptions, like_to_glob
from ._sql_errors import database_errors
from .errors import BadRequest, NotFound
from .memory import DEFAULT_PAGINATE

log = logging.getLogger(__name__)

#: Seconds a SQLite writer waits for the database lock (engines the service makes from a URL).
SQLITE_BUSY_TIMEOUT = 30.0
#: Label of the window count a paginated find selects next to the columns.
_TOTAL = '__feathers_total'
_ORDERING = {'$lt': '__lt__', '$lte': '__le__', '$gt': '__gt__', '$gte': '__ge__'}


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
        self.engine = self._make_engine(engine_or_url) if self._owns_engine else engine_or_url
        dialect = self.engine.dialect
        self._immediate = dialect.name == 'sqlite' and dialect.driver == 'pysqlite'
        self._nulls_clause = dialect.name not in ('mysql', 'mariadb')
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

    def find(self, params: Optional[Dict[str, Any]] = None) -> Union[List[Dict[str, Any]], Dict[str, Any]]:
        """Rows matching ``params['query']``; a page dict when paginating."""
        options = self.options_for(params)
        parsed = self.parse(params, options)
        paginate = options.paginate
        filters = parsed.filters
        limit = q.effective_limit(filters, paginate)
        where = self._where(parsed.where, options)
        columns = self._columns(filters.select)
        if paginate is not None:
            # The total rides along in the same statement (a window count is taken before LIMIT), so
            # a page and its total always come from one snapshot.
            columns.append(sa.func.count().over().label(_TOTAL))
        stmt = sa.select(*columns).where(where).order_by(*self._order(filters.sort))
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
                total = conn.scalar(sa.select(sa.func.count()).select_from(self.table).where(where))
        for row in data:
            del row[_TOTAL]
        return q.page(total, limit, filters.skip, data)

    def get(self, id: Any, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The row with ``id`` (which must also match ``params['query']``)."""
        options = self.options_for(params)
        parsed = self.parse(params, options)
        cond = self._id_condition(id, parsed.where, options)
        stmt = sa.select(*self._columns(parsed.filters.select)).where(cond)
        with self._transaction(write=False) as conn:
            return self._one(conn.execute(stmt), id)

    def create(self, data: Any, params: Optional[Dict[str, Any]] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Insert ``data`` (a list of rows under ``multi``, all in one transaction)."""
        options = self.options_for(params)
        select = self.parse(params, options).filters.select
        many = isinstance(data, list)
        if many:
            q.check_multi(options.multi, 'create')
        rows = [self._values(q.check_data(item)) for item in (data if many else [data])]
        for row in rows:
            if row.get(self.id) is None:
                if not self._db_makes_ids:
                    raise BadRequest(f'{self.id!r} is required: {self.table.name!r} does not generate ids')
                row.pop(self.id, None)  # let the database choose
        columns = self._columns(select)
        explicit = [row[self.id] for row in rows if self.id in row]
        out = []
        with self._transaction(write=True) as conn:
            for row in rows:
                stmt = sa.insert(self.table).values(row)
                if self.engine.dialect.insert_returning:
                    out.extend(self._rows(conn.execute(stmt.returning(*columns))))
                else:
                    key = conn.execute(stmt).inserted_primary_key[0]
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
        given = self._values(q.check_data(data))
        values = {c.key: given[c.key] if c.key in given else _default(c)
                  for c in self.table.c if c.key != self.id}
        options = self.options_for(params)
        parsed = self.parse(params, options)
        cond = self._id_condition(id, parsed.where, options)
        with self._transaction(write=True) as conn:
            rows = self._write_rows(conn, cond, values, parsed.filters.select)
        return self._single(rows, id)

    def _target(self, id: Any, params: Optional[Dict[str, Any]], method: str) -> Tuple[Any, q.ParsedQuery]:
        """The WHERE of a patch/remove: the row ``id`` (and the query), or with ``id=None`` every
        match of the query, which needs ``multi`` for ``method``."""
        options = self.options_for(params)
        parsed = self.parse(params, options)
        if id is None:
            q.check_multi(options.multi, method)
            return self._where(parsed.where, options), parsed
        return self._id_condition(id, parsed.where, options), parsed

    def patch(self, id: Any, data: Any, params: Optional[Dict[str, Any]] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Set the columns in ``data`` on the row with ``id``, or on every match when ``id`` is None.

        One ``UPDATE`` (with ``RETURNING`` where the database has it), so concurrent patches of
        different columns never undo each other.
        """
        values = self._values(q.check_data(data))
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
        columns = self._columns(parsed.filters.select)
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

    # -- SQL building -----------------------------------------------------------------------------

    def _column(self, name: str) -> sa.Column:
        try:
            return self.table.c[name]
        except KeyError:
            raise BadRequest(f'Unknown field {name!r} for {self.table.name!r}') from None

    def _columns(self, select: Optional[Sequence[str]]) -> List[sa.Column]:
        if select is None:
            return list(self.table.c)
        return [self.id_column] + [self._column(n) for n in dict.fromkeys(select) if n != self.id]

    def _values(self, data: Mapping[str, Any]) -> Dict[str, Any]:
        return {name: q.coerce_column(self._column(name), value) for name, value in data.items()}

    def _where(self, node: q.Node, options: CallOptions) -> Any:
        if isinstance(node, q.Junction):
            parts = [self._where(child, options) for child in node.children]
            if not parts:
                return sa.true()
            return sa.and_(*parts) if node.op == '$and' else sa.or_(*parts)
        column = self._column(node.field)
        if node.op in ('$in', '$nin'):
            values = [q.coerce_column(column, v) for v in node.value]
            known = [v for v in values if v is not None]
            has_null = len(known) < len(values)
            if node.op == '$in':
                return sa.or_(column.in_(known), column.is_(None)) if has_null else column.in_(known)
            # NOT IN is never true for NULL in SQL; the memory service (and Feathers) treat a
            # missing value as "not in the list", so say so explicitly.
            if has_null:
                return sa.and_(column.not_in(known), column.is_not(None))
            return sa.or_(column.not_in(known), column.is_(None))
        if node.op in q.PATTERNS:
            return self._like(column, node.op, node.value)
        if node.op in options.operators:
            try:
                return options.operators[node.op](column, node.value)
            except (TypeError, ValueError, sa_exc.ArgumentError) as exc:
                raise BadRequest(f'Invalid value {node.value!r} for {node.op} on field '
                                 f'{node.field!r}: {exc}', errors={node.field: str(exc)}) from None
        value = q.coerce_column(column, node.value)
        if node.op == q.EQ:
            return column.is_(None) if value is None else column == value
        if node.op == '$ne':
            return column.is_not(None) if value is None else column.is_distinct_from(value)
        if value is None:
            return sa.false()
        return getattr(column, _ORDERING[node.op])(value)

    def _order(self, sort: Sequence[tuple]) -> List[Any]:
        order = []
        for name, direction in sort:
            column = self._column(name)
            clause = column.asc() if direction > 0 else column.desc()
            if self._nulls_clause:  # NULL sorts first, as in the memory service
                clause = clause.nulls_first() if direction > 0 else clause.nulls_last()
            order.append(clause)
        if self.id not in dict(sort):
            order.append(self.id_column.asc())  # a stable order makes pages disjoint
        return order

    def _like(self, column: sa.Column, op: str, pattern: str) -> Any:
        if q.python_type(column) is not str:
            raise BadRequest(f'{op} needs a text field; {column.key!r} is not one',
                             errors={column.key: 'not a text field'})
        name = self.engine.dialect.name
        if name in ('mysql', 'mariadb'):
            match = _mysql_like(column, pattern, fold_case=op == '$ilike')
        elif op == '$ilike':
            match = column.ilike(pattern, escape=LIKE_ESCAPE)
        elif name == 'sqlite':
            # $like respects case everywhere, as in PostgreSQL and the memory service: SQLite's
            # LIKE ignores ASCII case, its GLOB does not.
            match = column.op('GLOB', is_comparison=True)(like_to_glob(pattern))
        else:
            match = column.like(pattern, escape=LIKE_ESCAPE)
        if op != '$notlike':
            return match
        # A NULL is not like the pattern (the memory service says so; SQL alone would say NULL).
        return sa.or_(sa.not_(match), column.is_(None))

    def _id_condition(self, id: Any, where: q.Node, options: CallOptions) -> Any:
        try:
            value = q.coerce_column(self.id_column, id)
        except BadRequest:
            raise NotFound(f"No record found for id '{id}'", data={self.id: id}) from None
        if value is None:
            raise NotFound(f"No record found for id '{id}'", data={self.id: id})
        return sa.and_(self.id_column == value, self._where(where, options))

    def _lock_in_order(self, conn: sa.Connection, cond: Any) -> Any:
        # Two multi-row UPDATEs lock their rows in scan order, which differs between them once rows
        # have moved: PostgreSQL then aborts one with "deadlock detected". Locking the matches in id
        # order first makes every multi-row write queue instead. SQLite serialises writers anyway.
        if self._immediate:
            return cond
        stmt = sa.select(self.id_column).where(cond).order_by(self.id_column).with_for_update()
        return self.id_column.in_(list(conn.scalars(stmt)))

    def _write_rows(self, conn: sa.Connection, cond: Any, values: Dict[str, Any],
                    select: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
        columns = self._columns(select)
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
    def _rows(result: sa.Result) -> List[Dict[str, Any]]:
        return [dict(row._mapping) for row in result]

    def _one(self, result: sa.Result, id: Any) -> Dict[str, Any]:
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
                    if write and self._immediate and not conn.connection.dbapi_connection.in_transaction:
                        # pysqlite would BEGIN (deferred) on the first write only; a transaction
                        # that read first then fails to upgrade its lock with "database is locked".
                        conn.exec_driver_sql('BEGIN IMMEDIATE')
                    yield conn

    def _errors(self) -> ContextManager[None]:
        return database_errors(self.table.name)


def _mysql_like(column: sa.Column, pattern: str, fold_case: bool) -> Any:
    # MariaDB/MySQL compare with the column's collation, by default blind to case and accents.
    # Both sides as utf8mb4 text under its binary collation respect both and still match by
    # character ('_' is one character, also when it takes several bytes); $ilike folds case with
    # lower() on both sides.
    def exact(value: Any) -> Any:
        text = sa.cast(value, sa_mysql.CHAR(charset='utf8mb4'))
        return (sa.func.lower(text) if fold_case else text).collate('utf8mb4_bin')
    return exact(column).like(exact(sa.literal(pattern)), escape=LIKE_ESCAPE)


def _default(column: sa.Column) -> Any:
    default = column.default
    if default is not None and getattr(default, 'is_scalar', False):
        return default.arg
    return None
