"""LangGraph checkpoint savers on SQLAlchemy Core, migrated by Alembic."""

import logging

from .aio import AsyncSQLAlchemySaver
from .autogenerate import CHECKPOINTER_TABLES, include_name, include_object
from .errors import (
    BlobEncodingError,
    CheckpointerError,
    ConnectionLostError,
    MigrationLockTimeoutError,
    MissingDriverError,
    SchemaNotReadyError,
    ThreadNotEmptyError,
    ValueTooLargeError,
)
from .migrations import VERSION_TABLE
from .reports import (
    Stats,
    SweepReport,
    TableStats,
    ThreadPage,
    ThreadSize,
    ThreadSummary,
)
from .retry import Retry
from .schema import metadata
from .sync import SQLAlchemySaver

# A library logs and lets the application decide where logs go (see the docs' list of
# what is logged, and at which level): nothing is printed unless logging is configured.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "CHECKPOINTER_TABLES",
    "VERSION_TABLE",
    "AsyncSQLAlchemySaver",
    "BlobEncodingError",
    "CheckpointerError",
    "ConnectionLostError",
    "MigrationLockTimeoutError",
    "MissingDriverError",
    "Retry",
    "SQLAlchemySaver",
    "SchemaNotReadyError",
    "Stats",
    "SweepReport",
    "TableStats",
    "ThreadNotEmptyError",
    "ThreadPage",
    "ThreadSize",
    "ThreadSummary",
    "ValueTooLargeError",
    "include_name",
    "include_object",
    "metadata",
]
