"""Helpers for testing your own flask_feathers services, filters and real-time clients.

* :func:`wait_for_dispatch` waits until every service event was delivered to (or skipped for) every
  connected client, so ``get_received()`` of a test client shows the filtered events.
* :func:`run_filter` runs one event filter for one set of connection params, without any socket.
* :class:`FakeConnection` is a connection that records what it was sent, for dispatcher-level tests.
* :func:`realtime_client` connects Flask-SocketIO's test client (with an auth payload) and answers
  every call as ``(error, result)``.

Flask-SocketIO's test client replaces the server's packet sending while it exists: use it on an
app that is not also served to real clients in the same test.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from flask import Flask

from .connections import Connection
from .dispatch import DEFAULT_FILTER_TIMEOUT, apply_filter
from .extension import Feathers, FeathersState, state_of
from .registry import WrappedService
from .service import METHODS, PARAMS_POSITION, member

__all__ = ['FakeConnection', 'RealtimeTestClient', 'realtime_client', 'run_filter',
           'wait_for_dispatch']

#: What :meth:`RealtimeTestClient.call` and the service proxies return: ``(error_dict, None)`` or
#: ``(None, result)``.
Ack = Tuple[Optional[Dict[str, Any]], Any]


def _state(api_or_app: Any) -> FeathersState:
    if isinstance(api_or_app, FeathersState):
        return api_or_app
    if isinstance(api_or_app, Feathers):
        return api_or_app.state
    if isinstance(api_or_app, Flask):
        return state_of(api_or_app)
    raise TypeError(f'expected the Feathers extension or a Flask app initialised with it, got '
                    f'{type(api_or_app).__name__}')


def wait_for_dispatch(api_or_app: Any, timeout: float = 5.0) -> None:
    """Block until every service event emitted so far went through the event filters.

    Events without a filter are sent as soon as they are emitted; filtered ones run in worker
    threads. After this returns, Flask-SocketIO's test client has every event it will get in
    ``get_received()`` (a real network client may still be reading them off the socket).

    :param api_or_app: the :class:`~flask_feathers.Feathers` extension or the Flask app.
    :raises TimeoutError: when filters are still running after ``timeout`` seconds.
    """
    dispatcher = _state(api_or_app).dispatcher
    if not dispatcher.wait_idle(timeout):
        raise TimeoutError(
            f'event filters still running after {timeout:g} s ({dispatcher.pending.count} deliveries '
            f'pending); a filter that never returns or never calls its callback is skipped only '
            f'after FEATHERS_FILTER_TIMEOUT ({dispatcher.filter_timeout:g} s)')


def run_filter(service: Any, event: str, data: Any, params: Optional[Dict[str, Any]] = None,
               timeout: float = DEFAULT_FILTER_TIMEOUT) -> Any:
    """What a client with connection ``params`` would receive for ``event``, or None for nothing.

    Runs the service's filter method named like ``event`` exactly as the dispatcher does (either
    calling style; ``True`` sends ``data`` unchanged; a JavaScript-falsy result sends nothing).
    Without a filter the data is returned unchanged. Exceptions from the filter propagate, and a
    callback-style filter that never calls back raises :class:`~flask_feathers.errors.Timeout`.

    :param service: your service object (or dict), or the wrapper ``api.service(path)``.
    :param params: the connection params (what your ``io.use`` middleware put in
        ``socket.feathers``); defaults to ``{'provider': 'socketio'}``.
    """
    target = service.service if isinstance(service, WrappedService) else service
    filt = member(target, event)
    if filt is None:
        return data
    if params is None:
        params = {'provider': 'socketio'}
    send, result = apply_filter(filt, data, params, timeout, label=f'filter {event!r}')
    return result if send else None


class FakeConnection(Connection):
    """A connection that records every event sent to it in :attr:`sent` as ``(name, data)``.

    Register it with ``state.connections.add(conn)`` to see what the dispatcher delivers, or pass
    it to a Dispatcher in unit tests.
    """

    _ids = iter(range(1, 1 << 62))

    def __init__(self, params: Optional[Dict[str, Any]] = None, id: Optional[str] = None,
                 provider: str = 'test') -> None:
        super().__init__(id or f'fake-{next(self._ids)}', provider,
                         {'provider': provider} if params is None else params, self._record)
        self.sent: List[Tuple[str, Any]] = []
        self._changed = threading.Condition()

    def _record(self, name: str, data: Any) -> None:
        with self._changed:
            self.sent.append((name, data))
            self._changed.notify_all()

    def events(self, name: Optional[str] = None) -> List[Any]:
        """The data of every event received (only those called ``name`` when given)."""
        with self._changed:
            return [d for n, d in self.sent if name is None or n == name]

    def wait_for(self, count: int, timeout: float = 5.0) -> List[Tuple[str, Any]]:
        """Wait until at least ``count`` events arrived; return them all.

        :raises TimeoutError: with what did arrive, when fewer came within ``timeout``.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.sent) >= count, timeout):
                raise TimeoutError(f'{self!r} received {len(self.sent)} of {count} events within '
                                   f'{timeout:g} s: {self.sent!r}')
            return list(self.sent)


