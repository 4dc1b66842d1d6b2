"""Database errors as the Feathers errors a client should see (used by :mod:`flask_feathers.sql`).

A duplicate key is a Conflict, a value the table refuses a BadRequest, a database that cannot be
reached Unavailable, anything else a GeneralError whose details go to the log only. Drivers say
"duplicate" differently: sqlite3 by error name, psycopg by SQLSTATE, PyMySQL (MariaDB/MySQL) by
error number.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Optional

from sqlalchemy import exc as sa_exc

from .errors import BadRequest, Conflict, GeneralError, Unavailable

log = logging.getLogger('flask_feathers.sql')

#: sqlite3 error names and PostgreSQL SQLSTATEs meaning "duplicate key".
_DUPLICATE_CODES = {'SQLITE_CONSTRAINT_PRIMARYKEY', 'SQLITE_CONSTRAINT_UNIQUE', '23505'}
#: MariaDB/MySQL error numbers meaning "duplicate key" (their SQLSTATE is the generic 23000).
_MYSQL_DUPLICATE = {1062, 1586}
#: MariaDB/MySQL error numbers for a value the table refuses, which PyMySQL raises as
#: OperationalError: no default for a NOT NULL column, data too long, wrong value, out of range.
_MYSQL_BAD_VALUE = {1048, 1364, 1366, 1406, 1264, 1292}


@contextlib.contextmanager
def database_errors(table: str) -> Iterator[None]:
    """Let no SQLAlchemy exception out: map it to the FeathersError a client should see."""
    try:
        yield
    except sa_exc.IntegrityError as exc:
        if _is_duplicate(exc):
            raise Conflict(f'A record with the same id or unique value already exists in '
                           f'{table!r}') from None
        raise BadRequest(f'Rejected by the database: {_first_line(exc.orig)}') from None
    except sa_exc.DataError as exc:
        raise BadRequest(f'Rejected by the database: {_first_line(exc.orig)}') from None
    except sa_exc.OperationalError as exc:
        if _mysql_errno(exc.orig) in _MYSQL_BAD_VALUE:
            raise BadRequest(f'Rejected by the database: {_first_line(exc.orig)}') from None
        if 'no such' in str(exc.orig).lower():  # SQLite's missing table or column
            log.error('Database error on %r', table, exc_info=exc)
            raise GeneralError('Database error') from None
        log.error('Database unavailable for %r', table, exc_info=exc)
        raise Unavailable('The database is unavailable or busy; try again') from None
    except sa_exc.DBAPIError as exc:
        log.error('Database error on %r', table, exc_info=exc)
        raise GeneralError('Database error') from None
    except sa_exc.StatementError as exc:
        # Raised while binding parameters: a value the column type cannot take.
        if isinstance(exc.orig, (TypeError, ValueError)):
            raise BadRequest(f'Invalid data: {exc.orig}') from None
        log.error('Database error on %r', table, exc_info=exc)
        raise GeneralError('Database error') from None
    except sa_exc.SQLAlchemyError as exc:
        log.error('SQLAlchemy error on %r', table, exc_info=exc)
        raise GeneralError('Database error') from None


def _mysql_errno(error: Any) -> Optional[int]:
    args = getattr(error, 'args', ())
    return args[0] if args and isinstance(args[0], int) else None


def _is_duplicate(exc: sa_exc.IntegrityError) -> bool:
    orig = exc.orig
    if _mysql_errno(orig) is not None:
        return _mysql_errno(orig) in _MYSQL_DUPLICATE
    code = getattr(orig, 'sqlite_errorname', None) or getattr(orig, 'sqlstate', None)
    if code is not None:
        return code in _DUPLICATE_CODES
    text = str(orig).lower()
    return 'unique' in text or 'duplicate' in text


def _first_line(error: Any) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
