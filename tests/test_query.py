"""The shared query parser, pagination rules and column coercion (no store involved)."""
import datetime
import decimal
import types
import uuid

import pytest
from hypothesis import given, strategies as st

from flask_feathers import _query as q
from flask_feathers.errors import BadRequest, MethodNotAllowed


def test_parse_splits_filters_from_conditions():
    parsed = q.parse_query({'$limit': '5', '$skip': 2, '$sort': {'age': '-1', 'name': 1},
                            '$select': ['name'], 'age': {'$gt': '3', '$lt': 9}, 'name': 'x'})
    assert parsed.filters == q.Filters(limit=5, skip=2, sort=(('age', -1), ('name', 1)), select=('name',))
    assert parsed.where == q.Junction('$and', (q.Condition('age', '$gt', '3'), q.Condition('age', '$lt', 9),
                                               q.Condition('name', '$eq', 'x')))


def test_parse_empty_and_none():
    assert q.parse_query(None) == q.parse_query({}) == q.ParsedQuery()
    assert q.parse_query({}).where.children == ()


def test_logical_operators_nest():
    parsed = q.parse_query({'$or': [{'a': 1}, {'$and': [{'b': 2}, {'c': {'$ne': 3}}]}]})
    J, C = q.Junction, q.Condition
    assert parsed.where == J('$and', (J('$or', (
        J('$and', (C('a', '$eq', 1),)),
        J('$and', (J('$and', (J('$and', (C('b', '$eq', 2),)), J('$and', (C('c', '$ne', 3),)))),)),
    )),))


@pytest.mark.parametrize('value, expected', [
    (['1', '2'], ['1', '2']),
    ('1', ['1']),
    ({'1': 'b', '0': 'a', '10': 'c'}, ['a', 'b', 'c']),  # qs past its array limit
    ({'x': 1}, [{'x': 1}]),
    ((1, 2), [1, 2]),
])
def test_as_list(value, expected):
    assert q.as_list(value) == expected


def test_in_values_become_lists():
    parsed = q.parse_query({'a': {'$in': '1'}, 'b': {'$nin': {'0': 'x', '1': 'y'}}})
    assert [c.value for c in parsed.where.children] == [['1'], ['x', 'y']]


def test_plain_object_value_is_equality():
    assert q.parse_query({'a': {'x': 1}}).where.children == (q.Condition('a', '$eq', {'x': 1}),)


@pytest.mark.parametrize('query, fragment', [
    ({'a': {'$regex': 'x'}}, "'$regex'"),
    ({'a': {'$like': 5}}, '$like'),
    ({'a': {'$like': 'x\\'}}, 'escape'),
    ({'a': {'$notlike': 'x\\\\\\'}}, 'escape'),
    ({'a': {'$ilike': {'x': 1}}}, '$ilike'),
    ({'$text': 'x'}, "'$text'"),
    ({'$or': {'a': 1}}, '$or'),
    ({'$and': [1]}, '$and'),
    ({'$limit': '1e3'}, '$limit'),
    ({'$limit': True}, '$limit'),
    ({'$skip': -3}, '$skip'),
    ({'$sort': {'a': 2}}, "'a'"),
    ({'$sort': ['a']}, '$sort'),
    ({'$select': {'a': 1}}, '$select'),
    ({'a': [1], '$or': [{'$skip': 1}]}, '$skip'),
])
def test_malformed_queries(query, fragment):
    with pytest.raises(BadRequest) as info:
        q.parse_query(query)
    assert fragment in info.value.message


def test_get_query_tolerates_missing_pieces():
    assert q.get_query(None) == {} and q.get_query({}) == {} and q.get_query({'query': None}) == {}
    with pytest.raises(BadRequest):
        q.get_query({'query': 'x=1'})


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
    | st.sampled_from(['$in', '$or', '$and', '$gt', '$limit', '$sort', '1', '-1']),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=4) | st.sampled_from(['$in', '$nin', '$or', '$and', '$lt', '$sort', '$select', '$skip',
                                                '$limit', '$ne', '0', '1', 'a']), inner, max_size=3),
    max_leaves=10)


@given(st.dictionaries(st.text(max_size=4) | st.sampled_from(['$or', '$limit', '$sort', '$select', 'a']),
                       JSONISH, max_size=4))
def test_parser_only_ever_raises_badrequest(query):
    try:
        q.parse_query(query)
    except BadRequest:
        pass


# -- pagination -----------------------------------------------------------------------------------

@pytest.mark.parametrize('limit, paginate, expected', [
    (None, None, None),
    (7, None, 7),
    (None, {'default': 10, 'max': 50}, 10),
    (80, {'default': 10, 'max': 50}, 50),
    (0, {'default': 10, 'max': 50}, 0),
    (None, {'default': None, 'max': 5}, 5),
    (None, {'default': 3, 'max': None}, 3),
])
def test_effective_limit(limit, paginate, expected):
    assert q.effective_limit(q.Filters(limit=limit), paginate) == expected


def test_paginate_for_call():
    service = {'default': 10, 'max': 50}
    assert q.paginate_for_call(service, None) is service
    assert q.paginate_for_call(service, {'paginate': None}) is service
    assert q.paginate_for_call(service, {'paginate': False}) is None
    assert q.paginate_for_call(None, {'paginate': {'default': 2}}) == {'default': 2, 'max': None}
    with pytest.raises(BadRequest):
        q.paginate_for_call(service, {'paginate': {'size': 1}})


@pytest.mark.parametrize('bad', [{'default': -1}, {'max': '5'}, {'pages': 1}, 5, True])
def test_normalize_paginate_rejects_misuse(bad):
    with pytest.raises(ValueError, match='paginate'):
        q.normalize_paginate(bad)


def test_multi_option():
    assert q.normalize_multi(True) == {'create', 'patch', 'remove'}
    assert q.normalize_multi(False) == frozenset()
    assert q.normalize_multi('patch') == {'patch'}
    with pytest.raises(ValueError, match='update'):
        q.normalize_multi(['update'])
    q.check_multi(frozenset({'patch'}), 'patch')
    with pytest.raises(MethodNotAllowed) as info:
        q.check_multi(frozenset({'patch'}), 'remove')
    # Feathers' own wording: @feathersjs/adapter-tests and clients compare the message exactly.
    assert info.value.message == 'Can not remove multiple entries'
    assert 'multi=True' in info.value.data['hint']


def test_select_fields():
    record = {'id': 1, 'a': 2, 'b': 3}
    assert q.select_fields(record, None, 'id') == record
    assert q.select_fields(record, ['b', 'missing'], 'id') == {'id': 1, 'b': 3}


# -- column coercion ------------------------------------------------------------------------------

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
    result = q.coerce_column(column(kind), value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize('kind, value', [
    (int, 'abc'), (int, '2.5'), (int, 2.5), (int, True), (int, [1]), (float, 'x'), (float, False),
    (decimal.Decimal, 'x'), (bool, 'yes'), (bool, 2), (str, True), (str, {'a': 1}),
    (datetime.datetime, 'yesterday'), (datetime.date, 5), (uuid.UUID, 'nope'),
])
def test_coerce_column_rejects(kind, value):
    with pytest.raises(BadRequest, match="'age'") as info:
        q.coerce_column(column(kind, 'age'), value)
    assert info.value.errors == {'age': f'expected {kind.__name__}'}
