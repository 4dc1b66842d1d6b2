"""Channels and publishers (Feathers 5's model), beside the seed's per-client filters.

A :class:`Channel` is a set of connections. Publishers decide, per service event, which channels
get it: ``api.publish(fn)``, ``api.publish('created', fn)``, ``svc.publish(fn)``,
``svc.publish('created', fn)``, resolved with Feathers 5's precedence (service event > service
catch-all > app event > app catch-all). A publisher returns a channel, a list of channels, or None.

Where neither a publisher nor a filter method exists, every connection gets the event (the seed's
behaviour). Where a service has both, the filter runs only for the connections the publisher chose.

Publishers are evaluated here and nowhere else (:meth:`Publishers.evaluate`): the dispatcher hands
each event in and gets back the connections to deliver to, grouped by the payload each gets.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from .connections import Connection, ConnectionRegistry
from .encoding import jsonable
from .hooks import HookContext, emitting_context

log = logging.getLogger(__name__)

#: The key of a catch-all publisher.
ALL_EVENTS = '*'

#: ``publisher(data, context)`` -> a :class:`Channel`, a list of channels, or None. ``context`` is
#: the call's :class:`~flask_feathers.hooks.HookContext`, or an :class:`EventContext`.
Publisher = Callable[[Any, Any], Any]
#: What a publisher chose for one event: ``(payload, connections)``, one entry per payload.
Groups = List[Tuple[Any, List[Connection]]]


class Channel:
    """A set of connections, optionally with the data they should get instead of the event's.

    :param connections: the initial members.
    :param data: per-channel payload (see :meth:`send`); None sends the event's own data.
    """

    def __init__(self, connections: Iterable[Connection] = (), data: Any = None,
                 name: Optional[str] = None) -> None:
        self._members: Dict[int, Connection] = {}
        self._lock = threading.Lock()
        self.data = data
        self.name = name
        for conn in connections:
            self._members[id(conn)] = conn

    def __repr__(self) -> str:
        label = f' {self.name!r}' if self.name else ''
        return f'<Channel{label} {len(self)} connections>'

    @property
    def connections(self) -> List[Connection]:
        """The members, in the order they joined."""
        return list(self._members.values())

    def __len__(self) -> int:
        return len(self._members)

    @property
    def length(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Connection]:
        return iter(self.connections)

    def __contains__(self, conn: object) -> bool:
        return id(conn) in self._members

    def join(self, *connections: Connection) -> 'Channel':
        """Add connections (gone ones are ignored); returns the channel."""
        with self._lock:
            for conn in connections:
                _check_connection(conn)
                if conn.connected:
                    self._members[id(conn)] = conn
        return self

    def leave(self, *connections: Union[Connection, Callable[[Connection], bool]]) -> 'Channel':
        """Remove connections, or every member for which a predicate ``fn(connection)`` is true."""
        with self._lock:
            for item in connections:
                if isinstance(item, Connection):
                    self._members.pop(id(item), None)
                elif callable(item):
                    for key, conn in list(self._members.items()):
                        if item(conn):
                            del self._members[key]
                else:
                    raise TypeError(f'leave() takes connections or a predicate, got {item!r}')
        return self

    def filter(self, fn: Callable[[Connection], bool]) -> 'Channel':
        """A new channel with the members for which ``fn(connection)`` is true."""
        return Channel([c for c in self.connections if fn(c)], self.data)

    def send(self, data: Any) -> 'Channel':
        """A channel with the same members that sends ``data`` instead of the event's data."""
        return Channel(self.connections, data)


def _check_connection(conn: Any) -> None:
    if not isinstance(conn, Connection):
        raise TypeError(f'a channel holds connections (the object api.on("connection") hands '
                        f'you), got {type(conn).__name__}')


class Channels:
    """The named channels of one application in this process."""

    def __init__(self, connections: ConnectionRegistry) -> None:
        self._named: Dict[str, Channel] = {}
        self._lock = threading.Lock()
        connections.on('disconnect', self._leave_all)

    def channel(self, *names: Union[str, Sequence[str]]) -> Channel:
        """The channel called ``name`` (created on first use), or the union of several."""
        first = names[0] if len(names) == 1 else None
        if isinstance(first, str):  # the usual call, on every connection
            return self._named_channel(first)
        flat: List[object] = []
        for name in names:
            if isinstance(name, (list, tuple)):
                flat.extend(name)
            else:
                flat.append(name)
        if not flat:
            raise TypeError('channel() needs at least one name')
        keys: List[str] = []
        for key in flat:
            if not isinstance(key, str):
                raise TypeError(f'channel names are strings, got {key!r}')
            keys.append(key)
        chans = [self._named_channel(key) for key in keys]
        if len(chans) == 1:
            return chans[0]
        return union(chans)

    def _named_channel(self, name: str) -> Channel:
        """The channel called ``name``, made on first use (a lookup without the lock when it
        exists: dict reads are atomic)."""
        chan = self._named.get(name)
        if chan is None:
            with self._lock:
                chan = self._named.get(name)
                if chan is None:  # (setdefault would build a Channel on every call)
                    chan = self._named[name] = Channel(name=name)
        return chan

    @property
    def names(self) -> List[str]:
        with self._lock:
            return list(self._named)

    def _leave_all(self, conn: Connection) -> None:
        with self._lock:
            chans = list(self._named.values())
        for chan in chans:
            chan.leave(conn)


