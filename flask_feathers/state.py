"""Everything flask_feathers keeps for one Flask app: :class:`FeathersState`.

It lives in ``app.extensions["feathers"]`` and holds the app's :class:`Application` (services),
its connections and channels, the dispatcher, the router and its fan-out, the socket limits and
the providers' server objects. It keeps a weak reference to the app only.
"""
from __future__ import annotations

import contextlib
import threading
import weakref
from typing import TYPE_CHECKING, Any, ContextManager, Dict, Mapping, Optional, Protocol, cast

from flask import Flask, has_app_context

from .application import Application
from .channels import Channels
from .config import (FEATHERS_CONNECT_RATE, FEATHERS_FILTER_TIMEOUT, FEATHERS_FILTER_WORKERS,
                     FEATHERS_HANDSHAKE_TIMEOUT, FEATHERS_MAX_BODY, FEATHERS_MAX_CONNECTIONS,
                     FEATHERS_MAX_CONNECTIONS_PER_ADDRESS, FEATHERS_MAX_PENDING,
                     FEATHERS_MESSAGE_QUEUE, FEATHERS_MESSAGE_QUEUE_CHANNEL,
                     FEATHERS_MESSAGE_QUEUE_WRITE_ONLY)
from .connections import Connection, ConnectionRegistry, ConnectRate
from .dispatch import Dispatcher
from .fanout import Fanout, LocalFanout, Receive
from .router import BroadcastHandler, Router

if TYPE_CHECKING:
    from .providers.primus import PrimusServer
    from .providers.socketio import FeathersSocketIO
    from .extension import Feathers


class Provider(Protocol):
    """What ``api.add_provider`` takes: ``attach(api, state)`` runs once for every app."""

    def attach(self, api: 'Feathers', state: 'FeathersState') -> None:
        """Set the provider up on one app (routes, servers, transports)."""


