"""The conformance suite every ready-made service passes.

Not collected by itself: ``test_memory.py`` and ``test_sql.py`` import these tests, each with its own
``make_service`` fixture (``make_service(**options)`` returns a fresh, empty service whose records may
hold the fields of :data:`PEOPLE` plus integer fields ``f0`` ... ``f7``).
Query cases come twice: as socket JSON values and as the strings a REST query string gives.
"""
import threading

import pytest

from flask_feathers.errors import BadRequest, Conflict, MethodNotAllowed, NotFound

PEOPLE = [
    {'name': 'Alice', 'age': 30, 'score': 1.5, 'active': True, 'city': 'Paris'},
    {'name': 'Bob', 'age': 25, 'score': 2.5, 'active': False, 'city': 'Berlin'},
    {'name': 'Carol', 'age': 35, 'score': 3.0, 'active': True, 'city': None},
    {'name': 'Dave', 'age': 25, 'score': 0.5, 'active': True, 'city': 'Paris'},
    {'name': 'Eve', 'age': 40, 'score': 4.25, 'active': False, 'city': 'Rome'},
]
ALL = ['Alice', 'Bob', 'Carol', 'Dave', 'Eve']
UNPAGED = {'paginate': False}


def seed(service, people=PEOPLE):
    return [service.create(dict(person)) for person in people]


def names(result):
    rows = result['data'] if isinstance(result, dict) else result
    return [row['name'] for row in rows]


def find_names(service, query):
    return sorted(names(service.find({'query': query, 'paginate': False})))


def subset(record, expected):
    return {key: record.get(key) for key in expected} == expected


# -- create / get ---------------------------------------------------------------------------------

def test_create_returns_stored_record_with_generated_id(make_service):
    service = make_service()
    created = service.create({'name': 'Alice', 'age': 30})
    assert subset(created, {'name': 'Alice', 'age': 30})
    assert created['id'] is not None
    assert service.get(created['id']) == created


def test_get_accepts_rest_string_id(make_service):
    service = make_service()
    created = service.create({'name': 'Alice'})
    assert service.get(str(created['id']))['name'] == 'Alice'


def test_generated_ids_are_distinct(make_service):
    service = make_service()
    ids = [service.create({'name': f'n{i}'})['id'] for i in range(20)]
    assert len(set(ids)) == 20


def test_get_missing_is_notfound_naming_the_id(make_service):
    service = make_service()
    seed(service)
    for missing in (987654, '987654', 'abc'):
        with pytest.raises(NotFound) as info:
            service.get(missing)
        assert str(missing) in info.value.message
        assert info.value.to_dict()['code'] == 404


def test_params_may_be_none_or_lack_query(make_service):
    service = make_service(paginate=None)
    first = seed(service)[0]
    assert sorted(names(service.find(None))) == ALL
    assert sorted(names(service.find({}))) == ALL
    assert sorted(names(service.find({'query': None}))) == ALL
    assert service.get(first['id'], None)['name'] == 'Alice'
    assert service.get(first['id'], {'user': 'x'})['name'] == 'Alice'


def test_create_with_duplicate_id_is_conflict(make_service):
    service = make_service()
    created = service.create({'name': 'Alice'})
    with pytest.raises(Conflict):
        service.create({'id': created['id'], 'name': 'Again'})
    assert service.get(created['id'])['name'] == 'Alice'


@pytest.mark.parametrize('bad', [None, 'text', 5, ['list']])
def test_create_non_object_is_badrequest(make_service, bad):
    service = make_service(multi=True)
    with pytest.raises(BadRequest):
        service.create(bad)


def test_create_list_needs_multi(make_service):
    service = make_service()
    with pytest.raises(MethodNotAllowed):
        service.create([{'name': 'a'}, {'name': 'b'}])
    assert service.find(UNPAGED) == []


def test_create_list_under_multi(make_service):
    service = make_service(multi=True)
    created = service.create([{'name': 'a'}, {'name': 'b'}, {'name': 'c'}])
    assert [r['name'] for r in created] == ['a', 'b', 'c']
    assert len({r['id'] for r in created}) == 3
    assert service.create([]) == []


def test_create_list_is_all_or_nothing(make_service):
    service = make_service(multi=True)
    existing = service.create({'name': 'first'})
    with pytest.raises(Conflict):
        service.create([{'name': 'ok'}, {'id': existing['id'], 'name': 'dup'}])
    assert names(service.find(UNPAGED)) == ['first']


