"""MemoryService: a thread-safe service keeping its records in a dict.

Meant for prototypes, tests and small data that may vanish on restart. It speaks the whole Feathers
query syntax (see :mod:`flask_feathers._query`).

Coercion rule (REST sends every query value and every id as a string):

* A query **string** is compared with a stored value after converting it to the *type of that stored
  value*: to ``int`` (``'5'``; a string like ``'2.5'`` becomes a float), to ``float`` (``'2.5'``), to
  ``bool`` (only ``'true'`` and ``'false'``) and to ``None`` (only ``'null'``). Against a stored string
  or any other type the string is compared as it is. A string that does not convert (``'abc'`` against
  an int) simply does not match. Non-string query values (socket JSON) are never converted.
* An **id** matches the stored key as given; failing that a decimal string (``'5'``) matches the int
  key ``5`` and an int ``5`` matches the string key ``'5'``.
* A missing field compares like ``None``; ordering comparisons (``$lt`` ...) between incompatible
  types (``None`` included) are false, so ``$ne``/``$nin`` match them. The one exception is a query
  string that cannot become the number (or boolean) it is ordered against (``?id[$gte]=abc`` with
  int ids): that is a BadRequest, as in the SQL service, not a silent empty result.
* ``$like``, ``$ilike`` and ``$notlike`` match strings only (SQL ``LIKE`` semantics, see
  :func:`flask_feathers._adapter.like`); a missing or non-string value matches ``$notlike`` only.
"""
from __future__ import annotations

import copy
import functools
import logging
import operator
import threading
import types
from typing import Any, Callable, Dict, Iterable, List, Mapping, MutableMapping, Optional, Tuple, Union

from . import _query as q
from ._adapter import AdapterOptions, CallOptions, check_data, like
from ._coercion import coerce_like as coerce_like, parse_int  # coerce_like: its public name here
from ._pagination import Page, check_multi, effective_limit, page
from .errors import BadRequest, Conflict, NotFound

log = logging.getLogger(__name__)

#: The pagination both ready-made services use unless told otherwise.
DEFAULT_PAGINATE: Mapping[str, int] = types.MappingProxyType({'default': 10, 'max': 50})

_ORDERING: Dict[str, Callable[[Any, Any], bool]] = {
    '$lt': operator.lt, '$lte': operator.le, '$gt': operator.gt, '$gte': operator.ge}
_MISSING = object()


def _equal(stored: Any, value: Any) -> bool:
    return bool(coerce_like(value, stored) == stored)


_PATTERNS: Dict[str, Callable[[Any, str], bool]] = {
    '$like': lambda stored, pattern: like(stored, pattern),
    '$ilike': lambda stored, pattern: like(stored, pattern, ignore_case=True),
    '$notlike': lambda stored, pattern: not like(stored, pattern),
}
_NO_OPERATORS: Mapping[str, Callable[[Any, Any], Any]] = types.MappingProxyType({})


def _matches(node: q.Node, record: Mapping[str, Any],
             operators: Mapping[str, Callable[[Any, Any], Any]] = _NO_OPERATORS) -> bool:
    if isinstance(node, q.Junction):
        test = all if node.op == '$and' else any
        return test(_matches(child, record, operators) for child in node.children)
    stored = record.get(node.field)
    op, value = node.op, node.value
    if op == q.EQ:
        return _equal(stored, value)
    if op == '$ne':
        return not _equal(stored, value)
    if op == '$in':
        return any(_equal(stored, v) for v in value)
    if op == '$nin':
        return not any(_equal(stored, v) for v in value)
    if op in _PATTERNS:
        return _PATTERNS[op](stored, value)
    if op not in _ORDERING:
        return _custom(operators[op], node, stored)
    coerced = coerce_like(value, stored)
    if isinstance(value, str) and isinstance(coerced, str) and isinstance(stored, (int, float)):
        kind = 'boolean' if isinstance(stored, bool) else 'number'
        raise BadRequest(f'Invalid value {value!r} for {op} on field {node.field!r}: expected a {kind}',
                         errors={node.field: f'expected a {kind}'})
    try:
        return bool(_ORDERING[op](stored, coerced))
    except TypeError:
        return False


