"""engine.io's threading websocket, tuned for the Socket.IO provider (PROTOCOL.md section 9).

engine.io (threading mode, simple-websocket) gives every client a packet queue and a writer
thread: a packet sent to a client is put on its queue and the writer thread wakes up to write it.
Past a few hundred clients a fan-out is dominated by those wake-ups (one thread switch per client
per event, under one GIL), not by encoding. :func:`tune` gives one server its own websocket class
and queue class, so that:

* the socket gets TCP_NODELAY and permessage-deflate is declined unless asked for
  (:func:`_realtime.websocket_environ`), and a message is bounded in size while it is read;
* a frame that engine.io cannot decode ends that connection at once instead of leaving a zombie
  until the ping timeout;
* **direct writes**: a packet for a websocket client whose queue is empty is written to the socket
  by the thread that sends it, without blocking (``MSG_DONTWAIT``), and never reaches the queue.
  Only when the socket's buffer is full (a slow reader), or earlier packets still wait, does it go
  through the queue and the writer thread as before, so a client's packets keep their order and a
  client that stops reading still fills its bounded queue (``max_queue``) and is dropped.

Direct writes are used for connections that opened as websockets on a plain blocking TCP socket
(Werkzeug, gunicorn), which is how Feathers clients and ``transports: ['websocket']`` connect.
Connections upgraded from long-polling, TLS sockets handed to the app, and sockets with a timeout
keep engine.io's own path.
"""
from __future__ import annotations

import functools
import logging
import queue
import threading
from typing import Any, List, Optional, Sequence, Tuple

import simple_websocket
from engineio import exceptions as engineio_exceptions
from engineio import packet as eio_packet
from socketio import packet as socketio_packet
from wsproto.utilities import LocalProtocolError

from . import _realtime

log = logging.getLogger(__name__)


