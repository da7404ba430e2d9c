"""LangGraph checkpoint savers on SQLAlchemy Core, migrated by Alembic."""

from .aio import AsyncSQLAlchemySaver
from .autogenerate import CHECKPOINTER_TABLES, include_name, include_object
from .errors import (
    CheckpointerError,
    MigrationLockTimeoutError,
    SchemaNotReadyError,
    ThreadNotEmptyError,
)
from .migrations import VERSION_TABLE
from .schema import metadata
from .sync import SQLAlchemySaver

__all__ = [
    "CHECKPOINTER_TABLES",
    "VERSION_TABLE",
    "AsyncSQLAlchemySaver",
    "CheckpointerError",
    "MigrationLockTimeoutError",
    "SQLAlchemySaver",
    "SchemaNotReadyError",
    "ThreadNotEmptyError",
    "include_name",
    "include_object",
    "metadata",
]
