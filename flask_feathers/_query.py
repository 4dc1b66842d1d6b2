"""The Feathers query syntax, parsed once for every ready-made service.

``params['query']`` is split into *filters* (``$limit``, ``$skip``, ``$sort``, ``$select``) and a
*where* tree of conditions. Both arrive either as JSON values (socket calls) or as strings from a
``qs``-parsed query string (REST): ``?age[$gt]=3&$sort[age]=-1`` gives
``{'age': {'$gt': '3'}, '$sort': {'age': '-1'}}``. This module only checks the *shape*; turning a
string into the type a backend compares with is the backend's business (see
:mod:`flask_feathers._coercion`); how many records a call returns is :mod:`flask_feathers._pagination`'s.

Nothing here touches a store; every malformed piece raises :class:`~flask_feathers.errors.BadRequest`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Literal, Mapping, Optional, Tuple, Union

from ._coercion import parse_int
from .errors import BadRequest

#: Keys of ``params['query']`` that shape the result instead of selecting records.
FILTERS = ('$limit', '$skip', '$sort', '$select')
#: Comparison operators accepted inside ``{field: {op: value}}``.
COMPARISONS = ('$ne', '$lt', '$lte', '$gt', '$gte', '$in', '$nin')
#: Pattern operators with SQL ``LIKE`` semantics (``%`` any run, ``_`` one character, ``\\`` escapes).
PATTERNS = ('$like', '$notlike', '$ilike')
#: Operators that combine sub-queries.
LOGICAL = ('$or', '$and')
#: Equality is spelled ``{field: value}``; internally it is this operator.
EQ = '$eq'
#: ``$sort`` directions as they arrive from JSON and from a query string.
SORT_DIRECTIONS = {1: 1, -1: -1, '1': 1, '-1': -1, 'asc': 1, 'desc': -1, 'ASC': 1, 'DESC': -1}

#: An extra top-level filter's handling: True keeps the value, a function converts it.
FilterConverter = Union[Literal[True], Callable[[Any], Any]]


@dataclass(frozen=True)
class Condition:
    """``field <op> value``; ``op`` is ``$eq``, one of :data:`COMPARISONS` or :data:`PATTERNS`, or
    an extra operator the service allows."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Junction:
    """All (``$and``) or any (``$or``) of ``children``."""

    op: str
    children: Tuple['Node', ...]


Node = Union[Condition, Junction]


@dataclass(frozen=True)
class Filters:
    """The result-shaping part of a query (``limit`` None means "no limit")."""

    limit: Optional[int] = None
    skip: int = 0
    sort: Tuple[Tuple[str, int], ...] = ()
    select: Optional[Tuple[str, ...]] = None


@dataclass(frozen=True)
class ParsedQuery:
    """A whole ``params['query']``: :class:`Filters` plus the where tree, and the values of a
    service's extra ``filters`` (left out of the where tree)."""

    filters: Filters = field(default_factory=Filters)
    where: Junction = field(default_factory=lambda: Junction('$and', ()))
    extra: Mapping[str, Any] = field(default_factory=dict)


def get_query(params: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    """``params['query']``, tolerating ``params=None`` and a missing or None query."""
    if not params:
        return {}
    query = params.get('query')
    if query is None:
        return {}
    if not isinstance(query, Mapping):
        raise BadRequest(f'params.query must be an object, got {type(query).__name__}')
    return query


def parse_query(query: Optional[Mapping[str, Any]], operators: Iterable[str] = (),
                extra_filters: Optional[Mapping[str, FilterConverter]] = None) -> ParsedQuery:
    """Split ``query`` into filters and a where tree, checking every operator.

    :param operators: operator names allowed besides :data:`COMPARISONS` and :data:`PATTERNS`.
    :param extra_filters: top-level ``$name`` keys allowed besides :data:`FILTERS`, each mapped to
        ``True`` (keep the value) or a function converting it (a ``ValueError`` or ``TypeError`` it
        raises is a BadRequest); their values land in :attr:`ParsedQuery.extra`.
    :raises BadRequest: unknown ``$operator``, malformed ``$limit``/``$skip``/``$sort``/``$select``,
        ``$or``/``$and`` that is not a list of objects.
    """
    query = query or {}
    extra_filters = extra_filters or {}
    filters = Filters(limit=_non_negative_int(query, '$limit'),
                      skip=_non_negative_int(query, '$skip') or 0,
                      sort=_parse_sort(query.get('$sort')),
                      select=_parse_select(query.get('$select')))
    extra = {name: _convert_filter(name, convert, query[name])
             for name, convert in extra_filters.items() if name in query}
    allowed = frozenset(COMPARISONS) | frozenset(PATTERNS) | frozenset(operators)
    where = _parse_where({k: v for k, v in query.items() if k not in FILTERS and k not in extra},
                         '$and', allowed)
    return ParsedQuery(filters, where, extra)


def _convert_filter(name: str, convert: FilterConverter, value: Any) -> Any:
    if convert is True:
        return value
    try:
        return convert(value)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f'Invalid value for {name}: {exc}') from None


