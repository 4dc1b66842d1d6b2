"""The shared query parser: filters, the where tree and $select (no store involved)."""
import pytest
from hypothesis import given, strategies as st

from flask_feathers import _query as q
from flask_feathers.errors import BadRequest


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


def test_select_fields():
    record = {'id': 1, 'a': 2, 'b': 3}
    assert q.select_fields(record, None, 'id') == record
    assert q.select_fields(record, ['b', 'missing'], 'id') == {'id': 1, 'b': 3}
