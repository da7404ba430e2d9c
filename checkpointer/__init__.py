"""LangGraph checkpoint savers on SQLAlchemy Core, migrated by Alembic."""

from .aio import AsyncSQLAlchemySaver
from .errors import CheckpointerError, SchemaNotReadyError
from .migrations import VERSION_TABLE
from .schema import metadata

__all__ = [
    "VERSION_TABLE",
    "AsyncSQLAlchemySaver",
    "CheckpointerError",
    "SchemaNotReadyError",
    "metadata",
]
