"""One router for every message that leaves a service or a provider for the clients.

Two kinds of message travel the same way, told apart by :class:`MessageKind`, never by their
names:

* a **service event** (``todos`` ``created`` ``{...}``): sent by the application after a
  service's hook chain, delivered to this process's :class:`~flask_feathers.dispatch.Dispatcher`,
  which runs publishers and filters for each connection;
* a **provider broadcast** (``primus`` ``send`` ``{...}``): a provider's own message to all its
  clients (``api.primus.send``), handed to the handler that provider registered.

The path of both: :meth:`Router.send_event` / :meth:`Router.broadcast` (the producing thread)
-> the fan-out (:mod:`flask_feathers.fanout`: this process only, or a pub/sub backend shared by
several processes) -> :meth:`Router.receive` in every process (the producing thread without a
backend, the backend's subscriber thread with one) -> the dispatcher or the provider's handler.

The router knows no Flask: ``context()`` (given by the extension) is what a service event is
delivered in, so that publishers see the app on the subscriber thread too.
"""
from __future__ import annotations

import contextlib
import enum
import logging
from typing import (TYPE_CHECKING, Any, Callable, ContextManager, Dict, NamedTuple, Optional)

from .encoding import jsonable

if TYPE_CHECKING:
    from .fanout import Fanout

log = logging.getLogger(__name__)

#: ``dispatch(path, event, data)``: hand a service event to this process's dispatcher.
Dispatch = Callable[[str, str, Any], None]
#: ``handler(event, data)``: a provider's receiver of its own broadcasts.
BroadcastHandler = Callable[[str, Any], None]


class MessageKind(enum.Enum):
    """What a :class:`Message` carries, and so where :meth:`Router.receive` hands it."""

    #: a service event: ``target`` is the service path; it goes to the dispatcher
    SERVICE_EVENT = 'event'
    #: a provider's own broadcast: ``target`` is the provider name; it goes to its handler
    BROADCAST = 'broadcast'


class Message(NamedTuple):
    """One message on its way to the clients of every process."""

    kind: MessageKind
    #: the service path (service events) or the provider name (broadcasts)
    target: str
    event: str
    #: JSON-ready data (the router made it so, once, before the fan-out)
    data: Any

    @classmethod
    def service_event(cls, path: str, event: str, data: Any) -> 'Message':
        return cls(MessageKind.SERVICE_EVENT, path, event, data)

    @classmethod
    def broadcast(cls, provider: str, event: str, data: Any) -> 'Message':
        return cls(MessageKind.BROADCAST, provider, event, data)


class Router:
    """Routes service events and provider broadcasts through one fan-out.

    :param dispatch: ``dispatch(path, event, data)``, the local dispatcher.
    :param make_fanout: ``make_fanout(receive)`` -> the fan-out that hands every message to
        ``receive`` in every process (see :mod:`flask_feathers.fanout`).
    :param context: ``context()`` -> the context manager a service event is dispatched in.
    """

    def __init__(self, dispatch: Dispatch, make_fanout: Callable[[Callable[[Message], None]],
                                                                 'Fanout'],
                 context: Optional[Callable[[], ContextManager[Any]]] = None) -> None:
        self._dispatch = dispatch
        self._context = context or contextlib.nullcontext
        #: provider name -> its broadcast handler (registered once per provider and app)
        self._handlers: Dict[str, BroadcastHandler] = {}
        self.fanout = make_fanout(self.receive)

    # -- sending (the producing thread) ---------------------------------------------------------
    def send_event(self, path: str, event: str, data: Any) -> None:
        """Send one service event to the clients of every process (the application's event
        sink). Data that cannot be JSON is logged and dropped."""
        try:
            # Once per event, before the fan-out: every transport and process gets the same JSON.
            data = jsonable(data)
        except (TypeError, ValueError, RecursionError) as exc:
            log.error('%s %s event dropped: its data cannot be sent as JSON (%s)', path, event, exc)
            return
        self.fanout.send(Message.service_event(path, event, data))

    def broadcast(self, provider: str, event: str, data: Any) -> None:
        """Send a provider's own message to its :meth:`on_broadcast` handler in every process."""
        self.fanout.send(Message.broadcast(provider, event, jsonable(data)))

    def on_broadcast(self, provider: str, handler: BroadcastHandler) -> None:
        """Let ``provider`` receive its :meth:`broadcast` messages as ``handler(event, data)``."""
        self._handlers[provider] = handler

    # -- receiving (the producing thread, or a backend's subscriber thread) ----------------------
    def receive(self, message: Message) -> None:
        """Hand one message to where its kind goes in this process."""
        if message.kind is MessageKind.BROADCAST:
            handler = self._handlers.get(message.target)
            if handler is not None:
                handler(message.event, message.data)
            return
        with self._context():
            self._dispatch(message.target, message.event, message.data)

    def close(self) -> None:
        """Stop the fan-out (a backend's subscriber thread); later messages stay local."""
        self.fanout.close()
