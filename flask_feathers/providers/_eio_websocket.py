"""engine.io on the connection layer: the Socket.IO provider's adapter onto ``transport/``.

python-engineio (threading mode) gives every websocket client a request thread that reads, a
writer thread, and a thread per ping that sleeps for the ping interval; python-socketio adds a
thread per inbound event. :func:`tune` gives one server its own engine.io socket class, queue
class and "thread" class (the internals this relies on are listed and checked in
:mod:`._socketio_compat`), so that:

* a client that opens as a websocket (how Feathers clients and ``transports: ['websocket']``
  connect) is handed over to the hub after its handshake (:mod:`..transport.handover`): no
  thread of its own; its packets are written directly (:class:`HubQueue`), its frames are read
  by the hub and handled in order on a pooled worker (:class:`EngineIOHandler`);
* pings come from the hub's timers, for every client (long-polling ones too), instead of a
  sleeping thread each, and a client that misses its pong is closed when its time is up;
* every background task (python-socketio's ``async_handlers``, engine.io's own tasks) runs on
  the shared pool of reusable threads (:class:`..transport.Workers`).

Clients that upgrade from long-polling (browsers by default), TLS sockets and other servers keep
engine.io's own websocket path: a request thread reads and a pooled writer task writes.
"""
from __future__ import annotations

import functools
import logging
import queue
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

import simple_websocket
from engineio import exceptions as engineio_exceptions
from engineio import packet as eio_packet
from socketio import packet as socketio_packet
from wsproto.utilities import LocalProtocolError

from .. import transport
from . import _socketio_compat
from ..transport import Message, WebSocket

log = logging.getLogger(__name__)


