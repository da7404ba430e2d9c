"""What the async and the sync saver share: the planner, channel versions, the schema
the tables live in, and the once-per-saver check that the database is migrated."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import Connection

from . import codec, migrations
from .plans import Planner
from .statements import for_dialect


class SaverBase(BaseCheckpointSaver[str]):
    """A checkpoint saver over SQLAlchemy: plans made here, executed by a subclass."""

    def __init__(
        self,
        dialect_name: str,
        *,
        serde: SerializerProtocol | None = None,
        schema: str | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.schema = migrations.validate_schema(schema, dialect_name)
        self._planner = Planner(for_dialect(dialect_name), self.serde)
        self._schema_ready = False

    def _engine_options(self) -> dict[str, Any]:
        """Execution options of the saver's own view of the caller's engine: with a
        schema, every table name is rendered schema-qualified (no `search_path`)."""
        return {"schema_translate_map": {None: self.schema}} if self.schema else {}

    def _check_schema(self, conn: Connection) -> None:
        """Fail closed, once per saver: SchemaNotReadyError unless the database is at
        the revision this package expects (not cached while it is not)."""
        migrations.check_revision(conn, self.schema)
        self._schema_ready = True

    @property
    def plans(self) -> Planner:
        # `with_allowlist` clones the saver with another serde: follow it.
        if self._planner.serde is not self.serde:
            self._planner = Planner(self._planner.statements, self.serde)
        return self._planner

    def get_next_version(self, current: str | None, channel: Any = None) -> str:
        return codec.next_version(current)
