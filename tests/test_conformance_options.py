"""The conformance suite, options: params['adapter'], pagination, threads.

Every test runs on every kind of service (``new_service``, parametrised in
tests/support/services.py): MemoryService and SQLService on SQLite, PostgreSQL and MariaDB. Query
cases come twice: as socket JSON values and as the strings a REST query string gives.
"""
import threading

import pytest

from flask_feathers.errors import BadRequest, MethodNotAllowed

from support.services import ALL, UNPAGED, names, seed


# -- params['adapter'] (Feathers 5's per-call adapter options) ------------------------------------

def test_adapter_params_override_paginate(new_service):
    service = new_service(paginate=None)
    seed(service)
    page = service.find({'adapter': {'paginate': {'default': 3}}})
    assert (page['total'], page['limit'], page['skip'], len(page['data'])) == (5, 3, 0, 3)
    # params['adapter'] wins over params['paginate'], as in Feathers' getOptions
    page = service.find({'paginate': False, 'adapter': {'paginate': {'default': 2, 'max': 4}}})
    assert page['limit'] == 2
    paged = new_service(paginate={'default': 2, 'max': 2})
    seed(paged)
    assert sorted(names(paged.find({'adapter': {'paginate': False}}))) == ALL


def test_adapter_params_override_multi(new_service):
    service = new_service(multi=['patch'])
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
def test_bad_adapter_values_are_badrequest(new_service, adapter):
    service = new_service()
    with pytest.raises(BadRequest, match='adapter|paginate'):
        service.find({'adapter': adapter})


def test_unknown_adapter_option_is_a_usage_error(new_service):
    service = new_service()
    with pytest.raises(ValueError, match="params\\['adapter'\\]"):
        service.find({'adapter': {'whitelist': ['$regex']}})


def test_extra_filters_are_accepted_and_left_out_of_the_query(new_service):
    seen = []
    service = new_service(filters={'$populate': True, '$tag': lambda v: seen.append(v) or v})
    seed(service)
    result = service.find({'query': {'$populate': 'author', '$tag': 'x', 'age': 25}, 'paginate': False})
    assert sorted(names(result)) == ['Bob', 'Dave'] and seen == ['x']
    plain = new_service()
    with pytest.raises(BadRequest, match=r'\$populate'):
        plain.find({'query': {'$populate': 'author'}})
    # per call, params['adapter'] allows it on a service without the option
    assert plain.find({'query': {'$populate': 'a'}, 'adapter': {'filters': {'$populate': True}},
                       'paginate': False}) == []


def test_extra_filter_converter_errors_are_badrequest(new_service):
    service = new_service(filters={'$n': int})
    with pytest.raises(BadRequest, match=r'\$n'):
        service.find({'query': {'$n': 'x'}})


def test_option_misuse_raises_builtin_errors(new_service):
    with pytest.raises(TypeError, match='implementation'):
        new_service(operators=['$regex'])
    with pytest.raises(ValueError, match=r'\$in'):
        new_service(operators={'$in': lambda a, b: True})
    with pytest.raises(ValueError, match=r'\$limit'):
        new_service(filters={'$limit': True})


# -- pagination -----------------------------------------------------------------------------------

def test_default_pagination(new_service):
    service = new_service()  # the default: {'default': 10, 'max': 50}
    seed(service, [{'name': f'p{i:02}', 'age': i} for i in range(12)])
    result = service.find({'query': {'$sort': {'age': 1}}})
    assert set(result) == {'total', 'limit', 'skip', 'data'}
    assert (result['total'], result['limit'], result['skip']) == (12, 10, 0)
    assert names(result) == [f'p{i:02}' for i in range(10)]


def test_total_counted_before_skip_and_limit(new_service):
    service = new_service(paginate={'default': 2, 'max': 3})
    seed(service, [{'name': f'p{i:02}', 'age': i} for i in range(12)])
    result = service.find({'query': {'age': {'$gte': '4'}, '$sort': {'age': '1'}, '$skip': '3', '$limit': '2'}})
    assert (result['total'], result['limit'], result['skip']) == (8, 2, 3)
    assert names(result) == ['p07', 'p08']


def test_limit_clamped_to_max(new_service):
    service = new_service(paginate={'default': 2, 'max': 3})
    seed(service)
    result = service.find({'query': {'$limit': '10'}})
    assert result['limit'] == 3 and len(result['data']) == 3 and result['total'] == 5


def test_limit_zero_counts_only(new_service):
    service = new_service()
    seed(service)
    assert service.find({'query': {'$limit': 0, 'age': 25}}) == {'total': 2, 'limit': 0, 'skip': 0, 'data': []}


def test_pages_are_disjoint_and_complete(new_service):
    service = new_service(paginate={'default': 2, 'max': 2})
    seed(service)
    seen = []
    for skip in range(0, 6, 2):
        seen += names(service.find({'query': {'$skip': skip, '$sort': {'age': 1}}}))
    assert sorted(seen) == ALL


def test_skip_past_the_end_still_counts(new_service):
    service = new_service()
    seed(service)
    assert service.find({'query': {'$skip': '10', 'age': {'$gte': 30}}}) == {
        'total': 3, 'limit': 10, 'skip': 10, 'data': []}


def test_paginate_false_per_call(new_service):
    service = new_service(paginate={'default': 2, 'max': 2})
    seed(service)
    result = service.find({'query': {}, 'paginate': False})
    assert isinstance(result, list) and sorted(names(result)) == ALL
    assert names(service.find({'query': {'$limit': 1, '$sort': {'name': -1}}, 'paginate': False})) == ['Eve']


def test_no_pagination_returns_lists(new_service):
    service = new_service(paginate=None)
    seed(service)
    assert isinstance(service.find({}), list)
    assert names(service.find({'query': {'$sort': {'age': -1}, '$skip': 1, '$limit': 2}})) == ['Carol', 'Alice']


def test_paginate_per_call_dict(new_service):
    service = new_service(paginate=None)
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


def test_concurrent_creates_get_distinct_ids(new_service):
    service = new_service()
    ids = [[] for _ in range(8)]
    _run_threads(8, lambda t: ids[t].extend(service.create({'name': f't{t}-{i}', 'age': t})['id']
                                            for i in range(50)))
    flat = [i for chunk in ids for i in chunk]
    assert len(flat) == 400 and len(set(flat)) == 400
    assert service.find({'query': {'$limit': 0}})['total'] == 400
    assert service.find({'query': {'age': 3, '$limit': 0}})['total'] == 50


def test_concurrent_patches_of_different_fields_all_land(new_service):
    service = new_service()
    record = service.create({'name': 'shared'})

    def work(t):
        for value in range(1, 51):
            service.patch(record['id'], {f'f{t}': value})
    _run_threads(8, work)
    final = service.get(record['id'])
    assert [final[f'f{t}'] for t in range(8)] == [50] * 8
    assert final['name'] == 'shared'


def test_concurrent_multi_writes_do_not_deadlock(new_service):
    service = new_service(multi=True)
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


def test_page_total_agrees_with_its_data_during_concurrent_writes(new_service):
    service = new_service(paginate={'default': 1000, 'max': 1000})
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
