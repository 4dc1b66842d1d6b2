"""The Flask extension: ``Feathers(app=None)`` / ``init_app``; nothing stores ``self.app``.

Per-app state is a :class:`~flask_feathers.state.FeathersState` in ``app.extensions["feathers"]``.
What the extension is told to set up is kept in one list of deferred set-up calls (as Flask's
``Blueprint.record``), replayed on every app. The ``FEATHERS_*`` keys live in :mod:`.config`.
"""
from __future__ import annotations

import inspect
import logging
import weakref
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, Literal, Mapping, NamedTuple,
                    Optional, Sequence, Set, overload)

from flask import Flask, current_app, has_app_context

from .application import Application, strip_path
from .channels import Channel
from .config import *  # noqa: F401,F403  (the FEATHERS_* keys' old import path)
from .config import (DEFAULT_REQUEST_TIMEOUT, DEFAULTS, FEATHERS_CALLBACK_TIMEOUT, FEATHERS_DEBUG,
                     FEATHERS_MESSAGE_QUEUE, FEATHERS_MESSAGE_QUEUE_CHANNEL,
                     FEATHERS_MESSAGE_QUEUE_WRITE_ONLY, FEATHERS_REQUEST_TIMEOUT)
from .connections import Connection
from .state import FeathersState as FeathersState, Provider, state_of as state_of  # old path
from .wrapped import WrappedService

if TYPE_CHECKING:
    from .providers.primus import PrimusServer
    from .providers.socketio import FeathersSocketIO

try:  # the app context's own variable (Flask 2.2+): the proxies cost a connect several lookups
    from flask.globals import _cv_app
except ImportError:  # pragma: no cover - another Flask
    _cv_app = None  # type: ignore[assignment]


def _context_app() -> Optional[Flask]:
    """The app of the current application context, or None outside one."""
    if _cv_app is not None:
        ctx = _cv_app.get(None)
        return getattr(ctx, 'app', None) if ctx is not None else None
    return current_app._get_current_object() if has_app_context() else None


log = logging.getLogger(__name__)


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


class _Deferred(NamedTuple):
    """One set-up call made on the extension, replayed on every app (``Blueprint.record``).

    ``application`` shapes an app's :class:`Application` (services, publishers, hooks): it runs
    on the services registered before ``init_app`` too, which the first app adopts as they are.
    ``state`` needs the app's :class:`FeathersState` (connection listeners, providers).
    """

    application: Optional[Callable[[Application], Any]] = None
    state: Optional[Callable[[FeathersState], Any]] = None


