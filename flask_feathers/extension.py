"""The Flask extension: ``Feathers(app=None)`` / ``init_app``, configuration and per-app state.

Per-app state lives in ``app.extensions["feathers"]`` (a :class:`FeathersState`); nothing stores
``self.app``. Services and providers registered on the extension before ``init_app`` are replayed on
every app it is initialised on.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import weakref
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from flask import Flask, current_app, has_app_context

from .channels import Channel, Channels
from .connections import ConnectionRegistry, ConnectRate
from .encoding import jsonable
from .dispatch import (DEFAULT_FILTER_TIMEOUT, DEFAULT_FILTER_WORKERS, DEFAULT_MAX_PENDING,
                       Dispatcher)
from .fanout import LocalFanout
from .registry import Application, WrappedService, strip_path
from .service import DEFAULT_CALLBACK_TIMEOUT

log = logging.getLogger(__name__)

#: Seconds a callback-style service method may take before the call fails with Timeout.
FEATHERS_CALLBACK_TIMEOUT = 'FEATHERS_CALLBACK_TIMEOUT'
#: Size of the worker pool that runs event filters.
FEATHERS_FILTER_WORKERS = 'FEATHERS_FILTER_WORKERS'
#: Seconds an event filter may take for one client before that client is skipped.
FEATHERS_FILTER_TIMEOUT = 'FEATHERS_FILTER_TIMEOUT'
#: Filtered deliveries that may wait in the process before event-producing calls wait too.
FEATHERS_MAX_PENDING = 'FEATHERS_MAX_PENDING'
#: When true, internal error messages (never tracebacks) reach clients; defaults to ``app.debug``.
FEATHERS_DEBUG = 'FEATHERS_DEBUG'
#: Redis URL (``redis://127.0.0.1:6379/0``) shared by several server processes: every service event
#: reaches every process, which filters it for its own clients. None: this process only.
FEATHERS_MESSAGE_QUEUE = 'FEATHERS_MESSAGE_QUEUE'
#: The pub/sub channel of the message queue; Socket.IO's own queue uses ``<channel>-socketio``.
FEATHERS_MESSAGE_QUEUE_CHANNEL = 'FEATHERS_MESSAGE_QUEUE_CHANNEL'
#: When true, only publish events (workers, cron jobs): no subscriber, no local delivery.
FEATHERS_MESSAGE_QUEUE_WRITE_ONLY = 'FEATHERS_MESSAGE_QUEUE_WRITE_ONLY'
#: Socket connections admitted per client address, e.g. ``'20/10s'`` (units s, m, h), counted
#: over both socket transports; more are refused with TooManyRequests. None: no limit.
FEATHERS_CONNECT_RATE = 'FEATHERS_CONNECT_RATE'
#: Socket connections (both transports) one app holds at most in a process; more are refused
#: with Unavailable (503) before their authorization runs. 0: no cap.
FEATHERS_MAX_CONNECTIONS = 'FEATHERS_MAX_CONNECTIONS'
#: Socket connections one client address may hold at most; more are refused with
#: TooManyRequests (429). None: no cap (behind a proxy every client has the proxy's address).
FEATHERS_MAX_CONNECTIONS_PER_ADDRESS = 'FEATHERS_MAX_CONNECTIONS_PER_ADDRESS'
#: Seconds a Socket.IO client has, once its connection opened, to complete its CONNECT (the
#: ``io.use`` chain included); then it is closed. 0: no limit.
FEATHERS_HANDSHAKE_TIMEOUT = 'FEATHERS_HANDSHAKE_TIMEOUT'
#: Bytes a REST request body may have (Flask's ``MAX_CONTENT_LENGTH`` wins when the app sets it);
#: a longer one is answered 413 before it is read.
FEATHERS_MAX_BODY = 'FEATHERS_MAX_BODY'
#: 1 MiB, the size bound of one socket message.
DEFAULT_MAX_BODY = 1024 * 1024
#: Seconds a connection has under ``api.run`` to send its first request line and headers (a
#: silent or trickling one is then closed; it never holds a thread meanwhile).
FEATHERS_REQUEST_TIMEOUT = 'FEATHERS_REQUEST_TIMEOUT'
DEFAULT_REQUEST_TIMEOUT = 60.0

#: The authentication settings (a dict: ``secret``, ``entity``, ``service``, ``authStrategies``,
#: ``jwtOptions``, ``local``...), read by :class:`flask_feathers.authentication.AuthenticationService`.
FEATHERS_AUTHENTICATION = 'FEATHERS_AUTHENTICATION'
#: Failed sign-ins allowed per username in a window (``'10/m'``); more answer TooManyRequests.
FEATHERS_LOGIN_RATE = 'FEATHERS_LOGIN_RATE'
#: Failed sign-ins allowed per client address in a window; behind a proxy, the address is the
#: proxy's unless the app trusts its ``X-Forwarded-For`` (Werkzeug's ``ProxyFix``).
FEATHERS_LOGIN_RATE_PER_ADDRESS = 'FEATHERS_LOGIN_RATE_PER_ADDRESS'

#: Every configuration key with its default.
DEFAULTS: Dict[str, Any] = {
    FEATHERS_CALLBACK_TIMEOUT: DEFAULT_CALLBACK_TIMEOUT,
    FEATHERS_FILTER_WORKERS: DEFAULT_FILTER_WORKERS,
    FEATHERS_FILTER_TIMEOUT: DEFAULT_FILTER_TIMEOUT,
    FEATHERS_MAX_PENDING: DEFAULT_MAX_PENDING,
    FEATHERS_DEBUG: None,
    FEATHERS_MESSAGE_QUEUE: None,
    FEATHERS_MESSAGE_QUEUE_CHANNEL: 'flask-feathers',
    FEATHERS_MESSAGE_QUEUE_WRITE_ONLY: False,
    FEATHERS_CONNECT_RATE: None,
    FEATHERS_MAX_BODY: DEFAULT_MAX_BODY,
    FEATHERS_MAX_CONNECTIONS: 50000,
    FEATHERS_HANDSHAKE_TIMEOUT: 30.0,
    FEATHERS_MAX_CONNECTIONS_PER_ADDRESS: None,
    FEATHERS_REQUEST_TIMEOUT: DEFAULT_REQUEST_TIMEOUT,
    FEATHERS_AUTHENTICATION: None,
    FEATHERS_LOGIN_RATE: '10/m',
    FEATHERS_LOGIN_RATE_PER_ADDRESS: '30/m',
}

Provider = Any  # an object with ``attach(api, state)``

#: App events besides 'connection' / 'disconnect' (the authentication service emits them).
APP_EVENTS = ('login', 'logout')


def _positional_count(fn: Callable[..., Any], most: int) -> int:
    """How many positional arguments ``fn`` takes, at most ``most`` (all of them for *args)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return most
    count = 0
    for parameter in parameters:
        if parameter.kind == parameter.VAR_POSITIONAL:
            return most
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return min(count, most)

