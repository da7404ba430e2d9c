"""LangGraph checkpoint savers on SQLAlchemy Core, migrated by Alembic."""

from .aio import AsyncSQLAlchemySaver
from .errors import CheckpointerError, SchemaNotReadyError, ThreadNotEmptyError
from .migrations import VERSION_TABLE
from .schema import metadata
from .sync import SQLAlchemySaver

__all__ = [
    "VERSION_TABLE",
    "AsyncSQLAlchemySaver",
    "CheckpointerError",
    "SQLAlchemySaver",
    "SchemaNotReadyError",
    "ThreadNotEmptyError",
    "metadata",
]
