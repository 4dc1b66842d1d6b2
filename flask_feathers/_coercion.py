"""Query values to the types a store compares with.

REST sends every query value and every id as a string (``?age[$gt]=3`` gives ``'3'``); socket
calls send JSON values. :mod:`flask_feathers._query` only checks a query's shape; the ready-made
services turn its values into typed ones here, each by its own rule:

* :func:`coerce_like` (:class:`~flask_feathers.memory.MemoryService`): a string becomes the type of
  the value stored in the record it is compared with (records of one service may differ).
* :func:`coerce_column` (:class:`~flask_feathers.sql.SQLService`): any value becomes the Python type
  of the table column, or the call is a BadRequest naming the column.

No SQLAlchemy import: a column is anything with a ``key`` and a ``type.python_type``
(:class:`ColumnLike`).
"""
from __future__ import annotations

import datetime
import decimal
import re
import uuid
from typing import Any, Callable, Dict, Optional, Protocol, Type, Union

from .errors import BadRequest

_INT_RE = re.compile(r'^[+-]?\d+$')


def parse_int(value: str) -> Optional[int]:
    """``int(value)`` for a plain decimal integer string, else None."""
    return int(value) if _INT_RE.match(value.strip()) else None


# -- by the stored value (the memory service) ------------------------------------------------------

def coerce_like(value: Any, stored: Any) -> Any:
    """``value`` converted to the type of ``stored`` when ``value`` is a string (the first rule of
    :mod:`flask_feathers.memory`): to int (``'5'``; ``'2.5'`` becomes a float), float, bool
    (``'true'``/``'false'`` only) or None (``'null'`` only); otherwise ``value`` as it is."""
    if not isinstance(value, str) or isinstance(stored, str):
        return value
    if isinstance(stored, bool):
        return {'true': True, 'false': False}.get(value, value)
    if isinstance(stored, (int, float)):
        number = parse_int(value) if isinstance(stored, int) else None
        if number is not None:
            return number
        try:
            return float(value)
        except ValueError:
            return value
    if stored is None and value == 'null':
        return None
    return value


# -- by the column type (the SQL service) ----------------------------------------------------------
#
# Rule, by the column's Python type: ``int`` accepts ints, integral floats and decimal strings;
# ``float``/``Decimal`` accept numbers and numeric strings; ``bool`` accepts booleans, 0/1 and the
# strings 'true'/'false'/'1'/'0'; ``str`` accepts strings and numbers (turned into their text);
# ``datetime``/``date``/``time`` accept such objects and ISO 8601 strings; ``uuid.UUID`` accepts UUID
# strings. The string 'null' means NULL for every non-string column. Columns of any other type (JSON
# ...) take values as they are. Anything else is a BadRequest naming the column.

class TypeLike(Protocol):
    """What :func:`coerce_column` reads of a column's type (SQLAlchemy's ``TypeEngine``)."""

    @property
    def python_type(self) -> Type[Any]:
        """The Python type of the column's values; raises NotImplementedError when unknown."""


class ColumnLike(Protocol):
    """What :func:`coerce_column` reads of a column (a SQLAlchemy ``Column``)."""

    @property
    def key(self) -> str:
        """The column's name in results and errors."""

    @property
    def type(self) -> TypeLike:
        """The column's type."""


_BOOL_STRINGS = {'true': True, 'false': False, '1': True, '0': False}


def python_type(column: ColumnLike) -> Optional[Type[Any]]:
    """The column type's ``python_type``, or None when SQLAlchemy does not know one."""
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        number = parse_int(value)
        if number is None:
            raise ValueError(value)
        return number
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(value)


def _to_float(value: Any) -> float:
    if isinstance(value, (str, int, float, decimal.Decimal)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(value)


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, (str, int, float, decimal.Decimal)) and not isinstance(value, bool):
        return decimal.Decimal(str(value))
    raise ValueError(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOL_STRINGS:
        return _BOOL_STRINGS[value.lower()]
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(value)


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(value)


_Temporal = Union[datetime.date, datetime.time]  # datetime.datetime is a date


def _iso(cls: Union[Type[datetime.date], Type[datetime.time]]) -> Callable[[Any], _Temporal]:
    def convert(value: Any) -> _Temporal:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls.fromisoformat(value)
        raise ValueError(value)
    return convert


def _to_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        return uuid.UUID(value)
    raise ValueError(value)


_CONVERTERS: Dict[Type[Any], Callable[[Any], object]] = {
    int: _to_int, float: _to_float, decimal.Decimal: _to_decimal, bool: _to_bool, str: _to_str,
    datetime.datetime: _iso(datetime.datetime), datetime.date: _iso(datetime.date),
    datetime.time: _iso(datetime.time), uuid.UUID: _to_uuid,
}


def coerce_column(column: ColumnLike, value: Any) -> Any:
    """``value`` as the Python type of ``column`` (the rule in the comment above).

    :raises BadRequest: the value cannot be turned into that type.
    """
    if value is None:
        return None
    kind = python_type(column)
    if kind is None:
        return value
    convert = _CONVERTERS.get(kind)
    if convert is None:
        return value
    if value == 'null' and kind is not str:
        return None
    try:
        return convert(value)
    except (ValueError, TypeError, ArithmeticError):
        raise BadRequest(f'Invalid value {value!r} for {kind.__name__} field {column.key!r}',
                         errors={column.key: f'expected {kind.__name__}'}) from None
