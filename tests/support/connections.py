"""What the connection-layer test modules share: raw clients, an app with both socket transports,
and the registries a connection takes."""
from __future__ import annotations

import collections
import os
import socket
import threading
from typing import Any, Dict, List, Optional

from flask import Flask

from flask_feathers import Feathers, MemoryService, primus, socketio, transport

from support.ws import SIO_PATH, masked_text, raw_upgrade

#: the repository's root
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: How many more threads 200 idle connections may leave behind (far less than one per connection).
THREADS_PER_200 = 20

def thread_names() -> Dict[str, int]:
    """Live threads of this process by name, with trailing numbers dropped."""
    names = collections.Counter()
    for thread in threading.enumerate():
        names[thread.name.rstrip('0123456789-').rstrip(' (')] += 1
    return dict(names)


def raw_socketio(port: int) -> socket.socket:
    """A raw websocket that opened engine.io and sent Socket.IO's CONNECT; it reads nothing."""
    sock = raw_upgrade(port, SIO_PATH)
    sock.sendall(masked_text('40'))
    return sock


def raw_primus(port: int) -> socket.socket:
    return raw_upgrade(port, '/primus')


def close_all(socks: List[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def make_app(name: str, sio: Optional[Dict[str, Any]] = None,
             prim: Optional[Dict[str, Any]] = None) -> Any:
    """An app with Socket.IO, Primus and todos; every connection joins the channel 'all'."""
    app = Flask(name)
    api = Feathers(app)
    api.configure(socketio(**(sio or {})))
    api.configure(primus(dict({'transformer': 'websockets'}, **(prim or {}))))
    api.use('todos', MemoryService(paginate=None))
    state = app.extensions['feathers']
    api.on('connection', lambda conn: state.channels.channel('all').join(conn))
    return app, api, state


def levels(state: Any) -> Dict[str, int]:
    """How much of each registry the app's connections take."""
    hub = transport.get_hub()
    return {
        'connection registry': len(state.connections),
        'primus sparks': len(state.primus.sparks),
        'engine.io sockets': len(state.io.server.eio.sockets),
        "channel 'all'": len(state.channels.channel('all')),
        'hub connections': sum(1 for c in list(hub.connections) if c.owner is state),
        'hub selector': sum(1 for c in list(hub._by_fd.values())
                            if getattr(c, 'owner', None) is state),
    }

