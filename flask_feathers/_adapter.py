"""What both ready-made services share: their adapter options, Feathers 5's per-call overrides, the
check of ``data`` and ``$like`` matching.

Options (constructor arguments of :class:`~flask_feathers.memory.MemoryService` and
:class:`~flask_feathers.sql.SQLService`):

* ``paginate``: ``{'default': n, 'max': m}`` or None.
* ``multi``: True or a list of ``'create'``, ``'patch'``, ``'remove'``.
* ``operators``: extra query operators, ``{'$name': implementation}``. The implementation is the
  backend's: ``fn(stored_value, operand) -> bool`` for the memory service, ``fn(column, operand) ->
  SQL expression`` for the SQL service. Operands arrive as sent (REST sends strings).
* ``filters``: extra top-level query keys, ``{'$name': True or converter}``; they pass validation and
  are left out of the records' selection, for hooks and subclasses (``ParsedQuery.extra``).

``params['adapter']`` overrides any of these for one call, as in Feathers 5 (its value replaces the
service's; ``None`` means "not given"). ``params['paginate']`` still works, below
``params['adapter']['paginate']``. ``params['adapter']`` is for server code (hooks): clients cannot
send it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple, Union

from . import _query as q
from ._pagination import Paginate, normalize_multi, normalize_paginate, paginate_for_call
from .errors import BadRequest

#: The options ``params['adapter']`` may override.
ADAPTER_OPTIONS = ('paginate', 'multi', 'operators', 'filters')
_BUILT_IN = frozenset(q.COMPARISONS) | frozenset(q.PATTERNS) | frozenset(q.LOGICAL) | {q.EQ}


@dataclass(frozen=True)
class CallOptions:
    """The adapter options in force for one call."""

    paginate: Optional[Paginate]
    multi: FrozenSet[str]
    operators: Mapping[str, Callable[..., Any]]
    filters: Mapping[str, q.FilterConverter]


def normalize_operators(operators: Optional[Mapping[str, Callable[..., Any]]]) -> Dict[str, Callable[..., Any]]:
    """Check the ``operators`` option: ``{'$name': callable}``.

    :raises TypeError: not such a mapping (a Feathers-style list of names has no implementation).
    :raises ValueError: a name without ``$`` or one of the built-in operators.
    """
    if not operators:
        return {}
    if not isinstance(operators, Mapping):
        raise TypeError("operators maps each extra operator to its implementation, e.g. "
                        "{'$startswith': lambda stored, operand: ...}; got "
                        f'{type(operators).__name__}')
    for name, fn in operators.items():
        if not isinstance(name, str) or not name.startswith('$') or name in _BUILT_IN:
            raise ValueError(f'extra operator names start with $ and are not built in; got {name!r}')
        if not callable(fn):
            raise TypeError(f'operator {name!r} needs a callable implementation, got {fn!r}')
    return dict(operators)


def normalize_filters(filters: Optional[Mapping[str, Any]]) -> Dict[str, q.FilterConverter]:
    """Check the ``filters`` option: ``{'$name': True or converter}``."""
    if not filters:
        return {}
    if not isinstance(filters, Mapping):
        raise TypeError("filters maps each extra top-level query key to True or a converter, e.g. "
                        f"{{'$populate': True}}; got {type(filters).__name__}")
    for name, convert in filters.items():
        if not isinstance(name, str) or not name.startswith('$') or name in q.FILTERS \
                or name in _BUILT_IN:
            raise ValueError(f'extra filter names start with $ and are not built in; got {name!r}')
        if convert is not True and not callable(convert):
            raise TypeError(f'filter {name!r} needs True or a converter, got {convert!r}')
    return dict(filters)


class AdapterOptions:
    """The options part of a ready-made service (a base class; it keeps no records)."""

    paginate: Optional[Paginate]
    multi: FrozenSet[str]
    operators: Dict[str, Callable[..., Any]]
    filters: Dict[str, q.FilterConverter]

    def _init_options(self, paginate: Optional[Mapping[str, Any]], multi: Union[bool, Iterable[str]],
                      operators: Optional[Mapping[str, Callable[..., Any]]],
                      filters: Optional[Mapping[str, Any]]) -> None:
        self.paginate = normalize_paginate(paginate)
        self.multi = normalize_multi(multi)
        self.operators = normalize_operators(operators)
        self.filters = normalize_filters(filters)

    def options_for(self, params: Optional[Mapping[str, Any]]) -> CallOptions:
        """The options for one call: the service's, ``params['paginate']``, then
        ``params['adapter']``.

        :raises BadRequest: a per-call value that is not a valid option value.
        :raises ValueError: ``params['adapter']`` is not a dict of known options.
        """
        adapter = (params or {}).get('adapter') or {}
        if not isinstance(adapter, Mapping) or set(adapter) - set(ADAPTER_OPTIONS):
            raise ValueError(f"params['adapter'] takes a dict of {', '.join(ADAPTER_OPTIONS)}; "
                             f'got {adapter!r}')
        paginate = paginate_for_call(self.paginate, params)
        if adapter.get('paginate') is not None:
            paginate = paginate_for_call(self.paginate, {'paginate': adapter['paginate']})
        multi, operators, filters = self.multi, self.operators, self.filters
        try:
            if adapter.get('multi') is not None:
                multi = normalize_multi(adapter['multi'])
            if adapter.get('operators') is not None:
                operators = normalize_operators(adapter['operators'])
            if adapter.get('filters') is not None:
                filters = normalize_filters(adapter['filters'])
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"Invalid params['adapter']: {exc}") from None
        return CallOptions(paginate, multi, operators, filters)

    def parse(self, params: Optional[Mapping[str, Any]],
              options: Optional[CallOptions] = None) -> q.ParsedQuery:
        """``params['query']`` parsed with the call's extra operators and filters."""
        options = options or self.options_for(params)
        return q.parse_query(q.get_query(params), options.operators, options.filters)