# -- update / patch / remove ----------------------------------------------------------------------

def test_update_replaces_and_keeps_id(make_service):
    service = make_service()
    created = service.create({'name': 'Alice', 'age': 30, 'city': 'Paris'})
    updated = service.update(str(created['id']), {'id': created['id'] + 1000, 'name': 'Alicia'})
    assert updated['id'] == created['id']
    assert updated['name'] == 'Alicia'
    assert updated.get('age') is None and updated.get('city') is None
    assert service.get(created['id']) == updated
    with pytest.raises(NotFound):
        service.get(created['id'] + 1000)


def test_update_missing_is_notfound(make_service):
    service = make_service()
    with pytest.raises(NotFound):
        service.update(424242, {'name': 'x'})
    assert service.find(UNPAGED) == []


def test_patch_merges(make_service):
    service = make_service()
    created = service.create({'name': 'Alice', 'age': 30, 'city': 'Paris'})
    patched = service.patch(str(created['id']), {'age': 31, 'id': 999999})
    assert subset(patched, {'id': created['id'], 'name': 'Alice', 'age': 31, 'city': 'Paris'})
    assert service.get(created['id']) == patched


def test_patch_missing_is_notfound(make_service):
    service = make_service()
    with pytest.raises(NotFound):
        service.patch(424242, {'name': 'x'})


@pytest.mark.parametrize('method', ['patch', 'update'])
def test_non_object_data_is_badrequest(make_service, method):
    service = make_service()
    created = service.create({'name': 'Alice'})
    with pytest.raises(BadRequest):
        getattr(service, method)(created['id'], ['name', 'x'])
    assert service.get(created['id'])['name'] == 'Alice'


def test_remove_returns_the_record(make_service):
    service = make_service()
    created = service.create({'name': 'Alice'})
    assert service.remove(str(created['id'])) == created
    with pytest.raises(NotFound):
        service.get(created['id'])
    with pytest.raises(NotFound):
        service.remove(created['id'])


@pytest.mark.parametrize('call', [
    lambda s: s.patch(None, {'age': 1}, {'query': {'age': 25}}),
    lambda s: s.remove(None, {'query': {'age': 25}}),
])
def test_multi_patch_remove_need_multi(make_service, call):
    service = make_service()
    seed(service)
    with pytest.raises(MethodNotAllowed):
        call(service)
    assert find_names(service, {'age': 25}) == ['Bob', 'Dave']


def test_multi_patch_touches_matches_only(make_service):
    service = make_service(multi=True)
    seed(service)
    patched = service.patch(None, {'city': 'Oslo'}, {'query': {'age': '25'}})
    assert sorted(names(patched)) == ['Bob', 'Dave']
    assert all(r['city'] == 'Oslo' for r in patched)
    assert find_names(service, {'city': 'Oslo'}) == ['Bob', 'Dave']
    assert service.patch(None, {'city': 'x'}, {'query': {'age': 99}}) == []


def test_multi_patch_can_change_the_queried_field(make_service):
    service = make_service(multi=True)
    seed(service)
    patched = service.patch(None, {'age': 26}, {'query': {'age': 25}})
    assert sorted(names(patched)) == ['Bob', 'Dave'] and {r['age'] for r in patched} == {26}


def test_multi_remove_removes_matches_only(make_service):
    service = make_service(multi=['remove'])
    seed(service)
    removed = service.remove(None, {'query': {'active': 'false'}})
    assert sorted(names(removed)) == ['Bob', 'Eve']
    assert find_names(service, {}) == ['Alice', 'Carol', 'Dave']


@pytest.mark.parametrize('method', ['get', 'patch', 'update', 'remove'])
def test_id_methods_also_honour_the_query(make_service, method):
    service = make_service()
    alice = seed(service)[0]
    args = {'get': (), 'remove': (), 'patch': ({'age': 1},), 'update': ({'name': 'x'},)}[method]
    with pytest.raises(NotFound):
        getattr(service, method)(alice['id'], *args, {'query': {'name': 'Bob'}})
    assert service.get(alice['id']) == alice
    result = getattr(service, method)(alice['id'], *args, {'query': {'name': 'Alice'}})
    assert result['id'] == alice['id']


