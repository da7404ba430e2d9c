"""One exception hierarchy, and the single place where driver errors are translated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError


class CheckpointerError(Exception):
    """Root of the errors this library raises on its own account."""


class SchemaNotReadyError(CheckpointerError, RuntimeError):
    """The database is not at the schema revision this package expects."""


class MigrationLockTimeoutError(CheckpointerError, TimeoutError):
    """`setup()` (or `migrations.upgrade`) waited its `lock_timeout` for another migrator
    of the same database; the message names who holds the lock and how to end it."""


class ThreadNotEmptyError(CheckpointerError, ValueError):
    """`copy_thread` was asked to copy onto a thread that already has rows."""


class MissingDriverError(CheckpointerError, ImportError):
    """The database driver a URL needs is not installed; the message names the extra
    of this package that installs it."""


_UNDEFINED_TABLE = "42P01"
"""PostgreSQL's SQLSTATE for a missing relation (asyncpg and psycopg both expose it)."""


@contextmanager
def translated() -> Iterator[None]:
    """Turn a driver's 'missing table' error into `SchemaNotReadyError` that says what to
    run; every other error passes unchanged. The original stays as `__cause__`."""
    try:
        yield
    except DBAPIError as error:
        message = str(error.orig).lower()
        missing = getattr(error.orig, "sqlstate", None) == _UNDEFINED_TABLE or (
            message.startswith("no such table")  # SQLite has no error codes for this
        )
        if missing and "checkpoint" in message:
            raise SchemaNotReadyError(
                "the checkpoint tables are missing: run `alembic upgrade head` (from this "
                "package's alembic.ini) or `await saver.setup()` / `saver.setup()` first"
            ) from error
        raise