class HubQueue(queue.Queue[Any]):
    """One client's engine.io packet queue; once :meth:`attach` gave it a handed-over websocket,
    packets are written to it at once and never queue (the websocket keeps the backlog)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ws: Optional[WebSocket] = None

    def attach(self, ws: WebSocket) -> None:
        """Write what was queued (OPEN) to ``ws``, then every later packet."""
        with self.mutex:
            pending, self.queue = list(self.queue), type(self.queue)()
            self.ws = ws
        for item in pending:
            self._write(ws, item)

    @staticmethod
    def _write(ws: WebSocket, item: Any) -> None:
        if item is None:  # engine.io's "stop the writer": the socket closed
            ws.close()
        else:
            ws.send(item.encode())

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        ws = self.ws
        if ws is None:
            return super().put(item, block, timeout)
        self._write(ws, item)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        if not block:
            return super().get(False)
        # a long-poll, or the writer of a websocket upgraded from polling: waits for packets,
        # not for the CPU (see transport.workers)
        with transport.blocking():
            return super().get(True, timeout)

    def qsize(self) -> int:
        ws = self.ws
        return super().qsize() if ws is None else ws.backlog_size()

    def join(self) -> None:
        if self.ws is None:
            super().join()


class HubSocket(_socketio_compat.EngineIOSocket):  # type: ignore[misc]
    """An engine.io socket whose pings come from the hub, and whose websocket, when it opened as
    one on a plain socket, is served by the hub."""

    hub: transport.Hub
    max_backlog: int
    compression: bool
    #: whose connections these are (the app's FeathersState): api.close() closes them
    owner: Any

    #: ``shortcut(socket, ws, text) -> bool``: a first look at each text frame of a handed-over
    #: websocket, True when it handled the frame (the Socket.IO provider answers CONNECT there)
    shortcut: Optional[Callable[[Any, WebSocket, str], bool]] = None

    _timer: Optional[transport.hub.Timer] = None
    # engine.io's own fields, which this class reads and sets
    last_ping: Optional[float]
    connected: bool
    upgraded: bool
    closing: bool
    closed: bool
    queue: HubQueue
    server: Any
    sid: str

    def schedule_ping(self) -> None:
        # engine.io: the next PING goes out ping_interval after the client's PONG.
        if self.last_ping:
            self.last_ping = None
            self._timer = self.hub.call_later(self.server.ping_interval, self._ping_now)

    def close(self, *args: Any, **kwargs: Any) -> None:
        timer = self._timer
        if timer is not None:  # a closed socket leaves nothing in the hub's timers
            timer.cancel()
        super().close(*args, **kwargs)

    def _ping_now(self) -> None:  # hub thread
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        self.queue.put(eio_packet.Packet(eio_packet.PING))
        # A little past the time-out, or engine.io's strict comparison still finds it in time.
        self._timer = self.hub.call_later(self.server.ping_timeout + 0.05, self._check_pong)

    def _check_pong(self) -> None:  # hub thread
        if not self.closed and self.last_ping and \
                time.time() - self.last_ping > self.server.ping_timeout:
            # Closing runs the disconnect handlers: application code, so not on the hub thread.
            self.hub.workers.submit(self.check_ping_timeout)

    def _upgrade_websocket(self, environ: Any, start_response: Any) -> Any:
        if self.connected or not transport.can_hand_over(environ):
            return super()._upgrade_websocket(environ, start_response)
        return self.hand_over(environ, start_response)

    def hand_over(self, environ: Any, start_response: Any, first: Optional[str] = None) -> Any:
        """Answer the upgrade and give the websocket to the hub; ``first`` (the OPEN packet of a
        client that opened as a websocket) goes out with the answer."""
        handler = EngineIOHandler(self)
        try:
            accepted = transport.accept(environ, handler,
                                        max_message_size=self.server.max_http_buffer_size,
                                        max_backlog=self.max_backlog, owner=self.owner,
                                        compression=self.compression, first=first)
        except Exception as exc:  # a bad upgrade request
            log.info('Socket.IO websocket handshake failed: %r', exc)
            self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            return _socketio_compat.bad_request(self.server)
        if accepted is None:  # pragma: no cover - can_hand_over said yes
            return super()._upgrade_websocket(environ, start_response)
        ws, mode = accepted
        self.connected = True
        self.upgraded = True
        self.queue.attach(ws)
        ws.start()
        return transport.finish(mode)


class EngineIOHandler:
    """What the hub calls for one handed-over engine.io websocket."""

    label = 'Socket.IO'
    __slots__ = ('socket',)

    def __init__(self, socket: HubSocket) -> None:
        self.socket = socket

    def on_message(self, ws: WebSocket, message: Any) -> None:  # hub thread
        ws.deliver(self._receive, message)

    def _receive(self, ws: WebSocket, message: Any) -> None:
        shortcut = self.socket.shortcut
        if shortcut is not None and type(message) is str and shortcut(self.socket, ws, message):
            return
        try:
            pkt = eio_packet.Packet(encoded_packet=message)
        except Exception as exc:
            # An undecodable frame ('x', '', 'b' + bad base64, deep JSON) ends the connection
            # at once, instead of leaving a zombie until the ping time-out.
            log.info('Socket.IO websocket ended by an unusable frame: %s', str(exc)[:100])
            ws.abort()
            return
        try:
            self.socket.receive(pkt)
        except engineio_exceptions.UnknownPacketError:
            pass
        except engineio_exceptions.SocketIsClosedError:
            ws.abort()

    def on_close(self, ws: WebSocket) -> None:  # a worker, after every message above
        sock = self.socket
        server = sock.server
        sock.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        if server.sockets.get(sock.sid) is sock:
            del server.sockets[sock.sid]


def hub_websocket(eio_socket: Any) -> Optional[WebSocket]:
    """The handed-over websocket of an engine.io client, else None."""
    pending = getattr(eio_socket, 'queue', None)
    return getattr(pending, 'ws', None)


def event_message(server: Any, namespace: str, event: str, data: Any) -> Optional[Message]:
    """One Socket.IO event as a websocket :class:`Message` (the way ``emit`` builds the packet:
    a tuple is spread over several arguments, None is no argument), or None when it has binary
    parts (several engine.io packets)."""
    args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
    encoded = server.packet_class(socketio_packet.EVENT, namespace=namespace,
                                  data=[event] + args).encode()
    if isinstance(encoded, list):
        return None
    return Message(eio_packet.Packet(eio_packet.MESSAGE, encoded).encode())


def send_to_many(server: Any, namespace: str, event: str, data: Any,
                 targets: Sequence[Tuple[str, Any]]) -> List[str]:
    """Send one Socket.IO event to many clients, framed once: ``targets`` are ``(sid, engine.io
    socket)`` pairs of connected clients; the handed-over ones get the same websocket frame.
    Returns the sids left to send to through ``server.emit`` (long-polling, ...), or all of them
    when the event has binary parts.

    The packet is built the way python-socketio's ``emit`` builds it: a tuple is spread over
    several arguments, None is no argument.
    """
    message = event_message(server, namespace, event, data)
    if message is None:  # binary attachments: several engine.io packets
        return [sid for sid, _ in targets]
    rest = []
    for sid, eio_socket in targets:
        ws = hub_websocket(eio_socket)
        if ws is None:
            if not eio_socket.closed:
                rest.append(sid)
        else:
            ws.send_message(message)
    return rest


def tune(io: Any, compression: bool, max_backlog: int, owner: Any = None) -> type:
    """Put ``io``'s engine.io server on the connection layer (see the module doc); returns the
    socket class its clients get (:class:`HubSocket`, with this server's hub and settings).

    ``eio._async`` is the driver table engineio shares between servers of one async mode: this
    server gets its own copy.
    """
    _socketio_compat.check(io)
    eio = io.server.eio
    _socketio_compat.index_rooms(io.server.manager)
    hub = transport.get_hub()
    socket_class = type('HubSocket', (HubSocket,), {'hub': hub, 'max_backlog': max_backlog,
                                                    'compression': compression, 'owner': owner})
    table = _socketio_compat.driver_table(eio)
    base = table.get('websocket')
    table.update(queue=HubQueue, thread=functools.partial(transport.PooledTask, hub.workers))
    stock = _socketio_compat.stock_websocket_class()
    if stock is not None and isinstance(base, type) and issubclass(base, stock):
        table['websocket'] = _stock_websocket(base, compression)
    _socketio_compat.set_driver_table(eio, table)

    timeout = getattr(owner, 'handshake_timeout', None)

    def wrap(connect: Optional[Callable[..., Any]]) -> Callable[..., Any]:
        return functools.partial(_on_connect, eio, io.server, socket_class, timeout, connect)
    _socketio_compat.wrap_handler(eio, 'connect', wrap)
    return socket_class


def _on_connect(eio: Any, server: Any, socket_class: type, timeout: Optional[float],
                connect: Optional[Callable[..., Any]], sid: str, environ: Any, *args: Any) -> Any:
    # engine.io made the socket just now and calls schedule_ping() next: from here on it is ours
    # (it holds no state of its own that the class change could lose).
    sock = eio.sockets.get(sid)
    if type(sock) is _socketio_compat.EngineIOSocket:
        sock.__class__ = socket_class
    if timeout:
        hub = transport.get_hub()
        hub.call_later(timeout, _check_handshake, hub, server, sid, timeout)
    return connect(sid, environ, *args) if connect is not None else True


def _check_handshake(hub: transport.Hub, server: Any, eio_sid: str, timeout: float) -> None:
    """Hub thread: the cheap look at whether the client joined a namespace (the usual answer, for
    thousands of clients at once after a storm); only a client to close goes to a worker, since
    closing runs the disconnect handlers."""
    try:
        if not _waits_for_namespace(server, eio_sid):
            return
    except RuntimeError:  # a namespace was added meanwhile: look again on the worker
        pass
    hub.workers.submit(_close_unless_connected, server, eio_sid, timeout)


def _waits_for_namespace(server: Any, eio_sid: str) -> bool:
    sock = server.eio.sockets.get(eio_sid)
    if sock is None or sock.closed:
        return False
    manager = server.manager
    return all(manager.sid_from_eio_sid(eio_sid, namespace) is None
               for namespace in list(manager.get_namespaces()))


def _close_unless_connected(server: Any, eio_sid: str, timeout: float) -> None:
    """A client whose engine.io connection opened but that joined no Socket.IO namespace (its
    CONNECT, and the ``io.use`` chain, done) within ``timeout`` seconds is closed: an open socket
    that never says who it is costs the server for nothing."""
    sock = server.eio.sockets.get(eio_sid)
    if sock is None or not _waits_for_namespace(server, eio_sid):
        return
    log.info('closed a Socket.IO client that joined no namespace within %g s', timeout)
    sock.close(wait=False, abort=True)


def _stock_websocket(base: type, compression: bool) -> type:
    """engine.io's own simple-websocket class, for the connections that stay on it (upgrades
    from long-polling, TLS): bounded messages, no compression unless asked, and an undecodable
    frame ends the connection."""

    class FeathersWebSocket(base):  # type: ignore[misc]
        def __init__(self, handler: Any, server: Any, **kwargs: Any) -> None:
            kwargs.setdefault('max_message_size', server.max_http_buffer_size)
            self._eio_socket = getattr(handler, '__self__', None)
            super().__init__(handler, server, **kwargs)

        def wait(self) -> Any:
            with transport.blocking():  # for the client's next message
                return super().wait()

        def close(self) -> None:
            try:
                super().close()
            except (OSError, LocalProtocolError, simple_websocket.ConnectionClosed):
                pass  # the client is gone already

        def __call__(self, environ: Any, start_response: Any) -> Any:
            try:
                return super().__call__(transport.websocket_environ(environ, compression),
                                        start_response)
            except (ConnectionError, StopIteration):
                raise  # how a websocket normally ends under Werkzeug / gunicorn
            except Exception as exc:
                log.info('Socket.IO websocket ended by an unusable frame: %s', str(exc)[:100])
                eio_socket = self._eio_socket
                if eio_socket is not None and not eio_socket.closed:
                    eio_socket.close(wait=False, abort=True,
                                     reason=eio_socket.server.reason.TRANSPORT_ERROR)
                ws = getattr(self, 'ws', None)
                if ws is not None:
                    try:
                        ws.close()
                    except Exception:
                        pass
                if ws is not None and ws.mode == 'gunicorn':
                    raise StopIteration() from None
                raise ConnectionError() from None

    return FeathersWebSocket