# -- query syntax ---------------------------------------------------------------------------------

QUERY_CASES = [
    # (socket JSON query, REST string query, expected names)
    ({'age': 25}, {'age': '25'}, ['Bob', 'Dave']),
    ({'active': True}, {'active': 'true'}, ['Alice', 'Carol', 'Dave']),
    ({'active': False}, {'active': 'false'}, ['Bob', 'Eve']),
    ({'score': 2.5}, {'score': '2.5'}, ['Bob']),
    ({'name': 'Eve', 'age': 40}, {'name': 'Eve', 'age': '40'}, ['Eve']),
    ({'age': {'$gt': 30}}, {'age': {'$gt': '30'}}, ['Carol', 'Eve']),
    ({'age': {'$gte': 30}}, {'age': {'$gte': '30'}}, ['Alice', 'Carol', 'Eve']),
    ({'age': {'$lt': 30}}, {'age': {'$lt': '30'}}, ['Bob', 'Dave']),
    ({'age': {'$lte': 25}}, {'age': {'$lte': '25'}}, ['Bob', 'Dave']),
    ({'age': {'$gt': 24, '$lt': 30}}, {'age': {'$gt': '24', '$lt': '30'}}, ['Bob', 'Dave']),
    ({'score': {'$gt': 2.5}}, {'score': {'$gt': '2.5'}}, ['Carol', 'Eve']),
    ({'name': {'$gte': 'C'}}, {'name': {'$gte': 'C'}}, ['Carol', 'Dave', 'Eve']),
    ({'age': {'$in': [25, 40]}}, {'age': {'$in': ['25', '40']}}, ['Bob', 'Dave', 'Eve']),
    ({'age': {'$in': [40]}}, {'age': {'$in': '40'}}, ['Eve']),
    ({'age': {'$in': []}}, {'age': {'$in': []}}, []),
    ({'age': {'$nin': [25, 40]}}, {'age': {'$nin': ['25', '40']}}, ['Alice', 'Carol']),
    ({'name': {'$ne': 'Bob'}}, {'name': {'$ne': 'Bob'}}, ['Alice', 'Carol', 'Dave', 'Eve']),
    ({'active': {'$ne': True}}, {'active': {'$ne': 'true'}}, ['Bob', 'Eve']),
    # A NULL city is "not Paris" and "not in [Paris]", as in Feathers' memory adapter.
    ({'city': {'$ne': 'Paris'}}, {'city': {'$ne': 'Paris'}}, ['Bob', 'Carol', 'Eve']),
    ({'city': {'$nin': ['Paris', 'Rome']}}, {'city': {'$nin': ['Paris', 'Rome']}}, ['Bob', 'Carol']),
    ({'city': None}, {'city': None}, ['Carol']),
    ({'city': {'$ne': None}}, {'city': {'$ne': None}}, ['Alice', 'Bob', 'Dave', 'Eve']),
    ({'city': {'$in': ['Rome', None]}}, {'city': {'$in': ['Rome', None]}}, ['Carol', 'Eve']),
    ({'city': {'$nin': ['Rome', None]}}, {'city': {'$nin': ['Rome', None]}}, ['Alice', 'Bob', 'Dave']),
    ({'$or': [{'name': 'Alice'}, {'age': {'$gt': 35}}]},
     {'$or': [{'name': 'Alice'}, {'age': {'$gt': '35'}}]}, ['Alice', 'Eve']),
    ({'$or': [{'name': 'Alice'}, {'name': 'Bob'}]},
     {'$or': {'0': {'name': 'Alice'}, '1': {'name': 'Bob'}}}, ['Alice', 'Bob']),
    ({'$and': [{'age': {'$gte': 25}}, {'age': {'$lt': 35}}]},
     {'$and': [{'age': {'$gte': '25'}}, {'age': {'$lt': '35'}}]}, ['Alice', 'Bob', 'Dave']),
    ({'active': True, '$or': [{'city': 'Paris'}, {'$and': [{'age': {'$gt': 30}}, {'score': {'$lt': 3.5}}]}]},
     {'active': 'true', '$or': [{'city': 'Paris'}, {'$and': [{'age': {'$gt': '30'}}, {'score': {'$lt': '3.5'}}]}]},
     ['Alice', 'Carol', 'Dave']),
]


