"""Where service events go after a service emitted them.

The contract: a fan-out receives every service event of this process through :meth:`publish` and
makes sure that every process serving clients (this one included) hands it exactly once to its own
:class:`~flask_feathers.dispatch.Dispatcher`. :class:`LocalFanout` is the single-process case; a
pub/sub backend for several processes implements the same two methods.
"""
from __future__ import annotations

from typing import Any, Callable

#: ``deliver(path, event, data)``: hand an event to this process's dispatcher.
Deliver = Callable[[str, str, Any], None]


class LocalFanout:
    """Single process: every event is delivered right away to the local dispatcher."""

    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver

    def publish(self, path: str, event: str, data: Any) -> None:
        self.deliver(path, event, data)

    def close(self) -> None:
        pass
