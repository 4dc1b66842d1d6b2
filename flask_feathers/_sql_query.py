"""The Feathers query language in SQL, for :class:`~flask_feathers.sql.SQLService`.

A parsed query (:mod:`flask_feathers._query`) becomes SQLAlchemy Core expressions over one table:
the where tree, ``$sort``, ``$select`` and the ``$like`` family, which match the same on every
database whatever its collation. Values are coerced by column type
(:func:`flask_feathers._coercion.coerce_column`). Nothing here runs a statement.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, cast

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql as sa_mysql

from . import _query as q
from ._adapter import LIKE_ESCAPE, like_to_glob
from ._coercion import coerce_column, python_type
from .errors import BadRequest, NotFound

Column = sa.Column[Any]
Clause = sa.ColumnElement[bool]

_ORDERING: Dict[str, Callable[[Column, Any], Clause]] = {
    '$lt': lambda column, value: column < value, '$lte': lambda column, value: column <= value,
    '$gt': lambda column, value: column > value, '$gte': lambda column, value: column >= value}


class SQLQuery:
    """One table's queries as SQL expressions, written for the database ``dialect`` (its name).

    The extra operators of a call come with it: ``{'$name': fn(column, operand) -> SQL expression}``.
    """

    def __init__(self, table: sa.Table, id_column: Column, dialect: str) -> None:
        self.table = table
        self.id_column = id_column
        self.dialect = dialect
        # MariaDB/MySQL have no NULLS FIRST/LAST (and already sort NULL first ascending).
        self._nulls_clause = dialect not in ('mysql', 'mariadb')

    def column(self, name: str) -> Column:
        """The column ``name``; a BadRequest when the table has none."""
        try:
            return self.table.c[name]
        except KeyError:
            raise BadRequest(f'Unknown field {name!r} for {self.table.name!r}') from None

    def columns(self, select: Optional[Sequence[str]]) -> List[Column]:
        """The columns of ``$select`` (the id first), or all of them."""
        if select is None:
            return list(self.table.c)
        key = self.id_column.key
        return [self.id_column] + [self.column(n) for n in dict.fromkeys(select) if n != key]

    def values(self, data: Mapping[str, Any]) -> Dict[str, Any]:
        """``data`` coerced column by column."""
        return {name: coerce_column(self.column(name), value) for name, value in data.items()}

    def where(self, node: q.Node, operators: Mapping[str, Callable[..., Any]]) -> Clause:
        """The WHERE clause of a where tree."""
        if isinstance(node, q.Junction):
            parts = [self.where(child, operators) for child in node.children]
            if not parts:
                return sa.true()
            return sa.and_(*parts) if node.op == '$and' else sa.or_(*parts)
        column = self.column(node.field)
        if node.op in ('$in', '$nin'):
            values = [coerce_column(column, v) for v in node.value]
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
        if node.op in operators:
            try:
                # the service author's function: an SQL expression is what it promises
                return cast(Clause, operators[node.op](column, node.value))
            except (TypeError, ValueError, sa_exc.ArgumentError) as exc:
                raise BadRequest(f'Invalid value {node.value!r} for {node.op} on field '
                                 f'{node.field!r}: {exc}', errors={node.field: str(exc)}) from None
        value = coerce_column(column, node.value)
        if node.op == q.EQ:
            return column.is_(None) if value is None else column == value
        if node.op == '$ne':
            return column.is_not(None) if value is None else column.is_distinct_from(value)
        if value is None:
            return sa.false()
        return _ORDERING[node.op](column, value)

    def id_condition(self, id: Any, where: q.Node, operators: Mapping[str, Callable[..., Any]]) -> Clause:
        """The row ``id`` that also matches ``where``; NotFound for an id the column cannot hold."""
        key = self.id_column.key
        try:
            value = coerce_column(self.id_column, id)
        except BadRequest:
            raise NotFound(f"No record found for id '{id}'", data={key: id}) from None
        if value is None:
            raise NotFound(f"No record found for id '{id}'", data={key: id})
        return sa.and_(self.id_column == value, self.where(where, operators))

    def order(self, sort: Sequence[Tuple[str, int]]) -> List[sa.UnaryExpression[Any]]:
        """ORDER BY for ``$sort``, NULL first as in the memory service, then the id."""
        order = []
        for name, direction in sort:
            column = self.column(name)
            clause = column.asc() if direction > 0 else column.desc()
            if self._nulls_clause:
                clause = clause.nulls_first() if direction > 0 else clause.nulls_last()
            order.append(clause)
        if self.id_column.key not in dict(sort):
            order.append(self.id_column.asc())  # a stable order makes pages disjoint
        return order

    def _like(self, column: Column, op: str, pattern: str) -> Clause:
        if python_type(column) is not str:
            raise BadRequest(f'{op} needs a text field; {column.key!r} is not one',
                             errors={column.key: 'not a text field'})
        match: Clause
        if self.dialect in ('mysql', 'mariadb'):
            match = _mysql_like(column, pattern, fold_case=op == '$ilike')
        elif op == '$ilike':
            match = column.ilike(pattern, escape=LIKE_ESCAPE)
        elif self.dialect == 'sqlite':
            # $like respects case everywhere, as in PostgreSQL and the memory service: SQLite's
            # LIKE ignores ASCII case, its GLOB does not.
            match = column.bool_op('GLOB')(like_to_glob(pattern))
        else:
            match = column.like(pattern, escape=LIKE_ESCAPE)
        if op != '$notlike':
            return match
        # A NULL is not like the pattern (the memory service says so; SQL alone would say NULL).
        return sa.or_(sa.not_(match), column.is_(None))


def _mysql_like(column: Column, pattern: str, fold_case: bool) -> Clause:
    # MariaDB/MySQL compare with the column's collation, by default blind to case and accents.
    # Both sides as utf8mb4 text under its binary collation respect both and still match by
    # character ('_' is one character, also when it takes several bytes); $ilike folds case with
    # lower() on both sides.
    def exact(value: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        text = sa.cast(value, sa_mysql.CHAR(charset='utf8mb4'))
        return (sa.func.lower(text) if fold_case else text).collate('utf8mb4_bin')
    return exact(column).like(exact(sa.literal(pattern)), escape=LIKE_ESCAPE)
