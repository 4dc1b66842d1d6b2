"""A test-only Primus server for exercising ``flask_feathers/static/primus.js``.

It speaks the wire protocol through the real codec
(``flask_feathers.providers._primus_protocol``) on simple-websocket under
Werkzeug, serves ``primus.js`` with its tokens filled in and a page that loads
it, and records every frame it receives so tests can wait for them. It stands
in for the real Primus provider until that exists; then the browser tests can
point at the provider instead (the page and the fake ``todos`` service are the
only parts they rely on).
"""
from __future__ import annotations

import itertools
import json
import logging
import pathlib
import socket
import threading
import time
from typing import Any, Callable, List, Optional

from flask import Flask, Response, request
from simple_websocket import ConnectionClosed, Server
from werkzeug.serving import make_server

from flask_feathers.providers import _primus_protocol as pp

from support.waiting import free_port

log = logging.getLogger(__name__)

PRIMUS_JS = pathlib.Path(__file__).resolve().parent.parent / "flask_feathers" / "static" / "primus.js"
PATHNAME_TOKEN = "__PRIMUS_PATHNAME__"
PING_INTERVAL_TOKEN = "__PRIMUS_PING_INTERVAL__"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>primus.js test</title>
<script src="{pathname}/primus.js"></script>
<script>
  // Every lifecycle event of every Primus the test tracks, in order.
  window.log = [];
  window.track = function (primus, label) {{
    ['open', 'close', 'end', 'reconnect', 'reconnect scheduled', 'reconnected',
     'reconnect failed', 'timeout', 'offline', 'online'].forEach(function (name) {{
      primus.on(name, function (arg) {{ window.log.push({{who: label || 'primus', event: name, arg: arg}}); }});
    }});
    primus.on('error', function (err) {{
      window.log.push({{who: label || 'primus', event: 'error', arg: String(err && err.message)}});
    }});
    return primus;
  }};
  window.seen = function (name, count) {{
    return window.log.filter(function (e) {{ return e.event === name; }}).length >= (count || 1);
  }};
</script></head><body></body></html>
"""


class _WebSocketResponse(Response):
    """Tells Werkzeug the connection was taken over by the WebSocket, so it
    does not write an HTTP response onto it (the trick Flask-Sock uses)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("websocket closed")


class Connection:
    """One accepted WebSocket and everything it received, decoded."""

    def __init__(self, server: "PrimusTestServer", ws: Server, conn_id: str, path: str, args: dict):
        self.server = server
        self.ws = ws
        self.id = conn_id
        self.path = path
        self.args = args
        self.frames: List[pp.Frame] = []
        self.pinging = True
        self.closed = threading.Event()
        self.closed_by_server = False
        self._send_lock = threading.Lock()

    def send(self, frame: str) -> bool:
        with self._send_lock:
            try:
                self.ws.send(frame)
                return True
            except (ConnectionClosed, OSError):  # gone, or its socket already closed
                return False

    def send_event(self, name: str, *args: Any, ack_id: Optional[int] = None) -> bool:
        return self.send(pp.encode_event(name, args, ack_id))

    def close(self, deliberate: bool = False) -> None:
        """Close from the server side; ``deliberate`` sends ``primus::server::close`` first."""
        self.closed_by_server = True
        if deliberate:
            self.send(pp.encode_server_close())
        with self._send_lock:
            try:
                self.ws.close(reason=1001 if not deliberate else 1000)
            except (ConnectionClosed, OSError):  # already gone, or its socket closed under us
                pass

    def of_kind(self, kind: type) -> list:
        with self.server.changed:
            return [f for f in self.frames if isinstance(f, kind)]


