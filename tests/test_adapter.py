"""flask_feathers._adapter: the ready-made services' options, params['adapter'] and LIKE patterns."""
import re

import pytest

from flask_feathers._adapter import AdapterOptions, like, like_regex, like_to_glob
from flask_feathers.errors import BadRequest


@pytest.mark.parametrize('pattern, text, expected', [
    ('a%', 'abc', True), ('a%', 'bac', False), ('%c', 'abc', True), ('a_c', 'abc', True),
    ('a_c', 'abbc', False), ('%', '', True), ('_', '', False), ('a\\%', 'a%', True),
    ('a\\%', 'ab', False), ('a\\_', 'a_', True), ('a\\_', 'ab', False), ('a\\\\b', 'a\\b', True),
    ('a.c', 'abc', False), ('(x)', '(x)', True), ('a%', 'A', False), ('%', 'line\nbreak', True),
])
def test_like(pattern, text, expected):
    assert like(text, pattern) is expected


def test_ilike_and_non_strings():
    assert like('ABC', 'a%', ignore_case=True) and not like('ABC', 'a%')
    assert not like(12, '1%') and not like(None, '%')
    assert like_regex('a%', False) is like_regex('a%', False)  # compiled once


@pytest.mark.parametrize('pattern, glob', [
    ('a%', 'a*'), ('a_c', 'a?c'), ('a\\%', 'a%'), ('a\\_', 'a_'), ('*?[]', '[*][?][[][]]'),
    ('\\\\', '\\'),
])
def test_like_to_glob(pattern, glob):
    assert like_to_glob(pattern) == glob


class Options(AdapterOptions):
    def __init__(self, **options):
        self._init_options(options.pop('paginate', None), options.pop('multi', False),
                           options.pop('operators', None), options.pop('filters', None))


def test_params_adapter_precedence():
    service = Options(paginate={'default': 5, 'max': 10}, multi=['patch'])
    assert service.options_for(None).paginate == {'default': 5, 'max': 10}
    assert service.options_for({'paginate': False}).paginate is None
    assert service.options_for({'paginate': False, 'adapter': {'paginate': {'default': 1}}}).paginate == {
        'default': 1, 'max': None}
    assert service.options_for({'adapter': {'paginate': False}}).paginate is None
    assert service.options_for({'adapter': {'paginate': None}}).paginate == {'default': 5, 'max': 10}
    assert service.options_for({'adapter': {'multi': True}}).multi == {'create', 'patch', 'remove'}
    assert service.options_for({'adapter': {}}).multi == {'patch'}


def test_params_adapter_misuse():
    service = Options()
    with pytest.raises(ValueError, match=re.escape("params['adapter']")):
        service.options_for({'adapter': ['paginate']})
    with pytest.raises(ValueError, match='whitelist'):
        service.options_for({'adapter': {'whitelist': []}})
    with pytest.raises(BadRequest):
        service.options_for({'adapter': {'multi': ['find']}})


@pytest.mark.parametrize('options, error', [
    ({'operators': ['$regex']}, TypeError), ({'operators': {'regex': len}}, ValueError),
    ({'operators': {'$gt': len}}, ValueError), ({'operators': {'$x': 1}}, TypeError),
    ({'filters': ['$x']}, TypeError), ({'filters': {'$sort': True}}, ValueError),
    ({'filters': {'$x': 'yes'}}, TypeError), ({'filters': {'$or': True}}, ValueError),
])
def test_option_misuse(options, error):
    with pytest.raises(error):
        Options(**options)


def test_parse_uses_the_call_operators_and_filters():
    service = Options(operators={'$near': lambda a, b: True}, filters={'$populate': True})
    parsed = service.parse({'query': {'at': {'$near': 5}, '$populate': 'x'}})
    assert parsed.extra == {'$populate': 'x'}
    assert [(c.field, c.op) for c in parsed.where.children] == [('at', '$near')]
    with pytest.raises(BadRequest, match=r'\$near'):
        Options().parse({'query': {'at': {'$near': 5}}})
