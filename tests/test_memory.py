"""MemoryService: the shared conformance suite plus what only the memory store promises."""
import pytest

from flask_feathers.errors import BadRequest, Conflict, NotFound
from flask_feathers.memory import MemoryService, coerce_like



@pytest.fixture
def make_service():
    return MemoryService


def test_default_options():
    service = MemoryService()
    assert service.id == 'id'
    assert service.paginate == {'default': 10, 'max': 50}
    assert service.multi == frozenset()


def test_results_are_copies():
    service = MemoryService(paginate=None)
    data = {'name': 'Alice', 'tags': ['a']}
    created = service.create(data)
    data['tags'].append('from caller')
    created['tags'].append('from result')
    service.find()[0]['tags'].append('from find')
    service.get(created['id'])['tags'].append('from get')
    service.patch(created['id'], {'x': 1})['tags'].append('from patch')
    assert service.get(created['id'])['tags'] == ['a']


def test_uses_the_given_store_and_continues_its_ids():
    store = {1: {'id': 1, 'name': 'one'}, 7: {'id': 7, 'name': 'seven'}, 'k': {'id': 'k', 'name': 'k'}}
    service = MemoryService(store=store)
    created = service.create({'name': 'next'})
    assert created['id'] == 8
    assert store[8]['name'] == 'next'
    assert service.get('k')['name'] == 'k'


def test_explicit_ids_move_the_counter():
    service = MemoryService()
    service.create({'id': 5, 'name': 'five'})
    assert service.create({'name': 'auto'})['id'] == 6
    service.create({'id': 'abc', 'name': 'str id'})
    assert service.get('abc')['name'] == 'str id'
    with pytest.raises(Conflict):
        service.create({'id': 6, 'name': 'dup'})


def test_string_ids_match_int_keys_and_back():
    service = MemoryService(store={3: {'id': 3}, '10': {'id': '10'}})
    assert service.get('3') == {'id': 3}
    assert service.get(10) == {'id': '10'}
    for missing in ('3.0', ' 3x', 4):
        with pytest.raises(NotFound):
            service.get(missing)


def test_unhashable_id_is_badrequest():
    with pytest.raises(BadRequest):
        MemoryService().get(['x'])


@pytest.mark.parametrize('value, stored, expected', [
    ('5', 5, 5),
    ('2.5', 5, 2.5),
    ('abc', 5, 'abc'),
    ('2.5', 1.0, 2.5),
    ('true', True, True),
    ('false', True, False),
    ('yes', True, 'yes'),
    ('null', None, None),
    ('5', '5', '5'),
    ('5', None, '5'),
    (5, '5', 5),
    (True, 1, True),
])
def test_coerce_like(value, stored, expected):
    result = coerce_like(value, stored)
    assert result == expected and type(result) is type(expected)


def test_strings_coerce_to_the_stored_type_per_record():
    service = MemoryService(paginate=None)
    service.create({'v': 10})
    service.create({'v': '10'})
    service.create({'v': 10.0})
    service.create({'v': 'x'})
    assert len(service.find({'query': {'v': '10'}})) == 3
    assert len(service.find({'query': {'v': 10}})) == 2  # an int never matches the string '10'
    # against the stored strings '10' and 'x' the comparison is between strings: '10' < '9' < 'x'
    assert [r['v'] for r in service.find({'query': {'v': {'$gt': '9'}}})] == [10, 10.0, 'x']


def test_mixed_types_sort_without_error():
    service = MemoryService(paginate=None)
    for value in (3, 'b', None, 1, 'a'):
        service.create({'v': value})
    assert [r['v'] for r in service.find({'query': {'$sort': {'v': 1}}})] == [None, 1, 3, 'a', 'b']


def test_custom_operators():
    service = MemoryService(paginate=None, operators={
        '$startswith': lambda stored, operand: isinstance(stored, str) and stored.startswith(operand)})
    for name in ('Alice', 'Albert', 'Bob'):
        service.create({'name': name})
    assert [r['name'] for r in service.find({'query': {'name': {'$startswith': 'Al'}}})] == ['Alice', 'Albert']
    assert [r['name'] for r in service.find({'query': {'$or': [{'name': {'$startswith': 'B'}}]}})] == ['Bob']
    with pytest.raises(BadRequest, match=r'\$startswith'):
        MemoryService().find({'query': {'name': {'$startswith': 'Al'}}})
    with pytest.raises(BadRequest, match=r"5 for \$startswith on field 'name'"):  # str.startswith(5)
        service.find({'query': {'name': {'$startswith': 5}}})


def test_like_matches_strings_only():
    service = MemoryService(paginate=None)
    service.create({'name': 'x', 'code': 12})
    service.create({'name': 'y', 'code': '12'})
    service.create({'name': 'z'})
    assert [r['name'] for r in service.find({'query': {'code': {'$like': '1%'}}})] == ['y']
    assert [r['name'] for r in service.find({'query': {'code': {'$notlike': '1%'}}})] == ['x', 'z']


def test_ordering_with_a_string_that_is_no_number_is_badrequest():
    # issue 19: the same answer as SQLService (400), not an empty result
    service = MemoryService(paginate=None)
    service.create({'age': 3, 'active': True, 'name': 'a'})
    for query in ({'id': {'$gte': 'abc'}}, {'age': {'$lt': '3x'}}, {'active': {'$gt': 'yes'}}):
        with pytest.raises(BadRequest) as info:
            service.find({'query': query})
        assert info.value.errors and list(info.value.errors) == [next(iter(query))]
    # what does convert, or compares with a string, or is a JSON value, still answers
    assert len(service.find({'query': {'age': {'$lt': '3.5'}, 'name': {'$gte': 'a'}}})) == 1
    assert service.find({'query': {'score': {'$lt': 'abc'}}}) == []  # no number to compare with
    assert service.find({'query': {'age': {'$gt': [1]}}}) == []
