"""What the async and the sync saver share: the planner, channel versions, the schema
the tables live in, and the once-per-saver check that the database is migrated."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from . import codec, migrations
from .direct import Direct, DirectConnection
from .plans import Emit, Plan, Planner, Rows, Step
from .statements import for_dialect

T = TypeVar("T")
E = TypeVar("E", Engine, AsyncEngine)


@dataclass(frozen=True)
class Released:
    """Rows of a plan's last statement, read before its connection was released."""

    rows: Rows | None


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
        # Set by the executor on a single-writer database (SQLite): an asyncio or a
        # threading lock that writing plans take before checking out a connection.
        self._write_turn: Any = None
        self._direct: Direct | None = None

    def _views(self, engine: E) -> tuple[E, E]:
        """The saver's views of the caller's engine (same pool): for transactions, and
        autocommit for single statements (no BEGIN/COMMIT round trips). With a schema,
        every table name is rendered schema-qualified (no reliance on `search_path`)."""
        if self.schema:
            engine = engine.execution_options(schema_translate_map={None: self.schema})
        return engine, engine.execution_options(isolation_level="AUTOCOMMIT")

    def _use_direct(self, engine: Engine, autocommit: Engine) -> None:
        """Let autocommit plans skip `Connection` where the dialect allows it (see
        `checkpointer.direct`); not on an engine whose own `schema_translate_map` the
        direct path would not apply. `autocommit` runs what that path cannot."""
        if not self._planner.statements.dialect.direct:
            return
        if "schema_translate_map" in engine.get_execution_options():
            return

        def fallback(step: Step) -> Rows | None:
            with autocommit.connect() as conn:
                return self._execute(conn, step)

        self._direct = Direct(engine, self.schema, fallback)

    def _autocommit_connection(
        self, autocommit: Engine
    ) -> AbstractContextManager[Connection | DirectConnection]:
        """A connection for statements that commit on their own: the direct path when
        nobody listens to the engine's statements, else a `Connection`."""
        direct = self._direct
        if direct is not None and direct.available():
            return direct.connect()
        return autocommit.connect()

    def _turn(self, plan: Plan[Any], first: Step | Emit) -> Any:
        """On a single-writer database (SQLite) a writing plan waits for its turn here,
        holding no connection and with no timeout; reads, and every plan on other
        databases, take nothing. (`nullcontext` serves `with` and `async with` alike.)"""
        writes = plan.atomic or (isinstance(first, Step) and first.statement.is_dml)
        return self._write_turn if self._write_turn is not None and writes else nullcontext()

    @staticmethod
    def _execute(conn: Connection | DirectConnection, step: Step) -> Rows | None:
        if isinstance(conn, DirectConnection):
            return conn.execute(step)
        result = conn.execute(step.statement, step.params)  # type: ignore[arg-type]
        return result.mappings().all() if step.fetch else None  # type: ignore[return-value]

    def _drive(self, conn: Connection | DirectConnection, plan: Plan[T], step: Step | Emit) -> Any:
        """Run a plan's statements on one sync `Connection` (the async saver runs this in
        a greenlet). Returns the plan's result, or, at a step marked `last`, its rows as
        `Released` for `_finish` to hand over once the connection is back in the pool."""
        steps = plan.steps
        try:
            while True:
                assert isinstance(step, Step)
                rows = self._execute(conn, step)
                if step.last:
                    return Released(rows)
                step = steps.send(rows)
        except StopIteration as done:
            return done.value

    @staticmethod
    def _finish(plan: Plan[T], outcome: Any) -> T:
        """The plan's result from what `_drive` returned."""
        if not isinstance(outcome, Released):
            return outcome  # type: ignore[no-any-return]
        try:
            plan.steps.send(outcome.rows)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        raise RuntimeError("a plan asked for a statement after its last one")

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
