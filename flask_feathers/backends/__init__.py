"""Cross-process fan-out: the contract a pub/sub backend implements, and the backends.

A backend only moves opaque payloads: :meth:`Backend.send` puts one on the channel and
:meth:`Backend.listen` yields what arrives on it. Everything else lives once, in
:class:`~flask_feathers.backends.pubsub.PubSubFanout`: the wire format of the router's messages,
recognising this process's own messages, delivering locally while the backend is unreachable,
logging each outage once, and reconnecting with a capped backoff (python-socketio's
``pubsub_manager`` draws the same line).

Backends: :mod:`flask_feathers.backends.redis` (Redis pub/sub, the ``redis`` extra).
"""
from __future__ import annotations

import enum
from typing import Iterator, Protocol, Tuple, Type, Union


class Listening(enum.Enum):
    """What :meth:`Backend.listen` yields besides payloads."""

    #: the subscription is confirmed: from now on every payload of the channel arrives
    SUBSCRIBED = 'subscribed'
    #: nothing arrived for a poll interval (the listener may stop here)
    IDLE = 'idle'


class Backend(Protocol):
    """One pub/sub channel shared by every process of a deployment."""

    #: the channel's name (also names the subscriber thread)
    channel: str
    #: short name of the backend, e.g. ``'redis'`` (names the subscriber thread)
    name: str
    #: the exceptions that mean the backend is unreachable (an outage, not a bug)
    errors: Tuple[Type[BaseException], ...]

    @property
    def label(self) -> str:
        """How log lines name the backend (no secrets), e.g. ``Redis message queue redis://h``."""

    def send(self, payload: str) -> None:
        """Put ``payload`` on the channel.

        :raises: one of :attr:`errors` when the backend cannot take it now.
        """

    def listen(self) -> Iterator[Union[str, bytes, Listening]]:
        """Subscribe, then yield :attr:`Listening.SUBSCRIBED` once the subscription holds, each
        payload in the order the channel delivers them, and :attr:`Listening.IDLE` while it is
        quiet; closing the iterator unsubscribes.

        :raises: one of :attr:`errors` when the connection is lost (the caller listens again).
        """

    def close(self) -> None:
        """Close the backend's connections."""