@pytest.mark.parametrize('style', ['json', 'rest'])
@pytest.mark.parametrize('case', QUERY_CASES, ids=[str(c[0]) for c in QUERY_CASES])
def test_query_operators(make_service, case, style):
    json_query, rest_query, expected = case
    service = make_service()
    seed(service)
    assert find_names(service, json_query if style == 'json' else rest_query) == expected


SORT_CASES = [
    ({'age': -1, 'name': 1}, {'age': '-1', 'name': '1'}, ['Eve', 'Carol', 'Alice', 'Bob', 'Dave']),
    ({'age': 1, 'score': -1}, {'age': '1', 'score': '-1'}, ['Bob', 'Dave', 'Alice', 'Carol', 'Eve']),
    ({'name': -1}, {'name': '-1'}, ['Eve', 'Dave', 'Carol', 'Bob', 'Alice']),
    # NULL sorts first ascending and last descending; ties keep creation order.
    ({'city': 1}, {'city': '1'}, ['Carol', 'Bob', 'Alice', 'Dave', 'Eve']),
    ({'city': -1}, {'city': '-1'}, ['Eve', 'Alice', 'Dave', 'Bob', 'Carol']),
]


@pytest.mark.parametrize('style', ['json', 'rest'])
@pytest.mark.parametrize('case', SORT_CASES, ids=[str(c[0]) for c in SORT_CASES])
def test_sort(make_service, case, style):
    json_sort, rest_sort, expected = case
    service = make_service()
    seed(service)
    result = service.find({'query': {'$sort': json_sort if style == 'json' else rest_sort}})
    assert names(result) == expected


@pytest.mark.parametrize('select', [['name'], 'name', ['name', 'id'], {'0': 'name'}])
def test_select_keeps_id(make_service, select):
    service = make_service()
    alice = seed(service)[0]
    rows = service.find({'query': {'$select': select, '$sort': {'name': 1}}})['data']
    assert [set(r) for r in rows] == [{'id', 'name'}] * 5
    assert rows[0] == {'id': alice['id'], 'name': 'Alice'}
    assert service.get(alice['id'], {'query': {'$select': select}}) == {'id': alice['id'], 'name': 'Alice'}


def test_select_applies_to_writes(make_service):
    service = make_service()
    created = service.create({'name': 'Alice', 'age': 30}, {'query': {'$select': ['age']}})
    assert created == {'id': created['id'], 'age': 30}
    patched = service.patch(created['id'], {'age': 31}, {'query': {'$select': ['age']}})
    assert patched == {'id': created['id'], 'age': 31}
    assert service.get(created['id'])['name'] == 'Alice'


@pytest.mark.parametrize('query', [
    {'age': {'$regex': 'x'}},
    {'$where': 'true'},
    {'$or': {'name': 'x'}},
    {'$or': []},
    {'$and': 'x'},
    {'$limit': 'ten'},
    {'$limit': -1},
    {'$skip': '1.5'},
    {'$sort': {'age': 'up'}},
    {'$sort': 'age'},
    {'$select': [1]},
    {'$or': [{'$limit': 1}]},
])
def test_bad_query_is_badrequest(make_service, query):
    service = make_service()
    seed(service)
    with pytest.raises(BadRequest) as info:
        service.find({'query': query})
    assert info.value.message


def test_unknown_operator_names_it(make_service):
    service = make_service()
    with pytest.raises(BadRequest, match=r'\$regex'):
        service.find({'query': {'name': {'$regex': 'A.*'}}})


@pytest.mark.parametrize('query', [
    {'id': {'$gte': 'abc'}},
    {'age': {'$lt': 'abc'}},
    {'$or': [{'name': 'Alice'}, {'age': {'$gt': 'ten'}}]},
])
def test_uncomparable_value_is_badrequest(make_service, query):
    # ?id[$gte]=abc on int ids: both services answer 400, never an empty 200 (issue 19).
    service = make_service()
    seed(service)
    with pytest.raises(BadRequest) as info:
        service.find({'query': query})
    assert info.value.to_dict()['code'] == 400


