"""Turning service results into what JSON can carry, the same way on every transport.

Services (SQLService above all) return ``datetime``, ``date``, ``time``, ``Decimal`` and ``UUID``
values. Every transport sends them the same way: ISO 8601 text for dates and times, a number for a
``Decimal`` (text when it does not fit a float exactly), text for a UUID; tuples and sets become
lists. Anything else that JSON cannot hold is a ``TypeError``.
"""
from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any, List, Union


def json_default(value: Any) -> Union[str, float, List[Any]]:
    """``default=`` for :func:`json.dumps`: the conversions above."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        as_float = float(value)
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f'{type(value).__name__} values cannot be sent as JSON')


#: ``json.dumps(value, default=json_default)`` without building an encoder for every call (an
#: encoder keeps no state between calls; it is safe to share between threads)
_ENCODER = json.JSONEncoder(default=json_default)


def dumps(value: Any) -> str:
    """JSON text for ``value`` with the conversions above (raises TypeError/ValueError)."""
    return _ENCODER.encode(value)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    :raises TypeError: for a value JSON cannot hold. :raises ValueError: for circular references.
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return json.loads(dumps(value))
