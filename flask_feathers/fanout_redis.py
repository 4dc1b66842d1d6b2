"""Service events shared by several processes over Redis pub/sub (docs/protocol.rst, "Several processes").

:class:`RedisFanout` implements the fan-out contract of :mod:`flask_feathers.fanout`. Every service
event is published as one JSON message ``{"event", "path", "data"}`` (plus ``origin`` and ``seq``, which
let a process recognise its own messages) on one channel. One subscriber thread per app receives
every message of the channel, this process's own included, and hands each to the local dispatcher
exactly once, in the order Redis delivered them: every process sees the events of all producers in
the same order, so clients of different processes converge on the same state.

While Redis is unreachable, service calls keep working and this process's clients keep getting
this process's events, delivered directly; the outage is logged once and the subscriber reconnects
by itself with a capped backoff. Redis pub/sub keeps nothing: events published while a process is
cut off never reach that process's clients, and events produced there never reach the others.

In writer-only mode (workers, cron jobs) events are only published: no subscriber thread, no local
delivery.

redis-py is imported when a :class:`RedisFanout` is created; it comes with the ``redis`` extra.
"""
from __future__ import annotations

import collections
import json
import logging
import threading
import time
import uuid
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from .fanout import Deliver

log = logging.getLogger(__name__)

#: The pub/sub channel service events travel on unless configured otherwise.
DEFAULT_CHANNEL = 'flask-feathers'
#: Seconds a connect or a publish to Redis may take before it counts as failed.
DEFAULT_TIMEOUT = 1.0
#: The subscriber's reconnect delay starts here and doubles up to ``max_backoff``.
INITIAL_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 2.0
#: While Redis is down, a publish tries Redis at most this often; the others go local at once.
PUBLISH_RETRY_INTERVAL = 0.25
#: How often the subscriber thread looks at its stop flag while the channel is quiet.
POLL_INTERVAL = 0.25
#: Own messages delivered locally and maybe also on their way back through Redis (bounded).
MAX_SKIPPED = 10_000

INSTALL_HINT = 'pip install "flask-feathers[redis]" (from a checkout: pip install ".[redis]")'


def _import_redis() -> Any:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:
        raise RuntimeError(f'FEATHERS_MESSAGE_QUEUE needs redis-py: {INSTALL_HINT}') from exc
    return redis, Retry(NoBackoff(), 0)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for log messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return '<unparsable URL>'
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition('@')
    user = parts.username or ''
    return urlunsplit(parts._replace(netloc=f'{user}:***@{netloc[2]}'))


