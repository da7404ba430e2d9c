"""What every statement family shares: the tables, the dialect they are built for, and
tagged rows (the branches of a `UNION ALL` that `plans` sorts by their `kind`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, Text, literal, select

from .. import schema
from ..dialects import Dialect, typed_null
from ..rows import KIND

cp, blobs, writes = schema.checkpoints, schema.checkpoint_blobs, schema.checkpoint_writes


class Family:
    """A family of statements, built for one dialect on first use and kept."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect


def tagged(kind: str, shape: Mapping[str, Any], columns: Mapping[str, Any]) -> Select[Any]:
    """A row of kind `kind` with every column of `shape` (label: SQL type) in order,
    NULL where `columns` has none: the branches of a `UNION ALL` line up by position."""
    return select(
        literal(kind, Text).label(KIND),
        *(
            (columns[name] if name in columns else typed_null(type_)).label(name)
            for name, type_ in shape.items()
        ),
    )