#: Fan-out paths starting with this carry providers' own broadcasts, not service events.
BROADCAST_PREFIX = ':'


class FeathersState:
    """Everything flask_feathers keeps for one Flask app (``app.extensions["feathers"]``)."""

    def __init__(self, api: 'Feathers', app: Flask, application: Application,
                 queue_options: Optional[Dict[str, Any]] = None) -> None:
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
        self.fanout: Any
        if self.message_queue:
            from .fanout_redis import RedisFanout
            self.fanout = RedisFanout(self.message_queue, self._deliver,
                                      channel=self.message_queue_channel,
                                      write_only=self.write_only)
        else:
            self.fanout = LocalFanout(self._deliver)
        #: ':name' -> handler(event, data) for providers' own broadcasts (see broadcast())
        self._broadcast_handlers: Dict[str, Callable[[str, Any], None]] = {}
        application.add_event_sink(self.publish)
        #: the SocketIO server, once the socketio provider is configured
        self.io: Any = None
        #: the Primus server, once the primus provider is configured
        self.primus: Any = None
        self.providers: Dict[str, Any] = {}
        rate = config.get(FEATHERS_CONNECT_RATE)
        #: admissions per client address over both socket transports, or None
        self.connect_rate: Optional[ConnectRate] = ConnectRate(rate) if rate else None
        self._app = weakref.ref(app)

    @property
    def app(self) -> Optional[Flask]:
        """The Flask app this state belongs to (None once it is gone)."""
        return self._app()

    def connections_of(self, address: Optional[str]) -> int:
        """Socket connections ``address`` holds now (counted with a per-address cap only)."""
        return self._by_address.get(address or '', 0)

    def _count_address(self, connection: Any) -> None:
        address = connection.extra.get('address') or ''
        with self._by_address_lock:
            self._by_address[address] = self._by_address.get(address, 0) + 1

    def _uncount_address(self, connection: Any) -> None:
        address = connection.extra.get('address') or ''
        with self._by_address_lock:
            left = self._by_address.get(address, 0) - 1
            if left > 0:
                self._by_address[address] = left
            else:
                self._by_address.pop(address, None)

    def app_context(self) -> Any:
        """The app's application context, for work outside a request (filters, Primus calls and
        listeners); nothing once the app is gone."""
        app = self._app()
        return app.app_context() if app is not None else contextlib.nullcontext()

    def publish(self, path: str, event: str, data: Any) -> None:
        try:
            # Once per event, before the fan-out: every transport and process gets the same JSON.
            data = jsonable(data)
        except (TypeError, ValueError, RecursionError) as exc:
            log.error('%s %s event dropped: its data cannot be sent as JSON (%s)', path, event, exc)
            return
        self.fanout.publish(path, event, data)

    def on_broadcast(self, name: str, handler: Callable[[str, Any], None]) -> None:
        """Let a provider receive its own :meth:`broadcast` messages (from every process)."""
        self._broadcast_handlers[BROADCAST_PREFIX + name] = handler

    def broadcast(self, name: str, event: str, data: Any) -> None:
        """Send a provider's own message (e.g. ``api.primus.send``) to every process's
        ``on_broadcast(name)`` handler, through the same fan-out as service events."""
        self.fanout.publish(BROADCAST_PREFIX + name, event, jsonable(data))

    def _deliver(self, path: str, event: str, data: Any) -> None:
        if path.startswith(BROADCAST_PREFIX):
            handler = self._broadcast_handlers.get(path)
            if handler is not None:
                handler(event, data)
            return
        if has_app_context():
            self.dispatcher.dispatch(path, event, data)
        else:  # the message queue's subscriber thread: publishers see current_app too
            with self.app_context():
                self.dispatcher.dispatch(path, event, data)

    def close(self) -> None:
        """Close this app's socket connections (close frame 1001, going away: clients reconnect
        elsewhere; at most ``transport.hub.SHUTDOWN_GRACE`` seconds), then stop the message
        queue subscriber and the filter workers."""
        from .transport import hub
        if hub._hub is not None:
            hub._hub.close_all(owner=self)
        self.fanout.close()
        self.dispatcher.close()

    @property
    def debug(self) -> bool:
        return self.application.debug