class _ServiceProxy:
    """``client.service('todos').create(data, query)`` -> ``(error, result)``."""

    def __init__(self, client: 'RealtimeTestClient', path: str) -> None:
        self._client = client
        self._path = path

    def __getattr__(self, method: str) -> Callable[..., Ack]:
        if method not in METHODS:
            raise AttributeError(f'{method!r} is not a service method ({", ".join(METHODS)})')
        return lambda *args: self._client.call(self._path, method, *args)


class RealtimeTestClient:
    """A connected Flask-SocketIO test client speaking the Feathers protocol.

    Build it with :func:`realtime_client`. Usable as a context manager (disconnects at the end).
    """

    def __init__(self, api_or_app: Any, app: Optional[Flask] = None, auth: Any = None,
                 headers: Optional[Mapping[str, str]] = None, query_string: Optional[str] = None,
                 flask_test_client: Any = None) -> None:
        state = _state(api_or_app) if app is None else state_of(app)
        if state.io is None:
            raise RuntimeError('Socket.IO is not configured on this app: call '
                               'api.configure(flask_feathers.socketio()) first')
        flask_app = state.app
        if flask_app is None:
            raise RuntimeError('the Flask app of this Feathers state is gone')
        self.state = state
        self._io = state.io
        #: the underlying ``flask_socketio.SocketIOTestClient``
        self.client = state.io.test_client(flask_app, auth=auth, headers=headers,
                                           query_string=query_string,
                                           flask_test_client=flask_test_client)

    @property
    def connected(self) -> bool:
        """False when the ``io.use`` middleware (or a connect handler) refused the connection."""
        return bool(self.client.is_connected())

    @property
    def params(self) -> Dict[str, Any]:
        """This connection's feathers params (``socket.feathers``), the very dict filters get."""
        sid = self._io.server.manager.sid_from_eio_sid(self.client.eio_sid, '/')
        conn = self.state.connections.get(sid) if sid else None
        if conn is None:
            raise RuntimeError('this test client is not connected')
        return conn.params

    def emit(self, event: str, *args: Any) -> Ack:
        """Emit ``event`` with ``args`` and an ack function; return the ack as ``(error, result)``.

        :raises AssertionError: when the server sent no ack.
        """
        if not self.connected:
            raise RuntimeError('the test client is not connected (was the connection refused?)')
        ack = self.client.emit(event, *args, callback=True)
        if ack is None:
            raise AssertionError(f'the server sent no ack for {event!r}')
        # Flask-SocketIO's test client unwraps a one-argument ack: that is an error dict.
        if isinstance(ack, list) and len(ack) == 2:
            return ack[0], ack[1]
        return ack, None

    def call(self, path: str, method: str, *args: Any) -> Ack:
        """Call ``method`` of the service at ``path`` like a Feathers client (legacy dialect).

        ``args`` are the method's arguments without params, optionally followed by the query:
        ``call('todos', 'get', 1, {'$select': ['text']})``.
        """
        if method in PARAMS_POSITION and len(args) == PARAMS_POSITION[method]:
            args = (*args, {})
        return self.emit(f'{path.strip("/")}::{method}', *args)

    def service(self, path: str) -> _ServiceProxy:
        """A proxy whose ``find/get/create/update/patch/remove`` return ``(error, result)``."""
        return _ServiceProxy(self, path)

    def received(self, event: Optional[str] = None, timeout: float = 5.0) -> List[Any]:
        """Wait for event dispatch, then return (and consume) the events received so far.

        :param event: only the data of events of this name (``'todos created'``), others stay
            queued; without it, ``(name, data)`` for every event.
        """
        wait_for_dispatch(self.state, timeout)
        packets = self.client.get_received()
        if event is None:
            return [(p['name'], p['args'][0] if len(p['args']) == 1 else p['args'])
                    for p in packets]
        keep = [p for p in packets if p['name'] != event]
        self.client.queue.extend(keep)
        return [p['args'][0] if len(p['args']) == 1 else p['args'] for p in packets
                if p['name'] == event]

    def disconnect(self) -> None:
        if self.connected:
            self.client.disconnect()

    def __enter__(self) -> 'RealtimeTestClient':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()


def realtime_client(api_or_app: Any, auth: Any = None, **kwargs: Any) -> RealtimeTestClient:
    """Connect a :class:`RealtimeTestClient` to the app's Socket.IO server.

    :param api_or_app: the :class:`~flask_feathers.Feathers` extension or the Flask app.
    :param auth: the auth payload your ``io.use`` middleware reads as ``socket.auth``.
    :param kwargs: ``headers``, ``query_string``, ``flask_test_client`` (for cookies), ``app``.
    """
    return RealtimeTestClient(api_or_app, auth=auth, **kwargs)