class FeathersState:
    """Everything flask_feathers keeps for one Flask app (``app.extensions["feathers"]``)."""

    def __init__(self, api: 'Feathers', app: Flask, application: Application,
                 queue_options: Optional[Mapping[str, Any]] = None) -> None:
        config = dict(app.config)
        config.update({k: v for k, v in (queue_options or {}).items() if v is not None})
        self.api = api
        self.application = application
        self.connections = ConnectionRegistry()
        self.dispatcher = Dispatcher(self.connections, application.lookup,
                                     workers=int(config[FEATHERS_FILTER_WORKERS]),
                                     filter_timeout=float(config[FEATHERS_FILTER_TIMEOUT]),
                                     max_pending=int(config[FEATHERS_MAX_PENDING]),
                                     publishers=application.publishers,
                                     context=self.app_context)
        #: named channels of this app's connections (Feathers 5's model)
        self.channels = Channels(self.connections)
        self.max_connections = int(config[FEATHERS_MAX_CONNECTIONS] or 0)
        self.handshake_timeout = float(config[FEATHERS_HANDSHAKE_TIMEOUT] or 0)
        per_address = config[FEATHERS_MAX_CONNECTIONS_PER_ADDRESS]
        self.max_connections_per_address = int(per_address) if per_address else None
        #: client address -> socket connections it holds (only counted with a per-address cap)
        self._by_address: Dict[str, int] = {}
        self._by_address_lock = threading.Lock()
        if self.max_connections_per_address:
            self.connections.on('connection', self._count_address)
            self.connections.on('disconnect', self._uncount_address)
        self.max_body = int(config[FEATHERS_MAX_BODY])
        if self.max_body < 0:
            raise ValueError(f'FEATHERS_MAX_BODY must be 0 or more bytes, got {self.max_body}')
        #: the message queue URL shared with other processes, or None
        self.message_queue: Optional[str] = config[FEATHERS_MESSAGE_QUEUE] or None
        self.message_queue_channel: str = config[FEATHERS_MESSAGE_QUEUE_CHANNEL]
        self.write_only = bool(config[FEATHERS_MESSAGE_QUEUE_WRITE_ONLY])
        if self.write_only and not self.message_queue:
            raise ValueError('FEATHERS_MESSAGE_QUEUE_WRITE_ONLY needs FEATHERS_MESSAGE_QUEUE '
                             '(a redis:// URL) to publish to')
        #: service events and providers' broadcasts, to this process or to every process
        self.router = Router(self.dispatcher.dispatch, self._make_fanout,
                             context=self._dispatch_context)
        application.add_event_sink(self.router.send_event)
        #: the SocketIO server, once the socketio provider is configured
        self.io: Optional[FeathersSocketIO] = None
        #: the Primus server, once the primus provider is configured
        self.primus: Optional[PrimusServer] = None
        self.providers: Dict[str, Any] = {}
        rate = config.get(FEATHERS_CONNECT_RATE)
        #: admissions per client address over both socket transports, or None
        self.connect_rate: Optional[ConnectRate] = ConnectRate(rate) if rate else None
        self._app = weakref.ref(app)

    def _make_fanout(self, receive: Receive) -> Fanout:
        if self.message_queue:
            from .fanout_redis import RedisFanout
            return RedisFanout(self.message_queue, receive, channel=self.message_queue_channel,
                               write_only=self.write_only)
        return LocalFanout(receive)

    @property
    def app(self) -> Optional[Flask]:
        """The Flask app this state belongs to (None once it is gone)."""
        return self._app()

    @property
    def fanout(self) -> Fanout:
        """The router's fan-out (a :class:`~flask_feathers.fanout_redis.RedisFanout` with a
        message queue: ``wait_subscribed()``, ``subscribed``)."""
        return self.router.fanout

    @property
    def debug(self) -> bool:
        return self.application.debug

    def connections_of(self, address: Optional[str]) -> int:
        """Socket connections ``address`` holds now (counted with a per-address cap only)."""
        return self._by_address.get(address or '', 0)

    def _count_address(self, connection: Connection) -> None:
        address = connection.extra.get('address') or ''
        with self._by_address_lock:
            self._by_address[address] = self._by_address.get(address, 0) + 1

    def _uncount_address(self, connection: Connection) -> None:
        address = connection.extra.get('address') or ''
        with self._by_address_lock:
            left = self._by_address.get(address, 0) - 1
            if left > 0:
                self._by_address[address] = left
            else:
                self._by_address.pop(address, None)

    def app_context(self) -> ContextManager[Any]:
        """The app's application context, for work outside a request (filters, Primus calls and
        listeners); nothing once the app is gone."""
        app = self._app()
        return app.app_context() if app is not None else contextlib.nullcontext()

    def _dispatch_context(self) -> ContextManager[Any]:
        # The message queue's subscriber thread has no context: publishers see current_app too.
        return contextlib.nullcontext() if has_app_context() else self.app_context()

    def on_broadcast(self, name: str, handler: BroadcastHandler) -> None:
        """Let a provider receive its own :meth:`broadcast` messages (from every process)."""
        self.router.on_broadcast(name, handler)

    def broadcast(self, name: str, event: str, data: Any) -> None:
        """Send a provider's own message (e.g. ``api.primus.send``) to every process's
        ``on_broadcast(name)`` handler, through the same fan-out as service events."""
        self.router.broadcast(name, event, data)

    def close(self) -> None:
        """Close this app's socket connections (close frame 1001, going away: clients reconnect
        elsewhere; at most ``transport.hub.SHUTDOWN_GRACE`` seconds), then stop the message
        queue subscriber and the filter workers."""
        from .transport import hub
        if hub._hub is not None:
            hub._hub.close_all(owner=self)
        self.router.close()
        self.dispatcher.close()


def state_of(app: Flask) -> FeathersState:
    """The flask_feathers state of ``app``, with a helpful error when there is none."""
    state = app.extensions.get('feathers')
    if state is None:
        raise RuntimeError('flask_feathers is not initialised on this app: call Feathers(app) or '
                           'api.init_app(app) first')
    return cast(FeathersState, state)  # app.extensions holds Any