def _custom(fn: Callable[[Any, Any], Any], node: q.Condition, stored: Any) -> bool:
    # An extra operator's own TypeError/ValueError means an operand it cannot use: the client's.
    try:
        return bool(fn(stored, node.value))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f'Invalid value {node.value!r} for {node.op} on field {node.field!r}: {exc}',
                         errors={node.field: str(exc)}) from None


def _compare(a: Any, b: Any) -> int:
    # None sorts first (the SQL service asks the database for the same), mixed types by type name.
    if a is None or b is None:
        return (a is not None) - (b is not None)
    try:
        return int((a > b) - (a < b))
    except TypeError:
        ka, kb = (type(a).__name__, str(a)), (type(b).__name__, str(b))
        return (ka > kb) - (ka < kb)


def _sort_key(sort: Iterable[Tuple[str, int]]) -> Callable[[Mapping[str, Any]], Any]:
    fields = tuple(sort)

    def compare(ra: Mapping[str, Any], rb: Mapping[str, Any]) -> int:
        for name, direction in fields:
            result = _compare(ra.get(name), rb.get(name))
            if result:
                return result * direction
        return 0
    return functools.cmp_to_key(compare)


class MemoryService(AdapterOptions):
    """A Feathers service storing records in memory.

    :param id: the name of the id field.
    :param paginate: ``{'default': n, 'max': m}`` (the default is 10 and 50); ``None`` makes ``find``
        return a plain list. ``params['paginate'] = False`` turns it off for one call.
    :param multi: allow ``create`` with a list and ``patch``/``remove`` with ``id=None`` (touching every
        record matching ``params['query']``); ``True`` or a list of those method names. Otherwise
        such calls raise MethodNotAllowed.
    :param store: an existing ``{id: record}`` dict to serve; it is used as it is, not copied.
    :param operators: extra query operators, ``{'$name': fn(stored_value, operand) -> bool}``.
    :param filters: extra top-level query keys, ``{'$name': True or converter}`` (see
        :mod:`flask_feathers._adapter`).

    ``params['adapter']`` overrides ``paginate``, ``multi``, ``operators`` and ``filters`` for one
    call (Feathers 5).

    Ids missing on create are generated as consecutive ints. Results are deep copies: callers can
    never change the store by mutating what they got. Every method holds one lock while it touches
    the store, so the service is safe to call from many threads.
    """

    def __init__(self, id: str = 'id', paginate: Optional[Mapping[str, Any]] = DEFAULT_PAGINATE,
                 multi: Union[bool, Iterable[str]] = False,
                 store: Optional[MutableMapping[Any, Dict[str, Any]]] = None,
                 operators: Optional[Mapping[str, Callable[[Any, Any], Any]]] = None,
                 filters: Optional[Mapping[str, Any]] = None) -> None:
        self.id = id
        self._init_options(paginate, multi, operators, filters)
        self.store: MutableMapping[Any, Dict[str, Any]] = {} if store is None else store
        self._lock = threading.Lock()
        self._next_id = 1 + max((k for k in self.store if _is_int(k)), default=0)

    # -- Feathers methods -------------------------------------------------------------------------

    def find(self, params: Optional[Dict[str, Any]] = None) -> Union[List[Dict[str, Any]], Page]:
        """Records matching ``params['query']``; a page dict when paginating."""
        options = self.options_for(params)
        parsed = self.parse(params, options)
        paginate = options.paginate
        filters = parsed.filters
        limit = effective_limit(filters, paginate)
        with self._lock:
            found = [r for r in self.store.values() if _matches(parsed.where, r, options.operators)]
            if filters.sort:
                found.sort(key=_sort_key(filters.sort))
            total = len(found)
            end = None if limit is None else filters.skip + limit
            data = [self._out(r, filters.select) for r in found[filters.skip:end]]
        return data if paginate is None else page(total, limit, filters.skip, data)

    def get(self, id: Any, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The record with ``id`` (which must also match ``params['query']``)."""
        options = self.options_for(params)
        parsed = self.parse(params, options)
        with self._lock:
            key = self._existing(id, parsed.where, options)
            return self._out(self.store[key], parsed.filters.select)

    def create(self, data: Any, params: Optional[Dict[str, Any]] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Store ``data`` (a list of records under ``multi``); a missing id is generated.

        A list is all or nothing: a duplicate id anywhere stores none of it.
        """
        options = self.options_for(params)
        select = self.parse(params, options).filters.select
        many = isinstance(data, list)
        if many:
            check_multi(options.multi, 'create')
        records = [copy.deepcopy(check_data(item)) for item in (data if many else [data])]
        with self._lock:
            keys: List[Any] = []
            for record in records:
                key = record.get(self.id)
                if key is None:
                    key = self._take_id(keys)
                    record[self.id] = key
                else:
                    _hashable(key)
                    if key in self.store or key in keys:
                        raise Conflict(f"A record with id '{key}' already exists", data={self.id: key})
                keys.append(key)
            for key, record in zip(keys, records):
                self.store[key] = record
                if _is_int(key):
                    self._next_id = max(self._next_id, key + 1)
            out = [self._out(r, select) for r in records]
        return out if many else out[0]

    def update(self, id: Any, data: Any, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Replace the record with ``id`` by ``data``; the id is kept whatever ``data`` says."""
        if id is None:
            raise BadRequest("update replaces one record and needs an id; use patch to change many")
        record = copy.deepcopy(check_data(data))
        options = self.options_for(params)
        parsed = self.parse(params, options)
        with self._lock:
            key = self._existing(id, parsed.where, options)
            record[self.id] = key
            self.store[key] = record
            return self._out(record, parsed.filters.select)

    def patch(self, id: Any, data: Any, params: Optional[Dict[str, Any]] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Merge ``data`` into the record with ``id``, or into every match when ``id`` is None."""
        changes = copy.deepcopy(check_data(data))
        changes.pop(self.id, None)
        options = self.options_for(params)
        parsed = self.parse(params, options)
        if id is None:
            check_multi(options.multi, 'patch')
        with self._lock:
            keys = self._keys(id, parsed.where, options)
            for key in keys:
                self.store[key].update(copy.deepcopy(changes))
            out = [self._out(self.store[key], parsed.filters.select) for key in keys]
        return out if id is None else out[0]

    def remove(self, id: Any, params: Optional[Dict[str, Any]] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Delete the record with ``id``, or every match when ``id`` is None; returns what was removed."""
        options = self.options_for(params)
        parsed = self.parse(params, options)
        if id is None:
            check_multi(options.multi, 'remove')
        with self._lock:
            keys = self._keys(id, parsed.where, options)
            out = [self._out(self.store.pop(key), parsed.filters.select) for key in keys]
        return out if id is None else out[0]

    # -- helpers (call with the lock held) --------------------------------------------------------

    def _out(self, record: Mapping[str, Any], select: Optional[Iterable[str]]) -> Dict[str, Any]:
        return copy.deepcopy(q.select_fields(record, select, self.id))

    def _keys(self, id: Any, where: q.Node, options: CallOptions) -> List[Any]:
        if id is None:
            return [key for key, record in self.store.items()
                    if _matches(where, record, options.operators)]
        return [self._existing(id, where, options)]

    def _existing(self, id: Any, where: q.Node, options: CallOptions) -> Any:
        key = self._lookup(id)
        if key is _MISSING or not _matches(where, self.store[key], options.operators):
            raise NotFound(f"No record found for id '{id}'", data={self.id: id})
        return key

    def _lookup(self, id: Any) -> Any:
        _hashable(id)
        if id in self.store:
            return id
        if isinstance(id, str):
            number = parse_int(id)
            if number is not None and number in self.store:
                return number
        elif _is_int(id) and str(id) in self.store:
            return str(id)
        return _MISSING

    def _take_id(self, taken: List[Any]) -> int:
        while self._next_id in self.store or self._next_id in taken:
            self._next_id += 1
        key = self._next_id
        self._next_id += 1
        return key


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hashable(id: Any) -> None:
    try:
        hash(id)
    except TypeError:
        raise BadRequest(f'Invalid id {id!r}') from None