class RedisFanout:
    """Publishes service events on a Redis channel and delivers the channel's events locally.

    :param url: a redis-py URL (``redis://host:6379/0``, ``rediss://...``, ``unix://...``).
    :param deliver: ``deliver(path, event, data)``, usually ``Dispatcher.dispatch``.
    :param channel: the pub/sub channel; every process of one deployment uses the same one.
    :param write_only: publish only (no subscriber thread, no local delivery).
    :param timeout: seconds a connect or a publish may take.
    :param max_backoff: longest delay between two reconnect attempts of the subscriber.
    """

    def __init__(self, url: str, deliver: Deliver, channel: str = DEFAULT_CHANNEL,
                 write_only: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 max_backoff: float = DEFAULT_MAX_BACKOFF) -> None:
        if not isinstance(url, str) or not url:
            raise TypeError(f'FEATHERS_MESSAGE_QUEUE must be a Redis URL string, got {url!r}')
        if not isinstance(channel, str) or not channel:
            raise TypeError(f'the message queue channel must be a non-empty string, got '
                            f'{channel!r}')
        redis, no_retry = _import_redis()
        self._errors = (redis.RedisError, OSError)
        self.url = url
        self.channel = channel
        self.write_only = write_only
        self.deliver = deliver
        self.max_backoff = max_backoff
        #: identifies this fan-out's own messages when they come back from Redis
        self.origin = uuid.uuid4().hex
        try:
            self._client = redis.Redis.from_url(url, socket_connect_timeout=timeout,
                                                socket_timeout=timeout, retry=no_retry)
        except ValueError as exc:
            raise ValueError(f'FEATHERS_MESSAGE_QUEUE is not a valid Redis URL: {exc}') from None
        self._seq = 0
        # Held around numbering and publishing, so that this process's messages reach Redis in
        # ``seq`` order; the subscriber relies on that to forget skip marks (see _receive).
        self._publish_lock = threading.Lock()
        self._skip: 'collections.OrderedDict[int, None]' = collections.OrderedDict()
        self._skip_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._outage = False
        self._retry_at = 0.0
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._sub_client: Any = None
        if not write_only:
            # No socket timeout on the subscriber: it blocks in reads by design.
            self._sub_client = redis.Redis.from_url(url, socket_connect_timeout=timeout,
                                                    socket_keepalive=True, retry=no_retry)
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f'feathers-redis-{channel}')
            self._thread.start()

    def __repr__(self) -> str:
        mode = 'write-only' if self.write_only else 'read-write'
        return f'<RedisFanout {redact(self.url)} channel={self.channel!r} {mode}>'

    # -- the fan-out contract -------------------------------------------------------------------
    def publish(self, path: str, event: str, data: Any) -> None:
        """Publish one service event; deliver it locally instead when Redis cannot carry it."""
        local = False
        if self._closed:
            local = True
        else:
            with self._publish_lock:
                self._seq += 1
                seq = self._seq
                try:
                    payload = json.dumps({'event': event, 'path': path, 'data': data,
                                          'origin': self.origin, 'seq': seq},
                                         separators=(',', ':'))
                except (TypeError, ValueError, RecursionError) as exc:
                    log.error('service event %r %r is not JSON serialisable (%s); it reaches '
                              "this process's clients only", path, event, exc)
                    local = True
                else:
                    if not self.write_only and not self._subscribed.is_set():
                        # Our subscriber would miss it: deliver directly, skip it if it comes back.
                        self._mark(seq)
                        local = True
                    if not self._send(payload) and not local:
                        self._mark(seq)
                        local = True
        if local and not self.write_only:
            self.deliver(path, event, data)

    def close(self) -> None:
        """Stop the subscriber thread and close the connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._client.close()
        if self._sub_client is not None:
            self._sub_client.close()

    # -- extras ---------------------------------------------------------------------------------
    @property
    def subscribed(self) -> bool:
        """Whether the subscriber is currently subscribed to the channel."""
        return self._subscribed.is_set()

    def wait_subscribed(self, timeout: Optional[float] = None) -> bool:
        """Wait until the subscriber is subscribed (events from other processes arrive)."""
        if self.write_only:
            raise RuntimeError('a write-only message queue has no subscriber')
        return self._subscribed.wait(timeout)

    # -- publishing -----------------------------------------------------------------------------
    def _send(self, payload: str) -> bool:
        if self._outage and time.monotonic() < self._retry_at:
            return False
        try:
            self._client.publish(self.channel, payload)
        except self._errors as exc:
            self._retry_at = time.monotonic() + PUBLISH_RETRY_INTERVAL
            self._went_down(exc)
            return False
        if self._outage and (self.write_only or self._subscribed.is_set()):
            self._came_back()
        return True

    def _mark(self, seq: int) -> None:
        with self._skip_lock:
            self._skip[seq] = None
            while len(self._skip) > MAX_SKIPPED:
                self._skip.popitem(last=False)

    # -- outage bookkeeping: one error per outage, one message when it is over -------------------
    def _went_down(self, exc: BaseException) -> None:
        with self._state_lock:
            if self._outage:
                return
            self._outage = True
        log.error("Redis message queue %s is unreachable (%s: %s); service events reach this "
                  "process's clients only until it returns (reconnecting in the background)",
                  redact(self.url), type(exc).__name__, exc)

    def _came_back(self) -> None:
        with self._state_lock:
            if not self._outage:
                return
            self._outage = False
            self._retry_at = 0.0
        log.warning('Redis message queue %s is back; service events are shared with the other '
                    'processes again (events produced during the outage were not)',
                    redact(self.url))

    # -- the subscriber thread ------------------------------------------------------------------
    def _run(self) -> None:
        backoff = INITIAL_BACKOFF
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._sub_client.pubsub()
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=POLL_INTERVAL)
                    if message is None:
                        continue
                    kind = message.get('type')
                    if kind == 'subscribe':
                        self._subscribed.set()
                        backoff = INITIAL_BACKOFF
                        self._came_back()
                    elif kind == 'message':
                        self._receive(message['data'])
            except self._errors as exc:
                self._subscribed.clear()
                if not self._stop.is_set():
                    self._went_down(exc)
            except Exception:  # never let the thread die: the process would go deaf for good
                self._subscribed.clear()
                log.exception('the Redis subscriber failed unexpectedly; reconnecting')
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # closing a broken connection may fail again
                        pass
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)
        self._subscribed.clear()

    def _receive(self, raw: Any) -> None:
        try:
            message = json.loads(raw)
            path, event, data = message['path'], message['event'], message['data']
            if not isinstance(path, str) or not isinstance(event, str):
                raise ValueError('path and event must be strings')
        except (ValueError, TypeError, KeyError) as exc:
            log.warning('ignoring a malformed message on channel %r (%s): %.200r', self.channel,
                        exc, raw)
            return
        seq = message.get('seq')
        if message.get('origin') == self.origin and isinstance(seq, int):
            with self._skip_lock:
                skip = self._skip.pop(seq, 0) is None
                # Own messages reach Redis in seq order: an older mark can never come back now.
                while self._skip and next(iter(self._skip)) < seq:
                    self._skip.popitem(last=False)
            if skip:
                return
        try:
            self.deliver(path, event, data)
        except Exception:
            log.exception('delivering %r %r from the message queue failed', path, event)
