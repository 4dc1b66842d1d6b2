"""The ``FEATHERS_*`` configuration keys, each documented once here, and their defaults.

``init_app`` sets every key of :data:`DEFAULTS` that the app's config lacks (``setdefault``);
docs/configuration.rst lists them for users.
"""
from __future__ import annotations

from typing import Any, Dict

from .dispatch import DEFAULT_FILTER_TIMEOUT, DEFAULT_FILTER_WORKERS, DEFAULT_MAX_PENDING
from .service import DEFAULT_CALLBACK_TIMEOUT

__all__ = [
    'FEATHERS_CALLBACK_TIMEOUT', 'FEATHERS_FILTER_WORKERS', 'FEATHERS_FILTER_TIMEOUT',
    'FEATHERS_MAX_PENDING', 'FEATHERS_DEBUG', 'FEATHERS_MESSAGE_QUEUE',
    'FEATHERS_MESSAGE_QUEUE_CHANNEL', 'FEATHERS_MESSAGE_QUEUE_WRITE_ONLY',
    'FEATHERS_CONNECT_RATE', 'FEATHERS_MAX_CONNECTIONS',
    'FEATHERS_MAX_CONNECTIONS_PER_ADDRESS', 'FEATHERS_HANDSHAKE_TIMEOUT',
    'FEATHERS_MAX_BODY', 'DEFAULT_MAX_BODY', 'FEATHERS_REQUEST_TIMEOUT',
    'DEFAULT_REQUEST_TIMEOUT', 'FEATHERS_AUTHENTICATION', 'FEATHERS_LOGIN_RATE',
    'FEATHERS_LOGIN_RATE_PER_ADDRESS', 'DEFAULTS'
]

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
#: When true, only send events (workers, cron jobs): no subscriber, no local delivery.
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