LIKE_CASES = [
    ({'name': {'$like': 'A%'}}, ['Alice']),
    ({'name': {'$like': '%e'}}, ['Alice', 'Dave', 'Eve']),
    ({'name': {'$like': '_o%'}}, ['Bob']),
    ({'name': {'$like': '___'}}, ['Bob', 'Eve']),
    ({'name': {'$like': 'Car_l'}}, ['Carol']),
    ({'name': {'$like': '%'}}, ALL),
    ({'name': {'$notlike': '%e'}}, ['Bob', 'Carol']),
    ({'city': {'$notlike': 'P%'}}, ['Bob', 'Carol', 'Eve']),  # NULL is not like it
    ({'city': {'$like': '%'}}, ['Alice', 'Bob', 'Dave', 'Eve']),  # NULL is not like anything
    ({'name': {'$ilike': 'a%'}}, ['Alice']),
    ({'name': {'$ilike': '%E'}}, ['Alice', 'Dave', 'Eve']),
    ({'name': {'$ilike': 'bOb'}}, ['Bob']),
    ({'name': {'$like': 'Alice', '$ne': 'Alice'}}, []),
    ({'$or': [{'name': {'$like': 'B%'}}, {'city': {'$ilike': 'rome'}}]}, ['Bob', 'Eve']),
]


@pytest.mark.parametrize('case', LIKE_CASES, ids=[str(c[0]) for c in LIKE_CASES])
def test_like_operators(make_service, case):
    query, expected = case
    service = make_service()
    seed(service)
    assert find_names(service, query) == expected


def test_like_escape_and_literal_wildcards(make_service):
    service = make_service()
    seed(service, [{'name': '50%'}, {'name': '500'}, {'name': 'a_b'}, {'name': 'axb'}, {'name': 'c\\d'}])
    assert find_names(service, {'name': {'$like': '50\\%'}}) == ['50%']
    assert find_names(service, {'name': {'$like': '50%'}}) == ['50%', '500']
    assert find_names(service, {'name': {'$like': 'a\\_b'}}) == ['a_b']
    assert find_names(service, {'name': {'$like': 'a_b'}}) == ['a_b', 'axb']
    assert find_names(service, {'name': {'$like': 'c\\\\d'}}) == ['c\\d']


def test_like_matches_characters_and_respects_accents(make_service):
    # MariaDB's default collation ignores accents and a binary comparison counts bytes: neither here.
    service = make_service()
    seed(service, [{'name': 'é'}, {'name': 'e'}, {'name': 'ée'}, {'name': 'E'}])
    assert find_names(service, {'name': {'$like': '_'}}) == ['E', 'e', 'é']
    assert find_names(service, {'name': {'$like': 'e'}}) == ['e']
    assert find_names(service, {'name': {'$like': 'é%'}}) == ['é', 'ée']
    assert find_names(service, {'name': {'$ilike': 'e'}}) == ['E', 'e']
    assert find_names(service, {'name': {'$notlike': '_'}}) == ['ée']


@pytest.mark.parametrize('query', [{'name': {'$like': 5}}, {'name': {'$ilike': ['a']}}])
def test_like_needs_a_pattern_string(make_service, query):
    service = make_service()
    with pytest.raises(BadRequest, match='pattern'):
        service.find({'query': query})


def test_like_works_with_multi_writes(make_service):
    service = make_service(multi=True)
    seed(service)
    removed = service.remove(None, {'query': {'name': {'$like': '%a%'}}})
    assert sorted(names(removed)) == ['Carol', 'Dave']
    assert find_names(service, {}) == ['Alice', 'Bob', 'Eve']


def test_multi_refusal_speaks_feathers(make_service):
    service = make_service()
    for method, call in [('create', lambda: service.create([{'name': 'a'}])),
                         ('patch', lambda: service.patch(None, {'age': 1})),
                         ('remove', lambda: service.remove(None))]:
        with pytest.raises(MethodNotAllowed) as info:
            call()
        assert info.value.message == f'Can not {method} multiple entries'


# -- params['adapter'] (Feathers 5's per-call adapter options) ------------------------------------

def test_adapter_params_override_paginate(make_service):
    service = make_service(paginate=None)
    seed(service)
    page = service.find({'adapter': {'paginate': {'default': 3}}})
    assert (page['total'], page['limit'], page['skip'], len(page['data'])) == (5, 3, 0, 3)
    # params['adapter'] wins over params['paginate'], as in Feathers' getOptions
    page = service.find({'paginate': False, 'adapter': {'paginate': {'default': 2, 'max': 4}}})
    assert page['limit'] == 2
    paged = make_service(paginate={'default': 2, 'max': 2})
    seed(paged)
    assert sorted(names(paged.find({'adapter': {'paginate': False}}))) == ALL


