"""Old import path of the application and the service wrapper (kept for imports that name it).

:class:`~flask_feathers.application.Application` lives in :mod:`flask_feathers.application`,
:class:`~flask_feathers.wrapped.WrappedService` in :mod:`flask_feathers.wrapped`.
"""
from __future__ import annotations

from .application import Application, EventSink, strip_path
from .wrapped import RESERVED_METHODS, WrappedService

__all__ = ['Application', 'EventSink', 'RESERVED_METHODS', 'WrappedService', 'strip_path']
