"""One Primus connection: :class:`Spark` (what ``primus.on('connection', fn(spark))`` gets) and
:class:`PrimusRequest` (what an ``authorize(req, done)`` hook sees of the upgrade request). Wire
facts: docs/protocol.rst, "Primus"."""
from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Union

from werkzeug.datastructures import ImmutableMultiDict

from .. import errors
from ..connections import Connection
from ..events import EventEmitter
from ..transport import Message, WebSocket
from . import _calls
from . import _primus_protocol as proto

if TYPE_CHECKING:
    from .primus import PrimusServer

log = logging.getLogger(__name__)

PROVIDER = 'primus'


class PrimusRequest:
    """What an ``authorize(req, done)`` hook sees of the upgrade request.

    :ivar headers: request headers. :ivar args: the query string. :ivar cookies: cookies.
    :ivar feathers: the connection's params; starts as ``{'provider': 'primus'}``.
    """

    def __init__(self, flask_request: Any) -> None:
        self._request = flask_request
        self.headers = flask_request.headers
        self.remote_addr = flask_request.remote_addr
        self.environ = flask_request.environ
        self.feathers: Dict[str, Any] = {'provider': PROVIDER}
        self._args: Optional[_QueryArgs] = None

    @property
    def args(self) -> '_QueryArgs':
        """The query string (parsed when first read)."""
        args = self._args
        if args is None:
            request = self._request
            if 'args' not in request.__dict__:  # not parsed yet: parse it once, as _QueryArgs
                request.parameter_storage_class = _QueryArgs
            parsed = request.args
            args = self._args = parsed if type(parsed) is _QueryArgs else _QueryArgs(parsed)
        return args

    @property
    def query(self) -> '_QueryArgs':
        """The query string, Primus's name for it (``args``)."""
        return self.args

    @property
    def cookies(self) -> Any:
        """The request's cookies (parsed when first read)."""
        return self._request.cookies


class _QueryArgs(ImmutableMultiDict):  # type: ignore[type-arg]
    """The query string as Werkzeug's MultiDict, whose ``get`` of a missing key answers the
    default without raising (and catching) a BadRequestKeyError first: that cost a reconnect
    storm about 7% of its time in an ``authorize`` hook reading ``req.args.get(...)``."""

    # One signature for Werkzeug's overloads: same arguments, same answers.
    def get(self, key: Any, default: Any = None,  # type: ignore[override]
            type: Any = None) -> Any:  # noqa: A002
        if key not in self:
            return default
        return super().get(key, default, type)