class DirectQueue(queue.Queue):
    """One client's engine.io packet queue, with direct writes once :meth:`attach` gave it the
    client's websocket.

    ``_backlog`` counts what was put on the queue since then and the writer thread has not written
    yet (a packet it took off the queue counts until it is written). A direct write happens only
    while it is 0, under ``_write_lock``; while it is not, only the writer thread writes, so its
    (blocking) writes need the lock just to frame a message and to count it written.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ws: Any = None
        #: the client's ``simple_websocket.Server`` once it connected over a websocket
        self.websocket: Any = None
        self._write_lock = threading.Lock()
        self._backlog = 0

    def attach(self, ws: Any) -> None:
        """Start direct writes to ``ws`` (a ``simple_websocket.Server``), before engine.io's writer
        thread starts."""
        with self._write_lock, self.mutex:
            self._backlog = sum(1 for item in self.queue if item is not None)
            self._ws = ws

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        if item is None or self._ws is None:  # None wakes engine.io's writer up to stop it
            return super().put(item, block, timeout)
        with self._write_lock:
            if self._ws is None:
                super().put(item, block, timeout)
            else:
                self._write_or_queue(item, framed=False)

    def put_frame(self, frame: _realtime.Rest) -> bool:
        """Send a websocket frame built once for many clients (:func:`_realtime.prebuilt_frame`)
        like any packet. False (nothing done) when this client takes no direct writes: the caller
        sends it the engine.io packet instead."""
        with self._write_lock:
            if self._ws is None:
                return False
            self._write_or_queue(frame, framed=True)
        return True

    def _write_or_queue(self, item: Any, framed: bool) -> None:
        """Write ``item`` (an engine.io packet, or a frame's wire bytes when ``framed``) now,
        without blocking, while nothing waits before it; queue what is left (the unwritten rest
        of its frame, or ``item`` itself when it could not be framed) for the writer thread
        (caller holds ``_write_lock``; the client takes direct writes)."""
        ws = self._ws
        if self._backlog == 0 and ws.connected:
            try:
                rest = (_realtime.send_now(ws, item) if framed
                        else _realtime.write_now(ws, item.encode()))
            except Exception:  # closing: engine.io's writer meets the same state and ends
                rest = item
            if not rest:
                return
            item = rest
        self._backlog += 1
        queue.Queue.put(self, item)

    def detach(self) -> None:
        """Stop direct writes (the websocket is closing): from now on packets only queue."""
        with self._write_lock:
            self._ws = None

    def release(self) -> None:
        """The websocket ended: stop direct writes and let go of it (engine.io keeps a closed
        socket, and so this queue, around until its next ping is due)."""
        self.detach()
        self.websocket = None

    def written(self) -> None:
        """The writer thread wrote one queued item (caller holds ``_write_lock``)."""
        self._backlog -= 1


def raw_socket(eio_socket: Any) -> Any:
    """The TCP socket of an engine.io client connected over a websocket, else None."""
    return getattr(getattr(getattr(eio_socket, 'queue', None), 'websocket', None), 'sock', None)


def _start(handler: Any, wrapper: Any) -> Any:
    """Run engine.io's websocket handler for ``wrapper`` (a FeathersWebSocket whose ``ws`` is the
    client's ``simple_websocket.Server``), with direct writes when the connection allows them."""
    eio_socket = getattr(handler, '__self__', None)
    pending = getattr(eio_socket, 'queue', None)
    if isinstance(pending, DirectQueue):
        pending.websocket = wrapper.ws
        if not eio_socket.connected and _realtime.can_write_now(wrapper.ws):
            # Opened as a websocket (not an upgrade from polling) on a plain blocking socket.
            pending.attach(wrapper.ws)
            wrapper._direct = pending
    return handler(wrapper)


def send_to_many(server: Any, namespace: str, event: str, data: Any,
                 targets: Sequence[Tuple[str, Any]]) -> List[str]:
    """Send one Socket.IO event to many clients, framed once: ``targets`` are ``(sid, engine.io
    socket)`` pairs of connected clients; the clients that take direct writes get the same
    websocket frame (:meth:`DirectQueue.put_frame`). Returns the sids left to send to through
    ``server.emit`` (long-polling, TLS, ...), or all of them when the event has binary parts.
    Only for servers without permessage-deflate (see :func:`tune`).

    The packet is built the way python-socketio's ``emit`` builds it: a tuple is spread over
    several arguments, None is no argument.
    """
    args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
    encoded = server.packet_class(socketio_packet.EVENT, namespace=namespace,
                                  data=[event] + args).encode()
    if isinstance(encoded, list):  # binary attachments: several engine.io packets
        return [sid for sid, _ in targets]
    frame = _realtime.prebuilt_frame(eio_packet.Packet(eio_packet.MESSAGE, encoded).encode())
    rest = []
    for sid, eio_socket in targets:
        pending = getattr(eio_socket, 'queue', None)
        if not isinstance(pending, DirectQueue):
            rest.append(sid)
            continue
        try:
            # engine.io's own check before a send (closes a client whose pings stopped); it raises
            # for a socket that closed meanwhile: that client is gone and gets nothing.
            if eio_socket.check_ping_timeout() and not pending.put_frame(frame):
                rest.append(sid)
        except engineio_exceptions.SocketIsClosedError:
            pass
    return rest


def tune(io: Any, compression: bool) -> bool:
    """Give ``io``'s engine.io server its own websocket and queue classes (see the module doc).
    True when :func:`send_to_many` may be used (simple-websocket, no compression).

    ``eio._async`` is the driver table engineio shares between servers of one async mode: this
    server gets its own copy.
    """
    eio = io.server.eio
    base = (eio._async or {}).get('websocket')
    try:
        from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
    except ImportError:  # pragma: no cover - another engineio layout: leave it as it is
        return False
    if not (isinstance(base, type) and issubclass(base, SimpleWebSocketWSGI)):
        return False  # eventlet, gevent, asyncio: not simple-websocket

    class FeathersWebSocket(base):  # type: ignore[misc, valid-type]
        def __init__(self, handler: Any, server: Any, **kwargs: Any) -> None:
            kwargs.setdefault('max_message_size', server.max_http_buffer_size)
            self._eio_socket = getattr(handler, '__self__', None)
            self._direct: Optional[DirectQueue] = None
            # Not a bound method of self: a reference cycle would keep each closed connection's
            # websocket (buffers, wsproto state) alive until a full garbage collection.
            super().__init__(functools.partial(_start, handler), server, **kwargs)

        def send(self, message: Any) -> Any:
            direct = self._direct
            if direct is None:
                return super().send(message)
            # engine.io's writer thread, with one queued item. While it is counted in the backlog
            # nothing is written directly, so the (maybe long, blocking) write to a client that
            # reads slowly runs without the lock: senders keep queueing meanwhile, and a client
            # that stopped reading fills its bounded queue and is dropped.
            try:
                ws = self.ws
                if not ws.connected:
                    raise OSError('websocket closed')
                if isinstance(message, _realtime.Rest):
                    _realtime.send_all(ws, message)
                else:
                    with direct._write_lock:
                        frame = _realtime.frame_message(ws, message)
                    ws.sock.sendall(frame)
            finally:
                with direct._write_lock:
                    direct.written()

        def close(self) -> None:
            # Not under the write lock: a close frame to a client that stopped reading may block.
            # After detach() no direct write can interleave with it.
            if self._direct is not None:
                self._direct.detach()
            try:
                super().close()
            except (OSError, LocalProtocolError, simple_websocket.ConnectionClosed):
                # The client is gone (reset, or already closed): engine.io's writer thread calls
                # this as it ends and would print the error as an unhandled thread exception.
                pass

        def __call__(self, environ: Any, start_response: Any) -> Any:
            try:
                return super().__call__(_realtime.websocket_environ(environ, compression),
                                        start_response)
            except (ConnectionError, StopIteration):
                raise  # how a websocket normally ends under Werkzeug / gunicorn
            except Exception as exc:
                # engineio decodes each frame outside its own try: an undecodable one ('x', '',
                # 'b' + bad base64, deep JSON) kills the reader but leaves the engine.io socket,
                # its writer thread and the Socket.IO connection alive until the ping timeout
                # (about a minute), so one bad frame per connection piles up zombies.
                log.info('Socket.IO websocket ended by an unusable frame: %s', str(exc)[:100])
                self._abort()
                if getattr(self, 'ws', None) is not None and self.ws.mode == 'gunicorn':
                    raise StopIteration() from None
                raise ConnectionError() from None
            finally:
                pending = getattr(self._eio_socket, 'queue', None)
                if isinstance(pending, DirectQueue):
                    pending.release()

        def _abort(self) -> None:
            eio_socket = self._eio_socket
            if eio_socket is not None and not eio_socket.closed:
                eio_socket.close(wait=False, abort=True,
                                 reason=eio_socket.server.reason.TRANSPORT_ERROR)
            if self._direct is not None:
                self._direct.detach()
            ws = getattr(self, 'ws', None)
            if ws is not None:
                try:
                    ws.close()
                except Exception:
                    pass

    eio._async = dict(eio._async, websocket=FeathersWebSocket, queue=DirectQueue)
    return not compression