class Publishers:
    """Publishers by (service path or None for the app, event or :data:`ALL_EVENTS`)."""

    def __init__(self) -> None:
        self._by_key: Dict[Tuple[Optional[str], str], Publisher] = {}

    def register(self, path: Optional[str], event: Any, fn: Optional[Publisher]) -> Any:
        """``register(path, fn)``, ``register(path, event, fn)``; without fn, a decorator."""
        if callable(event) and fn is None:
            event, fn = ALL_EVENTS, event
        if event is None:
            event = ALL_EVENTS
        if not isinstance(event, str):
            raise TypeError(f'publish() takes an event name and a function, got {event!r}')
        if fn is None:
            return lambda f: (self.register(path, event, f), f)[1]
        if not callable(fn):
            raise TypeError(f'a publisher must be callable, got {fn!r}')
        self._by_key[(path, event)] = fn
        return fn

    def evaluate(self, path: str, event: str, data: Any, service: object) -> Optional[Groups]:
        """Who gets one service event: None when no publisher applies (every connection gets
        ``data``), else the connections the publisher chose, grouped by the payload each gets
        (``data``, or a channel's own data made JSON-ready). A publisher that raises, or channel
        data that cannot be sent as JSON, is logged and sends nothing (to that group).

        :param service: the wrapped service at ``path`` (a publisher's ``context.service`` when
            the call's hook context is not at hand).
        """
        publisher = self.publisher_for(path, event)
        if publisher is None:
            return None
        hook_context = emitting_context()
        context: Union[HookContext, EventContext]
        if hook_context is not None and hook_context.path == path and \
                hook_context.event == event:
            context = hook_context  # the call's own context, as Feathers 5 passes it
        else:  # an event from a message queue (another process), or emitted by hand
            context = EventContext(path, event, service, data)
        try:
            pairs = deliveries(publisher(data, context))
        except Exception:
            log.exception('publisher for %r %r raised; the event goes to no client', path, event)
            return []
        by_payload: Dict[int, Tuple[Any, List[Connection]]] = {}
        for conn, payload in pairs:
            payload = data if payload is None else payload
            group = by_payload.get(id(payload))
            if group is None:
                group = by_payload[id(payload)] = (payload, [])
            group[1].append(conn)
        groups: Groups = []
        for payload, conns in by_payload.values():
            try:
                groups.append((payload if payload is data else jsonable(payload), conns))
            except (TypeError, ValueError, RecursionError) as exc:
                log.error('channel data for %r %r cannot be sent as JSON (%s); skipped', path,
                          event, exc)
        return groups

    def publisher_for(self, path: str, event: str) -> Optional[Publisher]:
        """The publisher by Feathers 5's precedence, or None."""
        by_key = self._by_key
        if not by_key:
            return None
        for key in ((path, event), (path, ALL_EVENTS), (None, event), (None, ALL_EVENTS)):
            fn = by_key.get(key)
            if fn is not None:
                return fn
        return None

    def __bool__(self) -> bool:
        return bool(self._by_key)


class EventContext(Dict[str, Any]):
    """What a publisher gets as ``context`` when the call's hook context is not at hand (an event
    that came over the message queue, or emitted with ``service.emit``): ``path``, ``event``,
    ``service`` and ``data`` as attributes (and as keys), ``params`` empty."""

    def __init__(self, path: str, event: str, service: object, data: Any) -> None:
        super().__init__(path=path, event=event, service=service, data=data)
        self.path = path
        self.event = event
        self.service = service
        self.data = data
        self.params: Dict[str, Any] = {}
        self.method: Optional[str] = None


def union(channels: Iterable[Channel]) -> Channel:
    """One channel holding every connection of ``channels`` once (the first channel's data wins)."""
    members: Dict[int, Connection] = {}
    data = None
    for chan in channels:
        for conn in chan.connections:
            members.setdefault(id(conn), conn)
        if data is None:
            data = chan.data
    return Channel(members.values(), data)


def deliveries(result: object) -> List[Tuple[Connection, Any]]:
    """Flatten what a publisher returned into ``(connection, data_or_None)`` pairs, each once.

    A connection in several channels gets the data of the first channel that holds it.
    """
    if result is None:
        return []
    chans = result if isinstance(result, (list, tuple)) else [result]
    seen: Dict[int, Tuple[Connection, Any]] = {}
    for chan in chans:
        if chan is None:
            continue
        if not isinstance(chan, Channel):
            raise TypeError(f'a publisher returns a channel, a list of channels or None, got '
                            f'{type(chan).__name__}')
        for conn in chan.connections:
            if id(conn) not in seen:
                seen[id(conn)] = (conn, chan.data)
    return list(seen.values())
