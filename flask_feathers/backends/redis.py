"""Redis pub/sub as a :class:`~flask_feathers.backends.Backend`: one channel, publish and listen.

redis-py is imported when a :class:`RedisBackend` is created; it comes with the ``redis`` extra.
Neither client retries by itself: a failed command is an outage, which
:class:`~flask_feathers.backends.pubsub.PubSubFanout` handles (local delivery, one log line,
reconnects with a capped backoff).
"""
from __future__ import annotations

from typing import Any, Iterator, Tuple, Type, Union
from urllib.parse import urlsplit, urlunsplit

from . import Listening

#: Seconds a connect or a publish to Redis may take before it counts as failed.
DEFAULT_TIMEOUT = 1.0
#: How long one wait for a message lasts, so that the subscriber sees its stop flag.
POLL_INTERVAL = 0.25

INSTALL_HINT = 'pip install "flask-feathers[redis]" (from a checkout: pip install ".[redis]")'


def _import_redis() -> Tuple[Any, Any]:
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


class RedisBackend:
    """One Redis pub/sub channel.

    :param url: a redis-py URL (``redis://host:6379/0``, ``rediss://...``, ``unix://...``).
    :param channel: the pub/sub channel; every process of one deployment uses the same one.
    :param listening: whether :meth:`listen` will be used (a second connection, for reads).
    :param timeout: seconds a connect or a publish may take.
    """

    name = 'redis'

    def __init__(self, url: str, channel: str, listening: bool = True,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        redis, no_retry = _import_redis()
        self.errors: Tuple[Type[BaseException], ...] = (redis.RedisError, OSError)
        self.url = url
        self.channel = channel
        try:
            self._client = redis.Redis.from_url(url, socket_connect_timeout=timeout,
                                                socket_timeout=timeout, retry=no_retry)
        except ValueError as exc:
            raise ValueError(f'FEATHERS_MESSAGE_QUEUE is not a valid Redis URL: {exc}') from None
        self._sub_client: Any = None
        if listening:
            # No socket timeout on the subscriber: it blocks in reads by design.
            self._sub_client = redis.Redis.from_url(url, socket_connect_timeout=timeout,
                                                    socket_keepalive=True, retry=no_retry)

    @property
    def label(self) -> str:
        return f'Redis message queue {redact(self.url)}'

    def send(self, payload: str) -> None:
        self._client.publish(self.channel, payload)

    def listen(self) -> Iterator[Union[str, bytes, Listening]]:
        if self._sub_client is None:
            raise RuntimeError('this Redis backend was made without listening=True')
        pubsub = self._sub_client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            while True:
                message = pubsub.get_message(timeout=POLL_INTERVAL)
                if message is None:
                    yield Listening.IDLE
                elif message.get('type') == 'subscribe':
                    yield Listening.SUBSCRIBED
                elif message.get('type') == 'message':
                    yield message['data']
        finally:
            try:
                pubsub.close()
            except Exception:  # closing a broken connection may fail again
                pass

    def close(self) -> None:
        self._client.close()
        if self._sub_client is not None:
            self._sub_client.close()