class PrimusTestServer:
    """A Flask app serving ``primus.js``, a page and a Primus WebSocket endpoint.

    The endpoint implements a fake ``todos`` service in the legacy dialect
    (``todos::create`` / ``todos::find`` with acks and ``todos created``
    events, NotFound for other ``path::method`` names), ``echo`` (acks its
    arguments back), the heartbeat and ``primus::id::``. Other events are only
    recorded: a test answers them itself.
    """

    def __init__(self, ping_interval: int = 30000, pathname: str = "/primus", port: int = 0):
        self.ping_interval = ping_interval
        self.pathname = pathname
        self.port = port or free_port()
        self.pinging = True
        self.connections: List[Connection] = []
        self.changed = threading.Condition()
        self.todos: list = []
        self._ids = itertools.count(1)
        self._http = None
        self._threads: List[threading.Thread] = []
        self._stopping = threading.Event()
        self.app = self._make_app()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> "PrimusTestServer":
        if self._http is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        self._http = make_server("127.0.0.1", self.port, self.app, threaded=True)
        serve = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="primus-test-http", daemon=True)
        beat = threading.Thread(target=self._heartbeat, name="primus-test-heartbeat", daemon=True)
        self._threads = [serve, beat]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, deliberate: bool = False) -> None:
        """Close every connection (``deliberate``: with ``primus::server::close``)
        and stop listening; :meth:`start` listens again on the same port."""
        if self._http is None:
            return
        for conn in self.open_connections():
            conn.close(deliberate=deliberate)
        for conn in list(self.connections):
            if not conn.closed.wait(10):
                raise AssertionError(f"connection {conn.id} did not finish closing within 10 s")
        # The heartbeat stops last, so clients see the close, not a silent server.
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()
        for thread in self._threads:
            thread.join(10)
            if thread.is_alive():
                raise AssertionError(f"thread {thread.name} did not stop within 10 s")
        self._http = None

    def _heartbeat(self) -> None:
        # Event.wait here is the ping timer, not synchronisation.
        interval = self.ping_interval / 1000
        while interval > 0 and not self._stopping.wait(interval):
            if not self.pinging:
                continue
            for conn in self.open_connections():
                if conn.pinging:
                    conn.send(pp.encode_ping(int(time.time() * 1000)))

    # -- looking at what happened ---------------------------------------------

    def open_connections(self) -> List[Connection]:
        with self.changed:
            return [c for c in self.connections if not c.closed.is_set()]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
        """Wait until ``predicate()`` is truthy (checked whenever a frame arrives
        or a connection opens or closes) and return its value."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout} s waiting for {what or predicate}; connections: "
                        + "; ".join(f"{c.id} closed={c.closed.is_set()} frames={c.frames[-8:]!r}"
                                    for c in self.connections))
                self.changed.wait(left)

    def wait_for_connection(self, count: int = 1, timeout: float = 10) -> Connection:
        """The ``count``-th connection ever accepted, once it exists."""
        return self.wait_for(lambda: len(self.connections) >= count and self.connections[count - 1],
                             timeout, f"connection #{count}")

    def broadcast(self, name: str, *args: Any) -> None:
        for conn in self.open_connections():
            conn.send_event(name, *args)

    # -- the app ---------------------------------------------------------------

    def _make_app(self) -> Flask:
        app = Flask(__name__)
        pathname = self.pathname

        @app.get("/")
        def page():
            return PAGE.format(pathname=pathname)

        @app.get(f"{pathname}/primus.js")
        def library():
            text = PRIMUS_JS.read_text("utf-8")
            text = text.replace(PATHNAME_TOKEN, pathname).replace(PING_INTERVAL_TOKEN, str(self.ping_interval))
            return Response(text, mimetype="application/javascript")

        @app.get(pathname)
        def upgrade_required():
            return Response("Upgrade Required", status=426)

        # Werkzeug's router answers 400 (WebsocketMismatch) to an upgrade
        # request unless the matching rule says websocket=True.
        @app.route(pathname, websocket=True, endpoint="primus_websocket")
        def endpoint():
            ws = Server(request.environ)
            conn = Connection(self, ws, str(next(self._ids)), request.path, request.args.to_dict())
            with self.changed:
                self.connections.append(conn)
                self.changed.notify_all()
            try:
                self._serve(conn)
            finally:
                # Werkzeug keeps reading the socket for a next keep-alive
                # request, and its file objects keep the descriptor open after
                # simple-websocket closes it: without this the client only sees
                # the TCP close when it gives up waiting (2 s in Chromium).
                try:
                    request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                with self.changed:
                    conn.closed.set()
                    self.changed.notify_all()
            return _WebSocketResponse()

        return app

    def _serve(self, conn: Connection) -> None:
        while True:
            try:
                # simple-websocket's close() from another thread does not wake a
                # blocked receive(); the timeout lets the loop notice.
                raw = conn.ws.receive(timeout=0.25)
            except ConnectionClosed:
                return
            if raw is None:
                if not conn.ws.connected:
                    return
                continue
            frame = pp.decode(raw)
            with self.changed:
                conn.frames.append(frame)
                self.changed.notify_all()
            if isinstance(frame, pp.Ping):
                conn.send(pp.encode_pong(frame.value))
            elif isinstance(frame, pp.Id) and frame.is_request:
                conn.send(pp.encode_id(conn.id))
            elif isinstance(frame, pp.Event):
                self._on_event(conn, frame)

    def _on_event(self, conn: Connection, event: pp.Event) -> None:
        def ack(*args: Any) -> None:
            if event.ack_id is not None:
                conn.send(pp.encode_ack(event.ack_id, args))

        if event.name == "todos::create":
            data = event.args[0] if event.args else {}
            todo = dict(data, id=len(self.todos))
            self.todos.append(todo)
            ack(None, todo)
            self.broadcast("todos created", todo)
        elif event.name == "todos::find":
            ack(None, list(self.todos))
        elif event.name == "echo":
            ack(*event.args)
        elif event.ack_id is not None and "::" in event.name:
            ack({"name": "NotFound", "message": f"no handler for {event.name!r}",
                 "code": 404, "className": "not-found"})


def dumps(value: Any) -> str:
    """JSON for embedding a Python value in a page script."""
    return json.dumps(value)
