"""Feathers errors: what travels on the wire when a call fails.

Every class carries the HTTP ``code``, the ``name`` clients turn back into a class and the
``class_name`` (``className`` on the wire). :meth:`FeathersError.to_dict` gives the wire dict,
:func:`convert` turns such a dict back into an exception, and :func:`from_exception` maps any
exception to the FeathersError that may leave the server (never a traceback).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Type

log = logging.getLogger(__name__)

#: The message a client sees for an exception that is not a FeathersError.
INTERNAL_ERROR_MESSAGE = 'An internal error occurred'


class FeathersError(Exception):
    """Base class of every error that may be sent to a client.

    :param message: human readable text (an exception is accepted and turned into its text).
    :param data: optional extra payload, sent as ``data``.
    :param errors: optional field errors, sent as ``errors``.
    """

    code: int = 500
    name: str = 'FeathersError'
    class_name: str = 'general-error'

    def __init__(self, message: Any = '', data: Any = None, errors: Any = None) -> None:
        if isinstance(message, BaseException):
            message = str(message)
        elif isinstance(message, Mapping) and data is None:
            # Feathers JS accepts an object as first argument: {message, errors, ...}.
            message = dict(message)
            errors = message.pop('errors', errors)
            text = message.pop('message', '')
            data = message or None
            message = text
        self.message = '' if message is None else str(message)
        self.data = data
        self.errors = errors
        super().__init__(self.message)

    def to_dict(self) -> Dict[str, Any]:
        """The wire dict: name, message, code, className, plus data and errors when set."""
        out: Dict[str, Any] = {
            'name': self.name,
            'message': self.message,
            'code': self.code,
            'className': self.class_name,
        }
        if self.data is not None:
            out['data'] = self.data
        if self.errors is not None:
            out['errors'] = self.errors
        return out

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.message!r})'


class BadRequest(FeathersError):
    """400 bad-request"""

    code, name, class_name = 400, 'BadRequest', 'bad-request'


class NotAuthenticated(FeathersError):
    """401 not-authenticated"""

    code, name, class_name = 401, 'NotAuthenticated', 'not-authenticated'


class PaymentError(FeathersError):
    """402 payment-error"""

    code, name, class_name = 402, 'PaymentError', 'payment-error'


class Forbidden(FeathersError):
    """403 forbidden"""

    code, name, class_name = 403, 'Forbidden', 'forbidden'


class NotFound(FeathersError):
    """404 not-found"""

    code, name, class_name = 404, 'NotFound', 'not-found'


class MethodNotAllowed(FeathersError):
    """405 method-not-allowed"""

    code, name, class_name = 405, 'MethodNotAllowed', 'method-not-allowed'


class NotAcceptable(FeathersError):
    """406 not-acceptable"""

    code, name, class_name = 406, 'NotAcceptable', 'not-acceptable'


class Timeout(FeathersError):
    """408 timeout"""

    code, name, class_name = 408, 'Timeout', 'timeout'


class Conflict(FeathersError):
    """409 conflict"""

    code, name, class_name = 409, 'Conflict', 'conflict'


class Gone(FeathersError):
    """410 gone"""

    code, name, class_name = 410, 'Gone', 'gone'


class LengthRequired(FeathersError):
    """411 length-required"""

    code, name, class_name = 411, 'LengthRequired', 'length-required'


class Unprocessable(FeathersError):
    """422 unprocessable"""

    code, name, class_name = 422, 'Unprocessable', 'unprocessable'


class TooManyRequests(FeathersError):
    """429 too-many-requests"""

    code, name, class_name = 429, 'TooManyRequests', 'too-many-requests'


class GeneralError(FeathersError):
    """500 general-error"""

    code, name, class_name = 500, 'GeneralError', 'general-error'


class NotImplemented(FeathersError):  # noqa: A001 (Feathers' name)
    """501 not-implemented"""

    code, name, class_name = 501, 'NotImplemented', 'not-implemented'


class BadGateway(FeathersError):
    """502 bad-gateway"""

    code, name, class_name = 502, 'BadGateway', 'bad-gateway'


class Unavailable(FeathersError):
    """503 unavailable"""

    code, name, class_name = 503, 'Unavailable', 'unavailable'


class PayloadTooLarge(FeathersError):
    """413 payload-too-large. Not in Feathers' table (its REST servers answer an oversized body
    with a plain 413): what the REST provider answers a request body over its limit with, in the
    Feathers error shape."""

    code, name, class_name = 413, 'PayloadTooLarge', 'payload-too-large'


class UnsupportedMediaType(FeathersError):
    """415 unsupported-media-type. Not in Feathers' table either: what the REST provider answers
    a body in a format it does not read (neither JSON nor a URL-encoded form) with, naming the
    content type it got."""

    code, name, class_name = 415, 'UnsupportedMediaType', 'unsupported-media-type'


#: Every class of the Feathers error table, in code order.
ERROR_CLASSES = (BadRequest, NotAuthenticated, PaymentError, Forbidden, NotFound, MethodNotAllowed,
                 NotAcceptable, Timeout, Conflict, Gone, LengthRequired, Unprocessable,
                 TooManyRequests, GeneralError, NotImplemented, BadGateway, Unavailable)
#: name -> class, for :func:`convert`.
BY_NAME: Dict[str, Type[FeathersError]] = {cls.name: cls for cls in ERROR_CLASSES}
#: HTTP code -> class.
BY_CODE: Dict[int, Type[FeathersError]] = {cls.code: cls for cls in BY_NAME.values()}


def convert(error: Any) -> FeathersError:
    """Turn a wire dict (or anything else) back into a FeathersError instance.

    The class is chosen by ``name``, then by ``code``; unknown ones become GeneralError.
    """
    if isinstance(error, FeathersError):
        return error
    if not isinstance(error, Mapping):
        return GeneralError(str(error))
    # ('' and 0 name no class, as a missing key does)
    cls = BY_NAME.get(error.get('name', '')) or BY_CODE.get(error.get('code', 0)) or GeneralError
    return cls(error.get('message', ''), data=error.get('data'), errors=error.get('errors'))


def from_exception(exc: BaseException, debug: bool = False) -> FeathersError:
    """The FeathersError that may leave the server for ``exc``.

    A FeathersError passes as it is. Anything else is logged with its traceback and becomes a
    GeneralError whose message tells nothing about the internals (unless ``debug``).
    """
    if isinstance(exc, FeathersError):
        return exc
    log.error('Unhandled %s in a service call', type(exc).__name__, exc_info=exc)
    message = f'{type(exc).__name__}: {exc}' if debug else INTERNAL_ERROR_MESSAGE
    return GeneralError(message)


def to_wire(exc: BaseException, debug: bool = False) -> Dict[str, Any]:
    """Shortcut: ``from_exception(exc, debug).to_dict()``."""
    return from_exception(exc, debug).to_dict()


__all__ = ['FeathersError', 'convert', 'from_exception', 'to_wire', 'error_class', 'ERROR_CLASSES',
           'BY_NAME', 'BY_CODE', 'INTERNAL_ERROR_MESSAGE', 'PayloadTooLarge',
           'UnsupportedMediaType'] + [cls.name for cls in ERROR_CLASSES]


def error_class(name: str) -> Optional[Type[FeathersError]]:
    """The class for ``name`` or None."""
    return BY_NAME.get(name)
