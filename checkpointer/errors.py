"""One exception hierarchy, and the single place where driver errors are translated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError


class CheckpointerError(Exception):
    """Root of the errors this library raises on its own account."""


class SchemaNotReadyError(CheckpointerError, RuntimeError):
    """The database is not at the schema revision this package expects."""


class MigrationLockTimeoutError(CheckpointerError, TimeoutError):
    """`setup()` (or `migrations.upgrade`) waited its `lock_timeout` for another migrator
    of the same database; the message names who holds the lock and how to end it."""


class ThreadNotEmptyError(CheckpointerError, ValueError):
    """`copy_thread` was asked to copy onto a thread that already has rows."""


class BlobEncodingError(CheckpointerError, RuntimeError):
    """The database holds blob rows in the incremental encoding (recorded in its
    `checkpointer_settings`) and this saver was created without
    `blob_encoding="incremental"`: it would not be able to read them."""


class ValueTooLargeError(CheckpointerError, ValueError):
    """A value is larger than the database takes in one statement (MySQL's
    `max_allowed_packet`); the message names the setting. Nothing was written."""


class MissingDriverError(CheckpointerError, ImportError):
    """The database driver a URL needs is not installed; the message names the extra
    of this package that installs it."""


class ConnectionLostError(CheckpointerError, OperationalError):
    """The connection to the database was lost (a restart, a failover, a terminated
    backend) and retrying on a fresh one did not succeed in time, or retry is off. A
    `sqlalchemy.exc.OperationalError`: `orig` is the driver's error."""

    def __init__(self, message: str, statement: str | None, orig: BaseException) -> None:
        super().__init__(statement, None, orig, connection_invalidated=True)
        self.message = message

    def __str__(self) -> str:
        return f"{self.message}: {type(self.orig).__name__}: {self.orig}"

    def __reduce__(self) -> Any:
        return type(self), (self.message, self.statement, self.orig)


_UNDEFINED_TABLE = "42P01"
"""PostgreSQL's SQLSTATE for a missing relation (asyncpg and psycopg both expose it)."""


_MYSQL_NO_SUCH_TABLE = 1146
_MYSQL_PACKET_TOO_LARGE = 1153


def _mysql_code(orig: BaseException | None) -> int | None:
    """A MySQL driver error's number (PyMySQL and asyncmy: the first argument)."""
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


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
            or _mysql_code(error.orig) == _MYSQL_NO_SUCH_TABLE
        )
        if missing and "checkpoint" in message:
            raise SchemaNotReadyError(
                "the checkpoint tables are missing: run `alembic upgrade head` (from this "
                "package's alembic.ini) or `await saver.setup()` / `saver.setup()` first"
            ) from error
        raise
