"""The generic pub/sub fan-out over any :class:`~flask_feathers.backends.Backend`.

Every message of the router is sent as one JSON payload on the backend's channel (the wire format,
docs/protocol.rst "Several processes")::

    {"event": "created", "path": "todos", "data": {...}, "origin": "...", "seq": 7}
    {"kind": "broadcast", "provider": "primus", "path": ":primus", "event": "send", ...}

``origin`` and ``seq`` let a process recognise its own messages; a payload without them (a worker
written in another language) is delivered like any other. One subscriber thread per app receives
every payload of the channel, this process's own included, and hands each to the router exactly
once, in the order the backend delivered them: every process sees the messages of all producers in
the same order, so clients of different processes converge on the same state.

While the backend is unreachable, messages keep reaching this process's clients, delivered
directly; the outage is logged once and the subscriber listens again with a capped backoff.
Pub/sub keeps nothing: messages sent while a process is cut off never reach that process, and
messages produced there never reach the others.

In writer-only mode (workers, cron jobs) messages are only sent: no subscriber thread, no local
delivery.

Threads and locks: any thread may :meth:`PubSubFanout.send`; ``_send_lock`` is held around
numbering and sending, so this process's payloads reach the channel in ``seq`` order (the
subscriber relies on it to forget skip marks). ``_skip_lock`` guards the skip marks and
``_state_lock`` the outage flag; neither is held while another lock is taken.
"""
from __future__ import annotations

import collections
import json
import logging
import threading
import time
import uuid
from typing import Any, Iterator, Optional, Tuple, Union

from ..fanout import Receive
from ..router import Message, MessageKind
from . import Backend, Listening

log = logging.getLogger(__name__)

#: The subscriber's reconnect delay starts here and doubles up to ``max_backoff``.
INITIAL_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 2.0
#: While the backend is down, a send tries it at most this often; the others go local at once.
SEND_RETRY_INTERVAL = 0.25
#: Own messages delivered locally and maybe also on their way back through the channel (bounded).
MAX_SKIPPED = 10_000


# -- the wire format ------------------------------------------------------------------------------
#: Before message kinds (flask_feathers before 2026-11-29), a provider's broadcast was a message
#: whose path was ':' + the provider's name, and only Primus had one. Broadcasts still carry that
#: path, and such a message without ``kind`` is still a broadcast, so that old and new processes
#: understand each other's Primus broadcasts during a rolling upgrade.
LEGACY_BROADCAST_PREFIX = ':'
LEGACY_BROADCASTS = frozenset({':primus'})


def encode(message: Message, origin: str, seq: int) -> str:
    """The JSON payload of ``message``.

    :raises TypeError: (or ValueError, RecursionError) when its data is not JSON.
    """
    if message.kind is MessageKind.SERVICE_EVENT:
        fields = {'event': message.event, 'path': message.target, 'data': message.data}
    else:
        fields = {'kind': message.kind.value, 'provider': message.target,
                  'path': LEGACY_BROADCAST_PREFIX + message.target,
                  'event': message.event, 'data': message.data}
    fields.update(origin=origin, seq=seq)
    return json.dumps(fields, separators=(',', ':'))


def decode(raw: Union[str, bytes]) -> Tuple[Message, Optional[str], Optional[int]]:
    """``(message, origin, seq)`` of a payload; origin and seq are None when absent.

    :raises ValueError: (or TypeError, KeyError) for a malformed payload.
    """
    fields = json.loads(raw)
    if not isinstance(fields, dict):
        raise ValueError('a message is a JSON object')
    if 'kind' not in fields and fields.get('path') in LEGACY_BROADCASTS:
        kind, target = MessageKind.BROADCAST, fields['path'][len(LEGACY_BROADCAST_PREFIX):]
    else:
        kind = MessageKind(fields.get('kind', MessageKind.SERVICE_EVENT.value))
        target = fields['path'] if kind is MessageKind.SERVICE_EVENT else fields['provider']
    event, data = fields['event'], fields['data']
    if not isinstance(target, str) or not isinstance(event, str):
        raise ValueError('path, provider and event must be strings')
    origin, seq = fields.get('origin'), fields.get('seq')
    return (Message(kind, target, event, data), origin if isinstance(origin, str) else None,
            seq if isinstance(seq, int) else None)