def test_adapter_params_override_multi(make_service):
    service = make_service(multi=['patch'])
    seed(service)
    created = service.create([{'name': 'Gerald'}, {'name': 'Herald'}], {'adapter': {'multi': ['create']}})
    assert names(created) == ['Gerald', 'Herald']
    with pytest.raises(MethodNotAllowed, match='Can not patch multiple entries'):
        service.patch(None, {'age': 2}, {'query': {'age': 25}, 'adapter': {'multi': ['create']}})
    assert names(service.patch(None, {'age': 2}, {'query': {'name': 'Bob'}})) == ['Bob']
    with pytest.raises(MethodNotAllowed):
        service.create([{'name': 'x'}])


@pytest.mark.parametrize('adapter', [{'paginate': {'pages': 1}}, {'multi': ['update']},
                                     {'operators': ['$regex']}, {'filters': {'$x': 5}}])
def test_bad_adapter_values_are_badrequest(make_service, adapter):
    service = make_service()
    with pytest.raises(BadRequest, match='adapter|paginate'):
        service.find({'adapter': adapter})


def test_unknown_adapter_option_is_a_usage_error(make_service):
    service = make_service()
    with pytest.raises(ValueError, match="params\\['adapter'\\]"):
        service.find({'adapter': {'whitelist': ['$regex']}})


def test_extra_filters_are_accepted_and_left_out_of_the_query(make_service):
    seen = []
    service = make_service(filters={'$populate': True, '$tag': lambda v: seen.append(v) or v})
    seed(service)
    result = service.find({'query': {'$populate': 'author', '$tag': 'x', 'age': 25}, 'paginate': False})
    assert sorted(names(result)) == ['Bob', 'Dave'] and seen == ['x']
    plain = make_service()
    with pytest.raises(BadRequest, match=r'\$populate'):
        plain.find({'query': {'$populate': 'author'}})
    # per call, params['adapter'] allows it on a service without the option
    assert plain.find({'query': {'$populate': 'a'}, 'adapter': {'filters': {'$populate': True}},
                       'paginate': False}) == []


def test_extra_filter_converter_errors_are_badrequest(make_service):
    service = make_service(filters={'$n': int})
    with pytest.raises(BadRequest, match=r'\$n'):
        service.find({'query': {'$n': 'x'}})


def test_option_misuse_raises_builtin_errors(make_service):
    with pytest.raises(TypeError, match='implementation'):
        make_service(operators=['$regex'])
    with pytest.raises(ValueError, match=r'\$in'):
        make_service(operators={'$in': lambda a, b: True})
    with pytest.raises(ValueError, match=r'\$limit'):
        make_service(filters={'$limit': True})


# -- pagination -----------------------------------------------------------------------------------

def test_default_pagination(make_service):
    service = make_service()  # the default: {'default': 10, 'max': 50}
    seed(service, [{'name': f'p{i:02}', 'age': i} for i in range(12)])
    result = service.find({'query': {'$sort': {'age': 1}}})
    assert set(result) == {'total', 'limit', 'skip', 'data'}
    assert (result['total'], result['limit'], result['skip']) == (12, 10, 0)
    assert names(result) == [f'p{i:02}' for i in range(10)]


def test_total_counted_before_skip_and_limit(make_service):
    service = make_service(paginate={'default': 2, 'max': 3})
    seed(service, [{'name': f'p{i:02}', 'age': i} for i in range(12)])
    result = service.find({'query': {'age': {'$gte': '4'}, '$sort': {'age': '1'}, '$skip': '3', '$limit': '2'}})
    assert (result['total'], result['limit'], result['skip']) == (8, 2, 3)
    assert names(result) == ['p07', 'p08']


def test_limit_clamped_to_max(make_service):
    service = make_service(paginate={'default': 2, 'max': 3})
    seed(service)
    result = service.find({'query': {'$limit': '10'}})
    assert result['limit'] == 3 and len(result['data']) == 3 and result['total'] == 5


def test_limit_zero_counts_only(make_service):
    service = make_service()
    seed(service)
    assert service.find({'query': {'$limit': 0, 'age': 25}}) == {'total': 2, 'limit': 0, 'skip': 0, 'data': []}


