"""flask_feathers._adapter: the ready-made services' options, params['adapter'] and LIKE patterns."""
import re

import pytest
from hypothesis import given, strategies as st

from flask_feathers._adapter import AdapterOptions, like, like_segments, like_to_glob
from flask_feathers.errors import BadRequest


@pytest.mark.parametrize('pattern, text, expected', [
    ('a%', 'abc', True), ('a%', 'bac', False), ('%c', 'abc', True), ('a_c', 'abc', True),
    ('a_c', 'abbc', False), ('%', '', True), ('_', '', False), ('a\\%', 'a%', True),
    ('a\\%', 'ab', False), ('a\\_', 'a_', True), ('a\\_', 'ab', False), ('a\\\\b', 'a\\b', True),
    ('a.c', 'abc', False), ('(x)', '(x)', True), ('a%', 'A', False), ('%', 'line\nbreak', True),
    ('%a%b%', 'xaxbx', True), ('%a%b%', 'xbxax', False), ('a%a', 'a', False), ('a%a', 'aa', True),
    ('%ab', 'aab', True), ('ab%', 'ab', True), ('%_%', '', False), ('%%', '', True),
    ('a%b%c', 'abbc', True), ('a%bc%c', 'abcbc', True), ('_%_', 'ab', True), ('_%_', 'a', False),
])
def test_like(pattern, text, expected):
    assert like(text, pattern) is expected


def test_ilike_and_non_strings():
    assert like('ABC', 'a%', ignore_case=True) and not like('ABC', 'a%')
    assert not like(12, '1%') and not like(None, '%')
    assert like('aÄb', '_ä_', ignore_case=True) and not like('aÄb', '_ä_')
    assert like_segments('a_%b') == (('a', None), ('b',))
    assert like_segments('a_%b') is like_segments('a_%b')  # parsed once


def reference_like(text, pattern, ignore_case):
    """A regex rendering of LIKE: fine as a reference on short inputs, too slow for servers."""
    parts, chars = [], iter(pattern)
    for char in chars:
        if char == '\\':
            parts.append(re.escape(next(chars, '\\')))
        else:
            parts.append({'%': '.*', '_': '.'}.get(char, re.escape(char)))
    return re.fullmatch(''.join(parts), text, re.DOTALL | (re.I if ignore_case else 0)) is not None


@given(text=st.text(alphabet='aAb_%\\', max_size=8), pattern=st.text(alphabet='aAb_%\\', max_size=6),
       ignore_case=st.booleans())
def test_like_agrees_with_a_regex_reference(text, pattern, ignore_case):
    assert like(text, pattern, ignore_case) == reference_like(text, pattern, ignore_case)


def test_like_takes_one_pass_where_a_regex_would_backtrack():
    # '%a%a%a%a%b' as a backtracking regex took seconds on 200 characters (a client's cheap query);
    # here the earliest fit of each piece decides. Counted in steps, not timed.
    steps = 0
    text = 'a' * 5000

    class Counting(str):
        def __getitem__(self, index):
            nonlocal steps
            steps += 1
            return str.__getitem__(self, index)

        def find(self, *args):
            nonlocal steps
            steps += 1
            return str.find(self, *args)
    assert not like(Counting(text), '%a%a%a%a%b')
    assert not like(Counting(text), '%a_%a_%A%a%b', ignore_case=True)
    assert steps < 20 * len(text)
    assert like(text + 'b', '%a%a%a%a%b') and like('xaybz', '%a_b%') and not like('xaybz', '%a_c%')


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
