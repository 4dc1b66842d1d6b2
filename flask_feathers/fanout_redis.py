"""Messages shared by several processes over Redis pub/sub (docs/protocol.rst, "Several processes").

:class:`RedisFanout` is the generic :class:`~flask_feathers.backends.pubsub.PubSubFanout` over a
:class:`~flask_feathers.backends.redis.RedisBackend`, made from the ``FEATHERS_MESSAGE_QUEUE*``
settings; both modules say how it works. It logs under this module's name.

redis-py is imported when a :class:`RedisFanout` is created; it comes with the ``redis`` extra.
"""
from __future__ import annotations

import logging

from .backends.pubsub import DEFAULT_MAX_BACKOFF, INITIAL_BACKOFF, MAX_SKIPPED, PubSubFanout
from .backends.redis import DEFAULT_TIMEOUT, INSTALL_HINT, POLL_INTERVAL, RedisBackend, redact
from .fanout import Receive

__all__ = ['DEFAULT_CHANNEL', 'DEFAULT_MAX_BACKOFF', 'DEFAULT_TIMEOUT', 'INITIAL_BACKOFF',
           'INSTALL_HINT', 'MAX_SKIPPED', 'POLL_INTERVAL', 'RedisFanout', 'redact']

log = logging.getLogger(__name__)

#: The pub/sub channel messages travel on unless configured otherwise.
DEFAULT_CHANNEL = 'flask-feathers'


class RedisFanout(PubSubFanout):
    """Sends the router's messages on a Redis channel and receives the channel's messages.

    :param url: a redis-py URL (``redis://host:6379/0``, ``rediss://...``, ``unix://...``).
    :param receive: ``receive(message)``, usually the router's.
    :param channel: the pub/sub channel; every process of one deployment uses the same one.
    :param write_only: send only (no subscriber thread, no local delivery).
    :param timeout: seconds a connect or a publish may take.
    :param max_backoff: longest delay between two reconnect attempts of the subscriber.
    """

    backend: RedisBackend

    def __init__(self, url: str, receive: Receive, channel: str = DEFAULT_CHANNEL,
                 write_only: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 max_backoff: float = DEFAULT_MAX_BACKOFF) -> None:
        if not isinstance(url, str) or not url:
            raise TypeError(f'FEATHERS_MESSAGE_QUEUE must be a Redis URL string, got {url!r}')
        if not isinstance(channel, str) or not channel:
            raise TypeError(f'the message queue channel must be a non-empty string, got '
                            f'{channel!r}')
        backend = RedisBackend(url, channel, listening=not write_only, timeout=timeout)
        super().__init__(backend, receive, write_only=write_only, max_backoff=max_backoff,
                         logger=log)

    @property
    def url(self) -> str:
        return self.backend.url

    def __repr__(self) -> str:
        mode = 'write-only' if self.write_only else 'read-write'
        return f'<RedisFanout {redact(self.url)} channel={self.channel!r} {mode}>'
