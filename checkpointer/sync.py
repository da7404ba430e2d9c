"""`SQLAlchemySaver`: runs plans on a sync `Engine`. Owns no SQL."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from . import citus, migrations, retry
from .base import SaverBase, finish, resume
from .dialects import engine_defaults
from .engines import expect_sync_engine
from .errors import translated
from .plans import DECODE_BATCH, Emit, Plan, Planner, Step
from .reports import Stats, SweepReport, ThreadPage
from .retry import Retry
from .urls import sync_url

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
        fast_path: bool = True,
        retry: Retry | bool = True,
        blob_encoding: str = "plain",
    ) -> None:
        """`fast_path=False` runs every statement through SQLAlchemy's `Connection`
        (see `checkpointer.fastpath`). `retry`: how a call whose connection was lost
        tries again on a fresh one (`checkpointer.retry.Retry`; False: never).
        `blob_encoding="incremental"`: store growing channel values as differences
        from an earlier version (`checkpointer.incremental`; see the Storage docs)."""
        expect_sync_engine(engine)
        if isinstance(engine.pool, SingletonThreadPool) and _memory_sqlite(engine.url):
            raise ValueError(
                f"{engine.url!s} is an in-memory SQLite database on a SingletonThreadPool, "
                "which gives every thread a database of its own, and LangGraph writes "
                "checkpoints from worker threads: use a file, or create the engine with "
                "poolclass=StaticPool and connect_args={'check_same_thread': False} (what "
                "SQLAlchemySaver.from_conn_string does for in-memory URLs)"
            )
        super().__init__(
            engine.dialect.name,
            serde=serde,
            schema=schema,
            retry_policy=retry,
            blob_encoding=blob_encoding,
        )
        self.engine = engine
        self._engine, self._autocommit = self._views(engine)
        self._first_use_lock = threading.Lock()  # concurrent first calls: one check
        self._use_engines(engine, self._engine, self._autocommit, fast_path)
        if self._planner.statements.dialect.single_writer:
            self._write_turn = threading.Lock()
        # A StaticPool hands the same DBAPI connection to every thread: concurrent calls
        # must not interleave their statements and transactions on it.
        self._serial: AbstractContextManager[Any] = (
            threading.RLock() if isinstance(engine.pool, StaticPool) else nullcontext()
        )

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        url: str | URL,
        *,
        serde: SerializerProtocol | None = None,
        schema: str | None = None,
        fast_path: bool = True,
        retry: Retry | bool = True,
        blob_encoding: str = "plain",
        **engine_kwargs: Any,
    ) -> Iterator[SQLAlchemySaver]:
        """A saver on an engine of its own, disposed on exit. A URL without a driver
        (`postgresql://`, `sqlite://`) gets one that is installed (`checkpointer.urls`).
        An in-memory SQLite URL gets one connection shared by all threads, so every
        thread sees one database."""
        url = sync_url(url)
        if _memory_sqlite(url) and "poolclass" not in engine_kwargs:
            connect_args = {"check_same_thread": False, **engine_kwargs.get("connect_args", {})}
            engine_kwargs = {**engine_kwargs, "poolclass": StaticPool}
            engine_kwargs["connect_args"] = connect_args
        engine = create_engine(url, **{**engine_defaults(url), **engine_kwargs})
        try:
            yield cls(
                engine,
                serde=serde,
                schema=schema,
                fast_path=fast_path,
                retry=retry,
                blob_encoding=blob_encoding,
            )
        finally:
            engine.dispose()

    def setup(
        self,
        *,
        lock_timeout: float | None = migrations.DEFAULT_LOCK_TIMEOUT,
        distribute: bool = False,
    ) -> list[str]:
        """Migrate the database to this package's head revision; safe at every start,
        from many processes at once. Returns the revisions this call applied. Waits at
        most `lock_timeout` seconds for another migrator (None: no limit), then raises
        `MigrationLockTimeoutError` naming it. `distribute`: then `distribute()`."""
        with self.engine.connect() as conn:
            applied = migrations.upgrade(conn, schema=self.schema, lock_timeout=lock_timeout)
            if distribute:
                citus.distribute(conn, self.schema)
            self._note_citus(conn)
        self._schema_ready = True
        # the first use's checks now, so the first call needs no connection for them
        self._ensure_ready()
        return applied

    def distribute(self) -> list[str]:
        """On Citus, distribute the tables by `thread_id`, colocated (idempotent); the
        tables this call distributed. Nothing on a database without Citus
        (`checkpointer.citus.distribute`)."""
        with self.engine.connect() as conn:
            return citus.distribute(conn, self.schema)

    # -- executing plans ---------------------------------------------------------

    def _ensure_ready(self) -> None:
        """The first use checks the database is migrated (see `SaverBase._first_use`)."""
        if not self._ready:
            with self._first_use_lock, self._serial:
                if not self._ready:
                    try:
                        self._first_use()
                    except Exception as error:
                        if not retry.lost(error):
                            raise
                        self._first_use_again(error)

    def _first_use_again(self, error: Exception) -> None:
        """`_first_use` once more while the connection is lost (see `retry`)."""
        progress = retry.Progress(self.retry, None, None, error, type(self).__name__)
        while (wait := progress.next_wait()) is not None:
            time.sleep(wait)
            try:
                return self._first_use()
            except Exception as again:
                progress.failed(again)
        raise progress.error() from progress.last

    def _run(self, plan: Plan[T]) -> T:
        self._ensure_ready()
        try:
            item = next(plan.steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        grouped = self._grouped(plan, item)
        turn = nullcontext() if grouped is not None else self._turn(plan, item)
        with self._serial, turn, translated():
            try:
                outcome = self._drive(plan, item, grouped)
            except Exception as error:
                if not retry.lost(error):
                    raise
                outcome = self._again(plan, item, error)
        result = finish(plan, outcome)
        if plan.committed is not None:
            plan.committed()
        return result

    def _stream(self, plan: Plan[None]) -> Iterator[Any]:
        """Run a plan that emits values, holding no connection while the consumer
        works: each run of statements between two values on a connection of its own."""
        self._ensure_ready()
        item = resume(plan)
        while item is not None:
            if isinstance(item, Step):
                with self._serial, translated():
                    try:
                        item = self._drive(plan, item)
                    except Exception as error:
                        if not retry.lost(error):
                            raise
                        item = self._again(plan, item, error)
                if not isinstance(item, Emit):
                    return
            yield item.value
            item = resume(plan)

    @property
    def plans(self) -> Planner:
        """The planner, after the first use has decided the statement shapes (Citus's
        or not, `SaverBase._first_use`)."""
        if not self._ready:
            self._ensure_ready()
        return super().plans

    # -- async use is a mistake: say what to use instead ----------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        raise NotImplementedError(_ASYNC_USE)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        raise NotImplementedError(_ASYNC_USE)
        yield  # pragma: no cover  (makes this an async generator, like the base's)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        raise NotImplementedError(_ASYNC_USE)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        raise NotImplementedError(_ASYNC_USE)

    async def adelete_thread(self, thread_id: str) -> None:
        raise NotImplementedError(_ASYNC_USE)

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

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints of these runs, their writes and the blobs nothing
        else references; other runs of the same threads are untouched."""
        self._run(self.plans.delete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a whole thread (every namespace, write and blob) to an empty thread, in
        one transaction; raises `ThreadNotEmptyError` if the target has rows."""
        self._run(self.plans.copy_thread(source_thread_id, target_thread_id))

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest", keep_last: int = 1
    ) -> None:
        """`keep_latest`: keep each namespace's `keep_last` newest checkpoints and what
        reading and resuming them needs; `delete`: remove the threads. One transaction
        per thread (`keep_latest`) or per batch (`delete`)."""
        for plan in self.plans.prune(thread_ids, strategy, keep_last):
            self._run(plan)

    def list_threads(
        self,
        *,
        filter: dict[str, Any] | None = None,
        updated_before: datetime | None = None,
        updated_after: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ThreadPage:
        """A page of thread summaries, most recently updated first, and the cursor of
        the next page (see `Planner.list_threads`)."""
        return self._run(
            self.plans.list_threads(
                filter=filter,
                updated_before=updated_before,
                updated_after=updated_after,
                limit=limit,
                cursor=cursor,
            )
        )

    def count_threads(
        self,
        *,
        filter: dict[str, Any] | None = None,
        updated_before: datetime | None = None,
        updated_after: datetime | None = None,
    ) -> int:
        return self._run(
            self.plans.count_threads(
                filter=filter, updated_before=updated_before, updated_after=updated_after
            )
        )

    def sweep(
        self,
        *,
        idle_for: timedelta,
        strategy: str = "delete",
        keep: dict[str, Any] | None = None,
        limit: int = 1000,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> SweepReport:
        """Delete (or prune to their latest state) at most `limit` threads idle for
        `idle_for` (before `now`, default the current time), except those whose latest
        metadata contains `keep`; one short transaction per batch (see `Sweep`)."""
        sweep = self.plans.sweep(
            idle_for=idle_for,
            strategy=strategy,
            keep=keep,
            limit=limit,
            dry_run=dry_run,
            now=now,
        )
        for plan in sweep:
            self._run(plan)
        return sweep.report

    def stats(self, top: int = 10) -> Stats:
        """Rows and bytes per table, thread and checkpoint counts, activity, the `top`
        largest threads."""
        return self._run(self.plans.stats(top, self.schema))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """The base class's result in one statement, whatever the chain's depth."""
        return self._run(self.plans.delta_history(config, channels))

    def decode_blobs(self, *, batch: int = DECODE_BATCH) -> int:
        """Rewrite every blob row stored in the incremental encoding as a plain one (the
        official saver can read the database again) and remove its setting; returns
        the rows rewritten. Needs `blob_encoding="incremental"` on this saver; stop
        every writer with the option first."""
        decoding = self._decoding(batch)
        for plan in decoding:
            self._run(plan)
        self._decoded()
        return decoding.rows


_ASYNC_USE = (
    "SQLAlchemySaver is synchronous (graph.invoke / graph.stream): for ainvoke, astream "
    "and other async use, create an AsyncEngine (create_async_engine with asyncpg, "
    "psycopg or aiosqlite) and use checkpointer.AsyncSQLAlchemySaver"
)


def _memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )


__all__ = ["SQLAlchemySaver"]
