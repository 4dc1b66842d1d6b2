"""How many records one call of a ready-made service returns (``paginate``) or touches (``multi``).

Both are service options that ``params`` may override for one call (see
:mod:`flask_feathers._adapter`). Nothing here touches a store.
"""
from __future__ import annotations

from typing import Any, FrozenSet, Iterable, List, Mapping, Optional, TypedDict, Union

from ._query import Filters
from .errors import BadRequest, MethodNotAllowed

#: Service methods that ``multi`` may name.
MULTI_METHODS = ('create', 'patch', 'remove')


class Paginate(TypedDict):
    """A checked ``paginate`` option: the page size without ``$limit``, and the largest one."""

    default: Optional[int]
    max: Optional[int]


class Page(TypedDict):
    """The paginated ``find`` result, as Feathers sends it."""

    total: int
    limit: Optional[int]
    skip: int
    data: List[Any]


def normalize_paginate(paginate: Any) -> Optional[Paginate]:
    """Check a service's ``paginate`` option: None/False (off) or ``{'default': n, 'max': m}``.

    :raises ValueError: on anything else (library misuse, not a wire error).
    """
    if paginate is None or paginate is False:
        return None
    if not isinstance(paginate, Mapping) or set(paginate) - {'default', 'max'}:
        raise ValueError("paginate must be None or a dict like {'default': 10, 'max': 50}, "
                         f'got {paginate!r}')
    out = Paginate(default=paginate.get('default'), max=paginate.get('max'))
    for key, number in out.items():
        if number is not None and (not isinstance(number, int) or isinstance(number, bool) or number < 0):
            raise ValueError(f'paginate[{key!r}] must be a non-negative int or None, got {number!r}')
    return out


def paginate_for_call(service_paginate: Optional[Paginate],
                      params: Optional[Mapping[str, Any]]) -> Optional[Paginate]:
    """The pagination in force for one call: ``params['paginate']`` (False turns it off, a dict
    replaces it) wins over the service's option."""
    if params and 'paginate' in params:
        override = params['paginate']
        if override is False:
            return None
        if override is None:
            return service_paginate
        try:
            return normalize_paginate(override)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return service_paginate


def effective_limit(filters: Filters, paginate: Optional[Paginate]) -> Optional[int]:
    """``$limit``, or the default when paginating, clamped to ``paginate['max']``."""
    limit = filters.limit
    if paginate is None:
        return limit
    if limit is None:
        limit = paginate['default']
    maximum = paginate['max']
    if maximum is not None and (limit is None or limit > maximum):
        limit = maximum
    return limit


def page(total: int, limit: Optional[int], skip: int, data: List[Any]) -> Page:
    """The paginated find result."""
    return {'total': total, 'limit': limit, 'skip': skip, 'data': data}


# -- multi ----------------------------------------------------------------------------------------

def normalize_multi(multi: Union[bool, str, Iterable[str]]) -> FrozenSet[str]:
    """``multi`` as the set of methods allowed to touch several records.

    ``True`` allows create (with a list), patch and remove with ``id=None``; a list names some of
    :data:`MULTI_METHODS`.
    """
    if isinstance(multi, bool) or not multi:
        return frozenset(MULTI_METHODS) if multi is True else frozenset()
    methods = frozenset([multi] if isinstance(multi, str) else multi)
    unknown = methods - set(MULTI_METHODS)
    if unknown:
        raise ValueError(f'multi may name {", ".join(MULTI_METHODS)}; unknown: {sorted(unknown)}')
    return methods


def check_multi(allowed: FrozenSet[str], method: str) -> None:
    """Raise MethodNotAllowed when ``method`` may not touch several records (Feathers' message,
    which its clients and adapter tests read; the hint rides in ``data``)."""
    if method not in allowed:
        what = 'a list of records' if method == 'create' else 'id null'
        raise MethodNotAllowed(f'Can not {method} multiple entries', data={
            'hint': f'{method} with {what} needs the service option multi=True '
                    f"(or multi=['{method}'], or params['adapter'] per call)"})
