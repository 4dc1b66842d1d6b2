"""Where the router's messages go: to this process only, or to every process.

The contract (:class:`Fanout`): a fan-out receives every message of this process through
:meth:`~Fanout.send` and makes sure that every process serving clients (this one included)
hands it exactly once to its own router's ``receive``. :class:`LocalFanout` is the single-process
case; :class:`flask_feathers.backends.pubsub.PubSubFanout` shares messages over a pub/sub
:class:`~flask_feathers.backends.Backend` (Redis: :mod:`flask_feathers.fanout_redis`).
"""
from __future__ import annotations

from typing import Callable, Protocol

from .router import Message

#: ``receive(message)``: hand a message to this process's router.
Receive = Callable[[Message], None]


class Fanout(Protocol):
    """What the router sends its messages through."""

    def send(self, message: Message) -> None:
        """Hand ``message`` to every process's router once (never raises for a lost backend)."""

    def close(self) -> None:
        """Stop background work; later messages reach this process only (idempotent)."""


class LocalFanout:
    """Single process: every message is received right away, in the sending thread."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive

    def send(self, message: Message) -> None:
        self.receive(message)

    def close(self) -> None:
        pass
