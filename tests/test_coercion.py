"""Query values to typed values: by column type (the SQL service's rule)."""
import datetime
import decimal
import types
import uuid

import pytest

from flask_feathers import _coercion as c
from flask_feathers.errors import BadRequest


def column(python_type, key='col'):
    def get_type(self):
        if python_type is None:
            raise NotImplementedError
        return python_type
    kind = type('FakeType', (), {'python_type': property(get_type)})()
    return types.SimpleNamespace(type=kind, key=key)


@pytest.mark.parametrize('kind, value, expected', [
    (int, '42', 42), (int, '-3', -3), (int, 7, 7), (int, 7.0, 7), (int, 'null', None), (int, None, None),
    (float, '2.5', 2.5), (float, 3, 3.0),
    (decimal.Decimal, '1.10', decimal.Decimal('1.10')), (decimal.Decimal, 2.5, decimal.Decimal('2.5')),
    (bool, 'true', True), (bool, 'false', False), (bool, 'TRUE', True), (bool, 1, True), (bool, False, False),
    (str, 'null', 'null'), (str, 5, '5'), (str, 'x', 'x'),
    (datetime.datetime, '2024-05-01T10:00:00', datetime.datetime(2024, 5, 1, 10)),
    (datetime.date, '2024-05-01', datetime.date(2024, 5, 1)),
    (uuid.UUID, '12345678-1234-5678-1234-567812345678', uuid.UUID('12345678-1234-5678-1234-567812345678')),
    (dict, {'a': 1}, {'a': 1}), (None, 'as is', 'as is'),
])
def test_coerce_column(kind, value, expected):
    result = c.coerce_column(column(kind), value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize('kind, value', [
    (int, 'abc'), (int, '2.5'), (int, 2.5), (int, True), (int, [1]), (float, 'x'), (float, False),
    (decimal.Decimal, 'x'), (bool, 'yes'), (bool, 2), (str, True), (str, {'a': 1}),
    (datetime.datetime, 'yesterday'), (datetime.date, 5), (uuid.UUID, 'nope'),
])
def test_coerce_column_rejects(kind, value):
    with pytest.raises(BadRequest, match="'age'") as info:
        c.coerce_column(column(kind, 'age'), value)
    assert info.value.errors == {'age': f'expected {kind.__name__}'}
