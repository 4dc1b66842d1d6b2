"""Pagination and the multi option of the ready-made services (no store involved)."""
import pytest

from flask_feathers import _pagination as p
from flask_feathers._query import Filters
from flask_feathers.errors import BadRequest, MethodNotAllowed


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
    assert p.effective_limit(Filters(limit=limit), paginate) == expected


def test_paginate_for_call():
    service = {'default': 10, 'max': 50}
    assert p.paginate_for_call(service, None) is service
    assert p.paginate_for_call(service, {'paginate': None}) is service
    assert p.paginate_for_call(service, {'paginate': False}) is None
    assert p.paginate_for_call(None, {'paginate': {'default': 2}}) == {'default': 2, 'max': None}
    with pytest.raises(BadRequest):
        p.paginate_for_call(service, {'paginate': {'size': 1}})


@pytest.mark.parametrize('bad', [{'default': -1}, {'max': '5'}, {'pages': 1}, 5, True])
def test_normalize_paginate_rejects_misuse(bad):
    with pytest.raises(ValueError, match='paginate'):
        p.normalize_paginate(bad)


def test_multi_option():
    assert p.normalize_multi(True) == {'create', 'patch', 'remove'}
    assert p.normalize_multi(False) == frozenset()
    assert p.normalize_multi('patch') == {'patch'}
    with pytest.raises(ValueError, match='update'):
        p.normalize_multi(['update'])
    p.check_multi(frozenset({'patch'}), 'patch')
    with pytest.raises(MethodNotAllowed) as info:
        p.check_multi(frozenset({'patch'}), 'remove')
    # Feathers' own wording: @feathersjs/adapter-tests and clients compare the message exactly.
    assert info.value.message == 'Can not remove multiple entries'
    assert 'multi=True' in info.value.data['hint']
