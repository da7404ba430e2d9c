"""Hooks for a host application's Alembic autogenerate when it shares a database with
the saver: our tables (and our version table) are not in the application's `MetaData`,
so without these filters every `alembic revision --autogenerate` proposes dropping them.

In the application's `env.py`::

    from checkpointer.autogenerate import include_name, include_object

    context.configure(
        connection=connection,
        target_metadata=app_metadata,
        include_name=include_name,        # skips reflecting our tables at all
        include_object=include_object,    # and any object of ours that still shows up
    )

Both return True for everything else; combine them with the application's own rules
with `and`.
"""

from __future__ import annotations

from typing import Any

from .migrations import VERSION_TABLE
from .schema import metadata

CHECKPOINTER_TABLES: frozenset[str] = frozenset({*metadata.tables, VERSION_TABLE})
"""Every table this package creates and owns: the three checkpoint tables and the
version table recording our Alembic revision."""

_IGNORED = CHECKPOINTER_TABLES | {"checkpoint_migrations"}
"""Also left alone: langgraph-checkpoint-postgres' own migration table, present in a
database that saver set up before ours adopted it."""


def _is_ours(table_name: str | None) -> bool:
    return table_name is not None and table_name in _IGNORED


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic `include_name` hook: False for our tables (and the official saver's
    `checkpoint_migrations`), so they are never reflected."""
    if type_ == "table":
        return not _is_ours(name)
    if type_ in {"column", "index", "unique_constraint", "foreign_key_constraint"}:
        return not _is_ours(parent_names.get("table_name"))
    return True


def include_object(
    object: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic `include_object` hook: False for our tables and for every index,
    constraint or column that belongs to one of them."""
    if type_ == "table":
        return not _is_ours(name)
    table = getattr(object, "table", None)
    return table is None or not _is_ours(getattr(table, "name", None))


__all__ = ["CHECKPOINTER_TABLES", "include_name", "include_object"]