class Feathers:
    """The flask_feathers extension.

    ``api = Feathers(app)`` or ``api = Feathers(); api.init_app(app)`` for app factories.

    :param message_queue: a Redis URL shared by several processes; overrides
        ``FEATHERS_MESSAGE_QUEUE``.
    :param write_only: only publish events (workers, cron jobs); overrides
        ``FEATHERS_MESSAGE_QUEUE_WRITE_ONLY``.
    :param channel: the pub/sub channel; overrides ``FEATHERS_MESSAGE_QUEUE_CHANNEL``.
    """

    def __init__(self, app: Optional[Flask] = None, *, message_queue: Optional[str] = None,
                 write_only: Optional[bool] = None, channel: Optional[str] = None) -> None:
        self._queue_options: Dict[str, Any] = {
            FEATHERS_MESSAGE_QUEUE: message_queue,
            FEATHERS_MESSAGE_QUEUE_WRITE_ONLY: write_only,
            FEATHERS_MESSAGE_QUEUE_CHANNEL: channel,
        }
        self._registrations: List[tuple] = []
        self._providers: List[Provider] = []
        # Weak: an app that is gone takes its state with it (app.extensions holds the state).
        self._state_refs: List['weakref.ref[FeathersState]'] = []
        self._app_publishers: List[tuple] = []
        self._app_hooks: List[tuple] = []
        #: (path, spec, kinds) of service hooks on services registered for every app
        self._service_hooks: List[tuple] = []
        self._connection_listeners: List[tuple] = []
        #: 'login' / 'logout' -> listeners (see emit())
        self._app_listeners: Dict[str, List[Callable[..., Any]]] = {}
        # Services registered before init_app live here; the first app adopts it.
        self._pending = self._new_application()
        if app is not None:
            self.init_app(app)

    # -- set-up ---------------------------------------------------------------------------------
    def init_app(self, app: Flask) -> None:
        """Attach to ``app``: configuration defaults, per-app state, the providers configured."""
        if not isinstance(app, Flask):
            raise TypeError(f'init_app() needs a Flask application, got {type(app).__name__}')
        existing = app.extensions.get('feathers')
        if existing is not None:
            if existing.api is self:
                return
            raise RuntimeError('this Flask app already has a Feathers extension; use that one '
                               '(app.extensions["feathers"].api)')
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        if self._pending is not None:
            application, self._pending = self._pending, None
        else:
            application = self._new_application()
            for path, service, methods, events in self._registrations:
                application.use(path, service, methods, events)
            for event, fn in self._app_publishers:
                application.publish(event, fn)
            for spec, kinds in self._app_hooks:
                application.hook_store.register(spec, **kinds)
            for path, spec, kinds in self._service_hooks:
                wrapped = application.lookup(path)
                if wrapped is not None:
                    wrapped._hooks.register(spec, **kinds)
        application.callback_timeout = float(app.config[FEATHERS_CALLBACK_TIMEOUT])
        debug = app.config[FEATHERS_DEBUG]
        application.debug = bool(app.debug if debug is None else debug)
        state = FeathersState(self, app, application, self._queue_options)
        app.extensions['feathers'] = state
        self._state_refs.append(weakref.ref(state))
        for event, fn in self._connection_listeners:
            state.connections.on(event, fn)
        for provider in self._providers:
            provider.attach(self, state)

    def _new_application(self) -> Application:
        application = Application()
        application.owner = self
        return application

    def configure(self, fn: Callable[['Feathers'], Any]) -> 'Feathers':
        """Call ``fn(api)``, as the seed's ``app.configure(fn)``; returns the extension."""
        if not callable(fn):
            raise TypeError(f'configure() takes a function of the extension, got {fn!r}')
        fn(self)
        return self

    def add_provider(self, provider: Provider) -> None:
        """Attach ``provider`` to every app, now and on later ``init_app`` calls."""
        self._providers.append(provider)
        for state in self._states:
            provider.attach(self, state)

    # -- services -------------------------------------------------------------------------------
    def use(self, path: str, service: Any, app: Optional[Flask] = None,
            methods: Optional[Sequence[str]] = None,
            events: Optional[Sequence[str]] = None) -> WrappedService:
        """Register ``service`` at ``path``; returns the wrapper of the current (or given) app.

        ``methods`` lists what clients may call: custom methods (``approve(data, params)``)
        included; standard methods left out answer MethodNotAllowed to clients, internal calls
        still reach them. Default: the standard methods the service has. ``events`` does what
        the service's ``events`` attribute does.

        Without ``app`` the service goes to every app, now and on later ``init_app`` calls (one
        object shared by all). With ``app`` it is registered on that app only, e.g. a service
        holding that app's own database.
        """
        if app is not None:
            return self._state_for(app).application.use(path, service, methods, events)
        wrapped = None
        for application in self._applications():  # a bad service raises here, before recording
            w = application.use(path, service, methods, events)
            wrapped = wrapped or w
        self._registrations.append((path, service, methods, events))
        current = self._current(required=False)
        if current is not None:
            return current.application.service(path)
        return wrapped  # type: ignore[return-value]

    def service(self, path: str) -> WrappedService:
        """The wrapped service at ``path`` for the current app (or the only one, outside a context)."""
        return self._application().service(path)

    @property
    def services(self) -> Dict[str, WrappedService]:
        """Registered services of the current app by path."""
        return dict(self._application().services)

    def setup(self) -> None:
        """Run every service's ``setup(app, path)`` now (otherwise it runs on first use)."""
        for application in self._applications():
            application.ensure_setup()

    # -- channels and publishers (Feathers 5) ---------------------------------------------------
    def channel(self, *names: Any) -> Channel:
        """The channel ``name`` of the current app (created on first use), or a union of several."""
        return self.state.channels.channel(*names)

    @property
    def channels(self) -> List[str]:
        """Names of the current app's channels."""
        return self.state.channels.names

    def _record_service_hooks(self, origin: Application, path: str,
                              spec: Optional[Mapping[str, Any]], kinds: Dict[str, Any]) -> None:
        """Hooks registered on the wrapper of a service that every app has: the other apps'
        wrappers get them too, and so do the apps made later (app factories)."""
        if path not in {strip_path(r[0]) for r in self._registrations}:
            return
        self._service_hooks.append((path, spec, kinds))
        for application in self._applications():
            wrapped = application.lookup(path)
            if application is not origin and wrapped is not None:
                wrapped._hooks.register(spec, **kinds)

    def hooks(self, spec: Optional[Mapping[str, Any]] = None, **kinds: Any) -> 'Feathers':
        """App hooks, around every service's own, on every app (see :mod:`flask_feathers.hooks`):
        ``api.hooks({'before': {'all': [audit]}})`` or ``api.hooks(before={'all': audit})``."""
        applications = self._applications()
        if applications:
            applications[0].hook_store.register(spec, **kinds)  # validates before recording
            for application in applications[1:]:
                application.hook_store.register(spec, **kinds)
        self._app_hooks.append((spec, kinds))
        return self

    def publish(self, event: Any = None, fn: Optional[Callable[..., Any]] = None) -> Any:
        """App publisher: ``api.publish(fn)`` for every event, ``api.publish('created', fn)``.

        ``fn(data, context)`` returns a channel, a list of channels or None; usable as a decorator.
        Service publishers (``api.service('todos').publish(...)``) take precedence.
        """
        if fn is None and not callable(event):
            return lambda f: (self.publish(event, f), f)[1]
        self._app_publishers.append((event, fn))
        for application in self._applications():
            application.publish(event, fn)
        return fn if fn is not None else event

    def on(self, event: str, fn: Optional[Callable[..., Any]] = None) -> Any:
        """Listen to an app event; usable as a decorator.

        - ``'connection'`` / ``'disconnect'``: every socket connection of both transports, as the
          :class:`~flask_feathers.connections.Connection` whose ``params`` the authorization hook
          filled. A leaving connection leaves every channel by itself.
        - ``'login'`` / ``'logout'``: a client signed in or out through the authentication
          service, as ``fn(result, params, context)`` (Feathers 5's app events), e.g. to move
          ``params['connection']`` between channels. A listener may take fewer arguments.
        """
        if fn is None:
            return lambda f: (self.on(event, f), f)[1]
        if event in APP_EVENTS:
            self._app_listeners.setdefault(event, []).append(fn)
            return fn
        if event not in ('connection', 'disconnect'):
            raise ValueError(f"api.on() takes 'connection', 'disconnect', 'login' or 'logout', "
                             f"not {event!r}; service events are api.service(path).on(event, fn)")
        self._connection_listeners.append((event, fn))
        for state in self._states:
            state.connections.on(event, fn)
        return fn

    def emit(self, event: str, *args: Any) -> None:
        """Run the ``'login'`` / ``'logout'`` listeners with ``args`` (a listener that raises is
        logged; the others still run)."""
        if event not in APP_EVENTS:
            raise ValueError(f"api.emit() takes 'login' or 'logout', not {event!r}")
        for fn in list(self._app_listeners.get(event, ())):
            try:
                fn(*args[:_positional_count(fn, len(args))])
            except Exception:
                log.exception('%r listener %r raised', event, fn)

    # -- providers' objects ---------------------------------------------------------------------
    @property
    def io(self) -> Any:
        """The Flask-SocketIO server of the current app."""
        io = self.state.io
        if io is None:
            raise RuntimeError('Socket.IO is not configured: call '
                               'api.configure(flask_feathers.socketio()) first')
        return io

    @property
    def primus(self) -> Any:
        """The Primus server of the current app."""
        primus = self.state.primus
        if primus is None:
            raise RuntimeError('Primus is not configured: call '
                               'api.configure(flask_feathers.primus()) first')
        return primus

    @property
    def state(self) -> FeathersState:
        """The :class:`FeathersState` of the current app (or of the only one, outside a context)."""
        return self._current(required=True)  # type: ignore[return-value]

    def close(self, app: Optional[Flask] = None) -> None:
        """Close the socket connections and stop background work (message queue subscriber,
        filter workers) of ``app``, or of every app this extension is initialised on."""
        for state in [self._state_for(app)] if app is not None else self._states:
            state.close()

    def run(self, app: Optional[Flask] = None, host: Optional[str] = None,
            port: Optional[int] = None, **kwargs: Any) -> None:
        """Start a server for ``app`` (like the seed's ``app.listen``).

        With Socket.IO configured this is ``socketio.run``; otherwise Werkzeug's threaded server.
        It raises the open-files limit to the hard limit (one descriptor per client), listens
        with a queue of 4,096 (a reconnect storm), and on SIGTERM or Ctrl-C sends every socket a
        close frame (1001, going away: clients reconnect elsewhere) before it returns.
        """
        from .transport import serving
        state = self._state_for(app)
        state.application.ensure_setup()
        app = app or _app_of(state)
        serving.raise_open_files_limit()
        timeout = float(app.config.get(FEATHERS_REQUEST_TIMEOUT) or DEFAULT_REQUEST_TIMEOUT)
        with serving.werkzeug_listen_queue(), serving.pooled_werkzeug_requests(timeout), \
                serving.one_startup_line(), serving.stop_on_sigterm(state.close):
            self._serve(state, app, host, port, kwargs)

    @staticmethod
    def _serve(state: FeathersState, app: Flask, host: Optional[str], port: Optional[int],
               kwargs: Dict[str, Any]) -> None:
        if state.io is not None:
            # Like the seed's app.listen(): start serving. Flask-SocketIO refuses Werkzeug outside
            # debug mode unless told; the start-up banner says once that it is a development
            # server instead (serving.one_startup_line).
            kwargs.setdefault('allow_unsafe_werkzeug', True)
            state.io.run(app, host=host, port=port, **kwargs)
        else:
            # Options Flask-SocketIO users pass out of habit mean nothing to Werkzeug alone.
            kwargs.pop('allow_unsafe_werkzeug', None)
            if not kwargs.pop('log_output', True):
                logging.getLogger('werkzeug').setLevel(logging.WARNING)
            kwargs.setdefault('threaded', True)
            app.run(host=host, port=port, **kwargs)

    # -- internals ------------------------------------------------------------------------------
    @property
    def _states(self) -> List[FeathersState]:
        states = [ref() for ref in self._state_refs]
        live = [state for state in states if state is not None]
        if len(live) != len(states):
            self._state_refs = [ref for ref in self._state_refs if ref() is not None]
        return live

    def _applications(self) -> List[Application]:
        apps = [state.application for state in self._states]
        if self._pending is not None:
            apps.append(self._pending)
        return apps

    def _application(self) -> Application:
        if self._pending is not None:  # not initialised on an app yet
            return self._pending
        return self._current(required=True).application  # type: ignore[union-attr]

    def _current(self, required: bool) -> Optional[FeathersState]:
        if has_app_context():
            state = current_app.extensions.get('feathers')
            if state is not None and state.api is self:
                return state
        states = self._states
        if len(states) == 1:
            return states[0]
        if states and required:
            raise RuntimeError(f'this extension serves {len(states)} apps: use it inside '
                               f'`with app.app_context():` (or a request) so it knows which one')
        if required:
            raise RuntimeError('the Feathers extension is not initialised on an app yet: call '
                               'Feathers(app) or api.init_app(app) first')
        return None

    def _state_for(self, app: Optional[Flask]) -> FeathersState:
        if app is None:
            return self.state
        state = app.extensions.get('feathers')
        if state is None or state.api is not self:
            raise RuntimeError('this app is not initialised with this Feathers extension: call '
                               'api.init_app(app) first')
        return state


def _app_of(state: FeathersState) -> Flask:
    app = state.app
    if app is None:
        raise RuntimeError('pass the Flask app: api.run(app, ...)')
    return app


def state_of(app: Flask) -> FeathersState:
    """The flask_feathers state of ``app``, with a helpful error when there is none."""
    state = app.extensions.get('feathers')
    if state is None:
        raise RuntimeError('flask_feathers is not initialised on this app: call Feathers(app) or '
                           'api.init_app(app) first')
    return state