class Feathers:
    """The flask_feathers extension.

    ``api = Feathers(app)`` or ``api = Feathers(); api.init_app(app)`` for app factories.

    :param message_queue: a Redis URL shared by several processes; overrides
        ``FEATHERS_MESSAGE_QUEUE``.
    :param write_only: only send events (workers, cron jobs); overrides
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
        #: every set-up call to replay on the next app, in the order they were made
        self._deferred: List[_Deferred] = []
        #: paths of the services registered for every app (their wrappers' hooks are recorded)
        self._shared_paths: Set[str] = set()
        # Weak: an app that is gone takes its state with it (app.extensions holds the state).
        self._state_refs: List['weakref.ref[FeathersState]'] = []
        #: an app was initialised once: a missing state then means that app is gone
        self._had_app = False
        #: 'login' / 'logout' -> listeners (see emit())
        self._app_listeners: Dict[str, List[Callable[..., Any]]] = {}
        # Services registered before init_app live here; the first app adopts it.
        self._pending: Optional[Application] = self._new_application()
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
        adopted = self._pending is not None  # already holds what shapes an Application
        application, self._pending = self._pending or self._new_application(), None
        if not adopted:
            for deferred in self._deferred:
                if deferred.application is not None:
                    deferred.application(application)
        application.callback_timeout = float(app.config[FEATHERS_CALLBACK_TIMEOUT])
        debug = app.config[FEATHERS_DEBUG]
        application.debug = bool(app.debug if debug is None else debug)
        state = FeathersState(self, app, application, self._queue_options)
        app.extensions['feathers'] = state
        self._state_refs.append(weakref.ref(state))
        self._had_app = True
        for deferred in self._deferred:
            if deferred.state is not None:
                deferred.state(state)

    def _record(self, deferred: _Deferred, skip: Optional[Application] = None) -> None:
        """Run ``deferred`` on every app now (and on the services registered before
        ``init_app``), then keep it for the apps initialised later. Raising here (a bad
        argument, found on the first app) records nothing."""
        if deferred.application is not None:
            for application in self._applications():
                if application is not skip:
                    deferred.application(application)
        if deferred.state is not None:
            for state in self._states:
                deferred.state(state)
        self._deferred.append(deferred)

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
        self._record(_Deferred(state=lambda state: provider.attach(self, state)))

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
        # A bad service raises on the first app, before anything is recorded.
        self._record(_Deferred(application=lambda application: application.use(
            path, service, methods, events)))
        self._shared_paths.add(strip_path(path))
        current = self._current(required=False)
        if current is not None:
            return current.application.service(path)
        applications = self._applications()
        if applications:
            return applications[0].service(path)
        # Every app is gone: the service waits for the next init_app; this wrapper serves none.
        return Application().use(path, service, methods, events)

    def service(self, path: str) -> WrappedService:
        """The wrapped service at ``path`` for the current app (or the only one, outside a
        context)."""
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
        if path not in self._shared_paths:
            return

        def register(application: Application) -> None:
            wrapped = application.lookup(path)
            if wrapped is not None:
                wrapped._hooks.register(spec, **kinds)
        self._record(_Deferred(application=register), skip=origin)

    def hooks(self, spec: Optional[Mapping[str, Any]] = None, **kinds: Any) -> 'Feathers':
        """App hooks, around every service's own, on every app (see :mod:`flask_feathers.hooks`):
        ``api.hooks({'before': {'all': [audit]}})`` or ``api.hooks(before={'all': audit})``."""
        self._record(_Deferred(application=lambda application: application.hook_store.register(
            spec, **kinds)))
        return self

    def publish(self, event: Any = None, fn: Optional[Callable[..., Any]] = None) -> Any:
        """App publisher: ``api.publish(fn)`` for every event, ``api.publish('created', fn)``.

        ``fn(data, context)`` returns a channel, a list of channels or None; usable as a decorator.
        Service publishers (``api.service('todos').publish(...)``) take precedence.
        """
        if fn is None and not callable(event):
            return lambda f: (self.publish(event, f), f)[1]
        self._record(_Deferred(application=lambda application: application.publish(event, fn)))
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
        listener = fn
        self._record(_Deferred(state=lambda state: state.connections.on(event, listener)))
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
    def io(self) -> 'FeathersSocketIO':
        """The Flask-SocketIO server of the current app."""
        io = self.state.io
        if io is None:
            raise RuntimeError('Socket.IO is not configured: call '
                               'api.configure(flask_feathers.socketio()) first')
        return io

    @property
    def primus(self) -> 'PrimusServer':
        """The Primus server of the current app."""
        primus = self.state.primus
        if primus is None:
            raise RuntimeError('Primus is not configured: call '
                               'api.configure(flask_feathers.primus()) first')
        return primus

    @property
    def state(self) -> FeathersState:
        """The :class:`FeathersState` of the current app (or of the only one, outside a context)."""
        return self._current(required=True)

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
        with a queue of 4,096 (a reconnect storm), runs CPython's full garbage collections ten
        times less often (``serving.defer_full_collections``), and on SIGTERM or Ctrl-C sends
        every socket a close frame (1001, going away: clients reconnect elsewhere) before it
        returns.
        """
        from .transport import serving
        state = self._state_for(app)
        state.application.ensure_setup()
        app = app or _app_of(state)
        serving.raise_open_files_limit()
        timeout = float(app.config.get(FEATHERS_REQUEST_TIMEOUT) or DEFAULT_REQUEST_TIMEOUT)
        with serving.werkzeug_listen_queue(), serving.pooled_werkzeug_requests(timeout), \
                serving.one_startup_line(), serving.defer_full_collections(), \
                serving.stop_on_sigterm(state.close):
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
        return self._current(required=True).application

    @overload
    def _current(self, required: Literal[True]) -> FeathersState: ...

    @overload
    def _current(self, required: bool) -> Optional[FeathersState]: ...

    def _current(self, required: bool) -> Optional[FeathersState]:
        app = _context_app()
        if app is not None:
            state = app.extensions.get('feathers')
            if isinstance(state, FeathersState) and state.api is self:
                return state
        states = self._states
        if len(states) == 1:
            return states[0]
        if states and required:
            raise RuntimeError(f'this extension serves {len(states)} apps: use it inside '
                               f'`with app.app_context():` (or a request) so it knows which one')
        if required and self._had_app:
            raise RuntimeError('the Flask app this extension was initialised on is gone: the '
                               'extension holds its apps weakly (app factories make many), so '
                               'keep a reference to the app while you use the extension')
        if required:
            raise RuntimeError('the Feathers extension is not initialised on an app yet: call '
                               'Feathers(app) or api.init_app(app) first')
        return None

    def _state_for(self, app: Optional[Flask]) -> FeathersState:
        if app is None:
            return self.state
        state = app.extensions.get('feathers')
        if not isinstance(state, FeathersState) or state.api is not self:
            raise RuntimeError('this app is not initialised with this Feathers extension: call '
                               'api.init_app(app) first')
        return state


def _app_of(state: FeathersState) -> Flask:
    app = state.app
    if app is None:
        raise RuntimeError('pass the Flask app: api.run(app, ...)')
    return app
