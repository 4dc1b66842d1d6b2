"""flask_feathers: Feathers-style real-time services for Flask (REST, Socket.IO, Primus)."""
from __future__ import annotations

from typing import Any

from . import errors
from .extension import Feathers
from .memory import MemoryService
from .providers.rest import rest
from .wrapped import WrappedService

__version__ = '0.1.0'


def socketio(*args: Any, **kwargs: Any) -> Any:
    """``api.configure(socketio(setup_io, **options))``: see :mod:`flask_feathers.providers.socketio`."""
    from .providers.socketio import socketio as _socketio
    return _socketio(*args, **kwargs)


__all__ = ['Feathers', 'WrappedService', 'errors', 'rest', 'socketio', '__version__']


def primus(*args: Any, **kwargs: Any) -> Any:
    """``api.configure(primus(config, setup_primus))``: see :mod:`flask_feathers.providers.primus`."""
    from .providers.primus import primus as _primus
    return _primus(*args, **kwargs)


__all__.append('primus')


def __getattr__(name: str) -> Any:
    # SQLService needs the `sql` extra; flask_feathers.sql raises an ImportError naming
    # `pip install flask-feathers[sql]` when SQLAlchemy is missing.
    if name == 'SQLService':
        from .sql import SQLService
        return SQLService
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ += ['MemoryService', 'SQLService']
