"""`SQLAlchemySaver`: runs plans on a sync `Engine`. Owns no SQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import Connection, Engine, create_engine

from . import migrations
from .base import SaverBase
from .errors import translated
from .plans import Emit, Plan, Rows, Step

T = TypeVar("T")


class SQLAlchemySaver(SaverBase):
    """LangGraph checkpoint saver on a sync SQLAlchemy `Engine` (psycopg, sqlite3).
    The engine is the caller's: the saver never disposes it."""

    def __init__(
        self,
        engine: Engine,
        *,
        serde: SerializerProtocol | None = None,
        schema: str | None = None,
    ) -> None:
        super().__init__(engine.dialect.name, serde=serde, schema=schema)
        self.engine = engine
        # The saver's view of the caller's engine (same pool): tables in `schema`.
        options = self._engine_options()
        self._engine = engine.execution_options(**options) if options else engine
        self._autocommit = self._engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        url: str,
        *,
        serde: SerializerProtocol | None = None,
        schema: str | None = None,
        **engine_kwargs: Any,
    ) -> Iterator[SQLAlchemySaver]:
        """A saver on an engine of its own, disposed on exit."""
        engine = create_engine(url, **engine_kwargs)
        try:
            yield cls(engine, serde=serde, schema=schema)
        finally:
            engine.dispose()

    def setup(self) -> list[str]:
        """Migrate the database to this package's head revision; safe at every start,
        from many processes at once. Returns the revisions this call applied."""
        with self.engine.connect() as conn:
            applied = migrations.upgrade(conn, schema=self.schema)
        self._schema_ready = True
        return applied

    # -- executing plans ---------------------------------------------------------

    def _connect(self, plan: Plan[Any]) -> AbstractContextManager[Connection]:
        return self._engine.begin() if plan.atomic else self._autocommit.connect()

    def _ensure_schema(self) -> None:
        """The first use checks the database is migrated (see `SaverBase._check_schema`)."""
        if not self._schema_ready:
            with self._autocommit.connect() as conn:
                self._check_schema(conn)

    @staticmethod
    def _execute(conn: Connection, step: Step) -> Rows | None:
        result = conn.execute(step.statement, step.params)  # type: ignore[arg-type]
        return result.mappings().all() if step.fetch else None  # type: ignore[return-value]

    def _run(self, plan: Plan[T]) -> T:
        self._ensure_schema()
        steps = plan.steps
        with translated(), self._connect(plan) as conn:
            try:
                step = next(steps)
                while True:
                    assert isinstance(step, Step)
                    step = steps.send(self._execute(conn, step))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def _stream(self, plan: Plan[None]) -> Iterator[Any]:
        """Run a plan that emits values; each statement on its own connection."""
        self._ensure_schema()
        steps = plan.steps
        rows: Rows | None = None
        while True:
            try:
                item = steps.send(rows)
            except StopIteration:
                return
            if isinstance(item, Emit):
                rows = None
                yield item.value
                continue
            with translated(), self._autocommit.connect() as conn:
                rows = self._execute(conn, item)

    # -- the sync contract -------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        plan, next_config = self.plans.put(config, checkpoint, metadata, new_versions)
        self._run(plan)
        return next_config

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._run(self.plans.put_writes(config, writes, task_id, task_path))

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._run(self.plans.get_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        plan = self.plans.list_checkpoints(config, filter=filter, before=before, limit=limit)
        yield from self._stream(plan)

    def delete_thread(self, thread_id: str) -> None:
        self._run(self.plans.delete_thread(thread_id))


__all__ = ["SQLAlchemySaver"]