class PubSubFanout:
    """Sends the router's messages on a backend's channel and receives the channel's messages.

    :param backend: the channel (see :class:`~flask_feathers.backends.Backend`).
    :param receive: ``receive(message)``, the router of this process.
    :param write_only: send only (no subscriber thread, no local delivery).
    :param max_backoff: longest delay between two reconnect attempts of the subscriber.
    :param logger: where outages and malformed payloads are logged (default: this module's).
    """

    def __init__(self, backend: Backend, receive: Receive, write_only: bool = False,
                 max_backoff: float = DEFAULT_MAX_BACKOFF,
                 logger: Optional[logging.Logger] = None) -> None:
        self.backend = backend
        self.receive = receive
        self.write_only = write_only
        self.max_backoff = max_backoff
        self._log = logger or log
        #: identifies this fan-out's own messages when they come back from the channel
        self.origin = uuid.uuid4().hex
        self._seq = 0
        self._send_lock = threading.Lock()
        self._skip: 'collections.OrderedDict[int, None]' = collections.OrderedDict()
        self._skip_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._outage = False
        self._retry_at = 0.0
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        if not write_only:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f'feathers-{backend.name}-{backend.channel}')
            self._thread.start()

    @property
    def channel(self) -> str:
        return self.backend.channel

    # -- the fan-out contract -------------------------------------------------------------------
    def send(self, message: Message) -> None:
        """Send one message; receive it locally instead when the backend cannot carry it."""
        local = False
        if self._closed:
            local = True
        else:
            with self._send_lock:
                self._seq += 1
                seq = self._seq
                try:
                    payload = encode(message, self.origin, seq)
                except (TypeError, ValueError, RecursionError) as exc:
                    self._log.error("%s %r %r is not JSON serialisable (%s); it reaches this "
                                    "process's clients only", _what(message), message.target,
                                    message.event, exc)
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
            self.receive(message)

    def close(self) -> None:
        """Stop the subscriber thread and close the backend (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.backend.close()

    # -- extras ---------------------------------------------------------------------------------
    @property
    def subscribed(self) -> bool:
        """Whether the subscriber is currently subscribed to the channel."""
        return self._subscribed.is_set()

    def wait_subscribed(self, timeout: Optional[float] = None) -> bool:
        """Wait until the subscriber is subscribed (messages from other processes arrive)."""
        if self.write_only:
            raise RuntimeError('a write-only message queue has no subscriber')
        return self._subscribed.wait(timeout)

    # -- sending --------------------------------------------------------------------------------
    def _send(self, payload: str) -> bool:
        if self._outage and time.monotonic() < self._retry_at:
            return False
        try:
            self.backend.send(payload)
        except self.backend.errors as exc:
            self._retry_at = time.monotonic() + SEND_RETRY_INTERVAL
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
        self._log.error("%s is unreachable (%s: %s); service events reach this process's "
                        "clients only until it returns (reconnecting in the background)",
                        self.backend.label, type(exc).__name__, exc)

    def _came_back(self) -> None:
        with self._state_lock:
            if not self._outage:
                return
            self._outage = False
            self._retry_at = 0.0
        self._log.warning('%s is back; service events are shared with the other processes '
                          'again (events produced during the outage were not)', self.backend.label)

    # -- the subscriber thread ------------------------------------------------------------------
    def _run(self) -> None:
        backoff = INITIAL_BACKOFF
        while not self._stop.is_set():
            listening: Optional[Iterator[Union[str, bytes, Listening]]] = None
            try:
                listening = self.backend.listen()
                for item in listening:
                    if self._stop.is_set():
                        break
                    if item is Listening.SUBSCRIBED:
                        self._subscribed.set()
                        backoff = INITIAL_BACKOFF
                        self._came_back()
                    elif not isinstance(item, Listening):
                        self._receive(item)
            except self.backend.errors as exc:
                self._subscribed.clear()
                if not self._stop.is_set():
                    self._went_down(exc)
            except Exception:  # never let the thread die: the process would go deaf for good
                self._subscribed.clear()
                self._log.exception('the %s subscriber failed unexpectedly; reconnecting',
                                    self.backend.name)
            finally:
                if listening is not None:
                    _close_quietly(listening)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)
        self._subscribed.clear()

    def _receive(self, raw: Union[str, bytes]) -> None:
        try:
            message, origin, seq = decode(raw)
        except (ValueError, TypeError, KeyError) as exc:
            self._log.warning('ignoring a malformed message on channel %r (%s): %.200r',
                              self.channel, exc, raw)
            return
        if origin == self.origin and seq is not None:
            with self._skip_lock:
                skip = self._skip.pop(seq, 0) is None
                # Own messages reach the channel in seq order: an older mark never comes back now.
                while self._skip and next(iter(self._skip)) < seq:
                    self._skip.popitem(last=False)
            if skip:
                return
        try:
            self.receive(message)
        except Exception:
            self._log.exception('delivering %r %r from the message queue failed', message.target,
                                message.event)


def _what(message: Message) -> str:
    return 'service event' if message.kind is MessageKind.SERVICE_EVENT else 'broadcast'


def _close_quietly(listening: Iterator[Any]) -> None:
    close = getattr(listening, 'close', None)
    if close is not None:
        try:
            close()
        except Exception:  # closing a broken connection may fail again
            pass
