"""The conformance suite, records: create, get, update, patch, remove, multi writes.

Every test runs on every kind of service (``new_service``, parametrised in
tests/support/services.py): MemoryService and SQLService on SQLite, PostgreSQL and MariaDB. Query
cases come twice: as socket JSON values and as the strings a REST query string gives.
"""
import pytest

from flask_feathers.errors import BadRequest, Conflict, MethodNotAllowed, NotFound

from support.services import ALL, UNPAGED, find_names, names, seed, subset


# -- create / get ---------------------------------------------------------------------------------

def test_create_returns_stored_record_with_generated_id(new_service):
    service = new_service()
    created = service.create({'name': 'Alice', 'age': 30})
    assert subset(created, {'name': 'Alice', 'age': 30})
    assert created['id'] is not None
    assert service.get(created['id']) == created


def test_get_accepts_rest_string_id(new_service):
    service = new_service()
    created = service.create({'name': 'Alice'})
    assert service.get(str(created['id']))['name'] == 'Alice'


def test_generated_ids_are_distinct(new_service):
    service = new_service()
    ids = [service.create({'name': f'n{i}'})['id'] for i in range(20)]
    assert len(set(ids)) == 20


def test_get_missing_is_notfound_naming_the_id(new_service):
    service = new_service()
    seed(service)
    for missing in (987654, '987654', 'abc'):
        with pytest.raises(NotFound) as info:
            service.get(missing)
        assert str(missing) in info.value.message
        assert info.value.to_dict()['code'] == 404


def test_params_may_be_none_or_lack_query(new_service):
    service = new_service(paginate=None)
    first = seed(service)[0]
    assert sorted(names(service.find(None))) == ALL
    assert sorted(names(service.find({}))) == ALL
    assert sorted(names(service.find({'query': None}))) == ALL
    assert service.get(first['id'], None)['name'] == 'Alice'
    assert service.get(first['id'], {'user': 'x'})['name'] == 'Alice'


def test_create_with_duplicate_id_is_conflict(new_service):
    service = new_service()
    created = service.create({'name': 'Alice'})
    with pytest.raises(Conflict):
        service.create({'id': created['id'], 'name': 'Again'})
    assert service.get(created['id'])['name'] == 'Alice'


@pytest.mark.parametrize('bad', [None, 'text', 5, ['list']])
def test_create_non_object_is_badrequest(new_service, bad):
    service = new_service(multi=True)
    with pytest.raises(BadRequest):
        service.create(bad)


def test_create_list_needs_multi(new_service):
    service = new_service()
    with pytest.raises(MethodNotAllowed):
        service.create([{'name': 'a'}, {'name': 'b'}])
    assert service.find(UNPAGED) == []


def test_create_list_under_multi(new_service):
    service = new_service(multi=True)
    created = service.create([{'name': 'a'}, {'name': 'b'}, {'name': 'c'}])
    assert [r['name'] for r in created] == ['a', 'b', 'c']
    assert len({r['id'] for r in created}) == 3
    assert service.create([]) == []


def test_create_list_is_all_or_nothing(new_service):
    service = new_service(multi=True)
    existing = service.create({'name': 'first'})
    with pytest.raises(Conflict):
        service.create([{'name': 'ok'}, {'id': existing['id'], 'name': 'dup'}])
    assert names(service.find(UNPAGED)) == ['first']


# -- update / patch / remove ----------------------------------------------------------------------

def test_update_replaces_and_keeps_id(new_service):
    service = new_service()
    created = service.create({'name': 'Alice', 'age': 30, 'city': 'Paris'})
    updated = service.update(str(created['id']), {'id': created['id'] + 1000, 'name': 'Alicia'})
    assert updated['id'] == created['id']
    assert updated['name'] == 'Alicia'
    assert updated.get('age') is None and updated.get('city') is None
    assert service.get(created['id']) == updated
    with pytest.raises(NotFound):
        service.get(created['id'] + 1000)


def test_update_missing_is_notfound(new_service):
    service = new_service()
    with pytest.raises(NotFound):
        service.update(424242, {'name': 'x'})
    assert service.find(UNPAGED) == []


def test_patch_merges(new_service):
    service = new_service()
    created = service.create({'name': 'Alice', 'age': 30, 'city': 'Paris'})
    patched = service.patch(str(created['id']), {'age': 31, 'id': 999999})
    assert subset(patched, {'id': created['id'], 'name': 'Alice', 'age': 31, 'city': 'Paris'})
    assert service.get(created['id']) == patched


def test_patch_missing_is_notfound(new_service):
    service = new_service()
    with pytest.raises(NotFound):
        service.patch(424242, {'name': 'x'})


@pytest.mark.parametrize('method', ['patch', 'update'])
def test_non_object_data_is_badrequest(new_service, method):
    service = new_service()
    created = service.create({'name': 'Alice'})
    with pytest.raises(BadRequest):
        getattr(service, method)(created['id'], ['name', 'x'])
    assert service.get(created['id'])['name'] == 'Alice'


def test_remove_returns_the_record(new_service):
    service = new_service()
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
def test_multi_patch_remove_need_multi(new_service, call):
    service = new_service()
    seed(service)
    with pytest.raises(MethodNotAllowed):
        call(service)
    assert find_names(service, {'age': 25}) == ['Bob', 'Dave']


def test_multi_patch_touches_matches_only(new_service):
    service = new_service(multi=True)
    seed(service)
    patched = service.patch(None, {'city': 'Oslo'}, {'query': {'age': '25'}})
    assert sorted(names(patched)) == ['Bob', 'Dave']
    assert all(r['city'] == 'Oslo' for r in patched)
    assert find_names(service, {'city': 'Oslo'}) == ['Bob', 'Dave']
    assert service.patch(None, {'city': 'x'}, {'query': {'age': 99}}) == []


def test_multi_patch_can_change_the_queried_field(new_service):
    service = new_service(multi=True)
    seed(service)
    patched = service.patch(None, {'age': 26}, {'query': {'age': 25}})
    assert sorted(names(patched)) == ['Bob', 'Dave'] and {r['age'] for r in patched} == {26}


def test_multi_remove_removes_matches_only(new_service):
    service = new_service(multi=['remove'])
    seed(service)
    removed = service.remove(None, {'query': {'active': 'false'}})
    assert sorted(names(removed)) == ['Bob', 'Eve']
    assert find_names(service, {}) == ['Alice', 'Carol', 'Dave']


@pytest.mark.parametrize('method', ['get', 'patch', 'update', 'remove'])
def test_id_methods_also_honour_the_query(new_service, method):
    service = new_service()
    alice = seed(service)[0]
    args = {'get': (), 'remove': (), 'patch': ({'age': 1},), 'update': ({'name': 'x'},)}[method]
    with pytest.raises(NotFound):
        getattr(service, method)(alice['id'], *args, {'query': {'name': 'Bob'}})
    assert service.get(alice['id']) == alice
    result = getattr(service, method)(alice['id'], *args, {'query': {'name': 'Alice'}})
    assert result['id'] == alice['id']