def check_data(data: Any) -> Dict[str, Any]:
    """``data`` must be an object (a copy of it, as a dict)."""
    if not isinstance(data, Mapping):
        raise BadRequest(f'Data must be an object, got {type(data).__name__}')
    return dict(data)


# -- LIKE patterns --------------------------------------------------------------------------------

#: The escape character of ``$like`` patterns (the SQL service passes it as ``ESCAPE``).
LIKE_ESCAPE = '\\'


#: One piece of a LIKE pattern between two ``%``: characters, ``None`` for ``_`` (any one).
Segment = Tuple[Optional[str], ...]


@functools.lru_cache(maxsize=256)
def like_segments(pattern: str) -> Tuple[Segment, ...]:
    """``pattern`` split at its unescaped ``%`` (``%`` any run of characters, ``_`` exactly one,
    ``\\`` makes the next character literal): ``'a_%b'`` gives ``(('a', None), ('b',))``."""
    segments: List[Segment] = []
    current: List[Optional[str]] = []
    chars = iter(pattern)
    for char in chars:
        if char == LIKE_ESCAPE:
            current.append(next(chars, LIKE_ESCAPE))
        elif char == '%':
            segments.append(tuple(current))
            current = []
        else:
            current.append(None if char == '_' else char)
    segments.append(tuple(current))
    return tuple(segments)


def like(stored: Any, pattern: str, ignore_case: bool = False) -> bool:
    """``stored LIKE pattern`` (``ESCAPE '\\'``); only strings match.

    No regular expression: a pattern such as ``%a%a%a%b`` made a backtracking regex take seconds on
    a few hundred characters. Between two ``%`` the earliest place a piece fits is always as good as
    any later one, so one pass over the text decides, in at most (text length x pattern length)
    steps.
    """
    if not isinstance(stored, str):
        return False
    segments = like_segments(pattern)
    first, last = segments[0], segments[-1]
    if len(segments) == 1:
        return len(stored) == len(first) and _fits(stored, 0, first, ignore_case)
    end = len(stored) - len(last)
    if end < len(first) or not _fits(stored, 0, first, ignore_case) \
            or not _fits(stored, end, last, ignore_case):
        return False
    position = len(first)
    for segment in segments[1:-1]:
        found = _find(stored, segment, position, end, ignore_case)
        if found < 0:
            return False
        position = found + len(segment)
    return True


def _fits(text: str, at: int, segment: Segment, ignore_case: bool) -> bool:
    for offset, want in enumerate(segment):
        if want is None:
            continue
        have = text[at + offset]
        if have != want and not (ignore_case and have.lower() == want.lower()):
            return False
    return True


def _find(text: str, segment: Segment, start: int, end: int, ignore_case: bool) -> int:
    """The first index from ``start`` where ``segment`` fits wholly before ``end``, or -1."""
    if not ignore_case and None not in segment:
        return text.find(''.join(segment), start, end)  # type: ignore[arg-type]
    for at in range(start, end - len(segment) + 1):
        if _fits(text, at, segment, ignore_case):
            return at
    return -1


_GLOB_SPECIAL = {'*': '[*]', '?': '[?]', '[': '[[]', ']': '[]]'}


def like_to_glob(pattern: str) -> str:
    """The SQLite ``GLOB`` pattern (case-sensitive) matching what ``LIKE pattern ESCAPE '\\'``
    matches with case respected."""
    parts = []
    chars = iter(pattern)
    for char in chars:
        if char == LIKE_ESCAPE:
            char = next(chars, LIKE_ESCAPE)
            parts.append(_GLOB_SPECIAL.get(char, char))
        elif char == '%':
            parts.append('*')
        elif char == '_':
            parts.append('?')
        else:
            parts.append(_GLOB_SPECIAL.get(char, char))
    return ''.join(parts)