def test_pages_are_disjoint_and_complete(make_service):
    service = make_service(paginate={'default': 2, 'max': 2})
    seed(service)
    seen = []
    for skip in range(0, 6, 2):
        seen += names(service.find({'query': {'$skip': skip, '$sort': {'age': 1}}}))
    assert sorted(seen) == ALL


def test_skip_past_the_end_still_counts(make_service):
    service = make_service()
    seed(service)
    assert service.find({'query': {'$skip': '10', 'age': {'$gte': 30}}}) == {
        'total': 3, 'limit': 10, 'skip': 10, 'data': []}


def test_paginate_false_per_call(make_service):
    service = make_service(paginate={'default': 2, 'max': 2})
    seed(service)
    result = service.find({'query': {}, 'paginate': False})
    assert isinstance(result, list) and sorted(names(result)) == ALL
    assert names(service.find({'query': {'$limit': 1, '$sort': {'name': -1}}, 'paginate': False})) == ['Eve']


def test_no_pagination_returns_lists(make_service):
    service = make_service(paginate=None)
    seed(service)
    assert isinstance(service.find({}), list)
    assert names(service.find({'query': {'$sort': {'age': -1}, '$skip': 1, '$limit': 2}})) == ['Carol', 'Alice']


def test_paginate_per_call_dict(make_service):
    service = make_service(paginate=None)
    seed(service)
    result = service.find({'query': {}, 'paginate': {'default': 1, 'max': 2}})
    assert result['total'] == 5 and result['limit'] == 1 and len(result['data']) == 1


# -- threads --------------------------------------------------------------------------------------

def _run_threads(count, target):
    barrier = threading.Barrier(count)
    errors = []

    def run(index):
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:  # noqa: B902 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), 'a worker thread hung'
    assert errors == [], f'worker errors: {[(type(e).__name__, str(e)) for e in errors]}'


def test_concurrent_creates_get_distinct_ids(make_service):
    service = make_service()
    ids = [[] for _ in range(8)]
    _run_threads(8, lambda t: ids[t].extend(service.create({'name': f't{t}-{i}', 'age': t})['id']
                                            for i in range(50)))
    flat = [i for chunk in ids for i in chunk]
    assert len(flat) == 400 and len(set(flat)) == 400
    assert service.find({'query': {'$limit': 0}})['total'] == 400
    assert service.find({'query': {'age': 3, '$limit': 0}})['total'] == 50


def test_concurrent_patches_of_different_fields_all_land(make_service):
    service = make_service()
    record = service.create({'name': 'shared'})

    def work(t):
        for value in range(1, 51):
            service.patch(record['id'], {f'f{t}': value})
    _run_threads(8, work)
    final = service.get(record['id'])
    assert [final[f'f{t}'] for t in range(8)] == [50] * 8
    assert final['name'] == 'shared'


def test_concurrent_multi_writes_do_not_deadlock(make_service):
    service = make_service(multi=True)
    seed(service)

    def work(t):
        for value in range(20):
            if t % 2:
                service.patch(None, {f'f{t}': value}, {'query': {'age': {'$gte': 25}}})
            else:
                service.create({'name': f'n{t}-{value}'})
                service.remove(None, {'query': {'name': f'n{t}-{value}'}})
    _run_threads(8, work)
    rows = service.find(UNPAGED)
    assert sorted(names(rows)) == ALL
    assert all(row[f'f{t}'] == 19 for row in rows for t in (1, 3, 5, 7))


def test_page_total_agrees_with_its_data_during_concurrent_writes(make_service):
    service = make_service(paginate={'default': 1000, 'max': 1000})
    seed(service)
    stop = threading.Event()
    pages = []

    def work(t):
        if t == 0:
            try:
                for i in range(200):
                    service.create({'name': f'w{i}', 'age': 50})
                    service.remove(service.create({'name': f'r{i}', 'age': 50})['id'])
            finally:
                stop.set()
        else:
            while not stop.is_set():
                pages.append(service.find({'query': {'age': {'$gte': 25}, '$skip': 2}}))
    _run_threads(4, work)
    assert pages
    bad = [(p['total'], len(p['data'])) for p in pages if p['total'] != len(p['data']) + 2]
    assert bad == []