def as_list(value: Any) -> List[Any]:
    """A list from a JSON list, a ``qs`` dict with index keys (``{'0': a, '1': b}``, what ``qs``
    gives past its array limit) or a single value (``?a[$in]=1`` gives ``'1'``)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, Mapping) and value and all(isinstance(k, str) and k.isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    return [value]


def _is_plain_object(value: Any) -> bool:
    return isinstance(value, Mapping) and as_list(value) == [value]


def _non_negative_int(query: Mapping[str, Any], key: str) -> Optional[int]:
    value = query.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest(f'{key} must be a non-negative integer, got {value!r}')
    if isinstance(value, str):
        number = parse_int(value)
        value = value if number is None else number
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise BadRequest(f'{key} must be a non-negative integer, got {value!r}')
    return value


def _parse_sort(value: Any) -> Tuple[Tuple[str, int], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise BadRequest(f'$sort must be an object like {{"name": 1}}, got {value!r}')
    out = []
    for name, direction in value.items():
        try:
            out.append((str(name), SORT_DIRECTIONS[direction]))
        except (KeyError, TypeError):
            raise BadRequest(f'$sort direction for {name!r} must be 1 or -1, got {direction!r}') from None
    return tuple(out)


def _parse_select(value: Any) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    names = as_list(value)
    if not all(isinstance(n, str) for n in names):
        raise BadRequest(f'$select must be a list of field names, got {value!r}')
    return tuple(names)


def _parse_where(query: Mapping[str, Any], op: str, allowed: FrozenSet[str]) -> Junction:
    children: List[Node] = []
    for key, value in query.items():
        if not isinstance(key, str):
            raise BadRequest(f'Query keys must be strings, got {key!r}')
        if key in LOGICAL:
            subs = as_list(value) if not _is_plain_object(value) else []
            if not subs or not all(isinstance(s, Mapping) for s in subs):
                raise BadRequest(f'{key} must be a non-empty list of query objects, got {value!r}')
            children.append(Junction(key, tuple(_parse_where(s, '$and', allowed) for s in subs)))
        elif key in FILTERS:
            raise BadRequest(f'{key} is only allowed at the top level of a query')
        elif key.startswith('$'):
            raise BadRequest(f'Invalid query operator {key!r}')
        else:
            children.extend(_parse_field(key, value, allowed))
    return Junction(op, tuple(children))


def _parse_field(name: str, value: Any, allowed: FrozenSet[str]) -> List[Condition]:
    if not (isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith('$') for k in value)):
        return [Condition(name, EQ, value)]
    out = []
    for op, operand in value.items():
        if op in ('$in', '$nin'):
            out.append(Condition(name, op, as_list(operand)))
        elif op in PATTERNS:
            if not isinstance(operand, str):
                raise BadRequest(f'{op} on field {name!r} takes a pattern string, got {operand!r}')
            if _ends_in_escape(operand):
                raise BadRequest(f'{op} pattern on field {name!r} ends with the escape character '
                                 '\\ (write \\\\ for a literal backslash)')
            out.append(Condition(name, op, operand))
        elif op in allowed or op == EQ:
            out.append(Condition(name, op, operand))
        else:
            raise BadRequest(f'Invalid query operator {op!r} on field {name!r}')
    return out


def _ends_in_escape(pattern: str) -> bool:
    return (len(pattern) - len(pattern.rstrip('\\'))) % 2 == 1


# -- $select -------------------------------------------------------------------------------------

def select_fields(record: Mapping[str, Any], select: Optional[Iterable[str]], id_field: str) -> Dict[str, Any]:
    """``record`` reduced to ``$select`` plus the id; fields it lacks are left out."""
    if select is None:
        return dict(record)
    keep = [id_field] + [name for name in select if name != id_field]
    return {name: record[name] for name in keep if name in record}