class Spark(EventEmitter):
    """One Primus connection, as ``primus.on('connection', fn(spark))`` sees it.

    Its WebSocket lives on the connection layer (``transport/``): frames are written directly
    by the sending thread, a client that stops reading is dropped when ``maxQueue`` frames wait,
    the heartbeat is a hub timer, and inbound frames are handled in order on a pooled worker.
    """

    label = 'Primus'

    def __init__(self, server: 'PrimusServer', req: PrimusRequest) -> None:
        super().__init__()
        self.id = secrets.token_hex(10)
        self.server = server
        self.request = req
        self.headers = req.headers
        self.feathers = req.feathers
        self._ws: Optional[WebSocket] = None
        #: frames sent between registration and the handshake, written first once it is done
        self._early: Optional[List[Any]] = []
        self._lock = threading.Lock()
        self._acks: Dict[int, Callable[..., Any]] = {}
        self._ack_ids = iter(range(1, proto.MAX_ACK_ID))
        self._closed = False
        self.connection: Optional[Connection] = None

    @property
    def query(self) -> _QueryArgs:
        """The query string of the upgrade request (parsed when first read)."""
        return self.request.args

    def _start(self, ws: WebSocket) -> None:
        with self._lock:
            self._ws = ws
            early, self._early = self._early or [], None
        for item in early:
            self._write(ws, item)

    def __repr__(self) -> str:
        return f'<Spark {self.id}>'

    @property
    def open(self) -> bool:
        ws = self._ws
        return not self._closed and (ws is None or ws.open)

    # -- sending --------------------------------------------------------------------------------
    def write_frame(self, frame: Union[str, Message]) -> None:
        """Send one encoded frame (a :class:`~flask_feathers.transport.Message` when it is the
        same for many clients); a client that stopped reading is dropped."""
        self.write_frames([frame])

    def write_frames(self, frames: List[Union[str, Message]]) -> None:
        """Send several frames in order, with one system call when the socket takes them."""
        ws = self._ws
        if ws is None:
            with self._lock:
                if self._early is not None:
                    self._early.extend(frames)
                    return
                ws = self._ws
        if ws is None:
            return
        if len(frames) == 1:
            self._write(ws, frames[0])
        else:
            ws.send_messages([f if isinstance(f, Message) else Message(f) for f in frames])

    @staticmethod
    def _write(ws: WebSocket, frame: Union[str, Message]) -> None:
        if isinstance(frame, Message):
            ws.send_message(frame)
        else:
            ws.send(frame)

    def write(self, data: Any) -> None:
        """Send a plain Primus data frame (``primus.on('data')`` on the client)."""
        self.write_frame(proto.encode_data(data))

    def send(self, event: str, *args: Any) -> None:
        """Send an emitter event; a callable last argument receives the client's ack."""
        ack_id = None
        if args and callable(args[-1]):
            with self._lock:
                ack_id = next(self._ack_ids)
                self._acks[ack_id] = args[-1]
            args = args[:-1]
        self.write_frame(proto.encode_event(event, list(args), ack_id))

    def end(self) -> None:
        """Close deliberately: the client is told not to reconnect."""
        self.write_frame(proto.SERVER_CLOSE_FRAME)
        self._closed = True
        ws = self._ws
        if ws is not None:
            ws.close()

    # -- receiving (the connection layer calls these) ---------------------------------------------
    def on_message(self, ws: WebSocket, frame: Any) -> None:  # hub thread
        ws.deliver(self._handle, frame)

    def on_close(self, ws: WebSocket) -> None:  # a worker, after every frame
        self._closed = True
        with self.server.state.app_context():
            self.server._forget(self)

    def _handle(self, ws: WebSocket, frame: Any) -> None:
        with self.server.state.app_context():  # listeners see current_app, g, ...
            self._handle_frame(frame)

    def _handle_frame(self, frame: Any) -> None:
        decoded = proto.decode(frame)
        run = self.server.workers.submit
        if isinstance(decoded, proto.Ping):
            self.write_frame(proto.encode_pong(decoded.value))
        elif isinstance(decoded, proto.Pong):
            pass
        elif isinstance(decoded, proto.Id):
            if decoded.is_request:
                self.write_frame(proto.encode_id(self.id))
        elif isinstance(decoded, proto.Event):
            # Each call runs on its own worker, like Flask-SocketIO's async handlers: a slow
            # call never holds back the next one from the same client.
            run(self._handle_event, decoded)
        elif isinstance(decoded, proto.Ack):
            with self._lock:
                callback = self._acks.pop(decoded.ack_id, None)
            if callback is not None:
                run(callback, *decoded.args)
        elif isinstance(decoded, proto.Data):
            self._run_listeners('data', decoded.value)  # on the serial lane: in order
        elif isinstance(decoded, proto.Invalid):
            log.info('Primus client %s sent an unusable frame (%s); ignored', self.id,
                     decoded.reason)
            # A call that asked for an ack still gets one, or its client waits forever.
            raw_id = proto.unusable_event_id(frame)
            if raw_id is not None:
                error = errors.BadRequest(f'Malformed Primus packet: {decoded.reason}')
                try:
                    self.write_frame(proto.encode_error_ack(raw_id, error.to_dict()))
                except (TypeError, ValueError, RecursionError):
                    pass

    def _handle_event(self, event: Any) -> None:
        with self.server.state.app_context():  # the service call and its hooks, like Socket.IO's
            self._run_event(event)

    def _run_event(self, event: Any) -> None:
        connection = self.connection
        name, args = event.name, list(event.args)
        if proto.is_reserved_event(name):
            ack = None
        elif _calls.is_call(name, args, self.server.application) and connection is not None:
            ack = _calls.run_call(self.server.application, connection, name, args)
        elif self.listeners(name):
            if event.ack_id is not None:
                done = threading.Event()

                def respond(*values: Any) -> None:
                    if not done.is_set():
                        done.set()
                        self.write_frame(proto.encode_ack(event.ack_id, list(values)))
                self._run_listeners(name, *args, respond)
            else:
                self._run_listeners(name, *args)
            return
        else:
            ack = _calls.unknown_event_error(name)
        if event.ack_id is not None and ack is not None:
            try:
                frame = proto.encode_ack(event.ack_id, ack)
            except (TypeError, ValueError) as exc:
                log.error('ack for %r could not be encoded: %s', name, exc)
                frame = proto.encode_ack(event.ack_id, [errors.GeneralError(
                    'The service returned a result that cannot be sent as JSON').to_dict()])
            self.write_frame(frame)


def send_ping(ws: WebSocket) -> None:
    ws.send(proto.encode_ping(int(time.time() * 1000)))


def spark_sender(spark: Spark) -> Callable[[str, Any], None]:
    def send(event: str, data: Any) -> None:
        spark.write_frame(proto.encode_event(event, [data]))
    return send
