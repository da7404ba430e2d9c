"""What the async and the sync saver share: the planner, channel versions, the schema
the tables live in, the once-per-saver check that the database is migrated, and the
plan driver for code that does not await (the sync saver, and the async saver inside
a greenlet); `aio.adrive` is its twin for code that does."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import Connection, Engine, Pool
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from . import codec, fastpath, incremental, migrations, retry
from .dialects import detect_citus, for_name
from .plans import DecodeBlobs, Emit, Plan, Planner, Rows, Step
from .rows import SETTING_NAME
from .statements import for_dialect

T = TypeVar("T")
E = TypeVar("E", Engine, AsyncEngine)

_citus: WeakKeyDictionary[Pool, bool] = WeakKeyDictionary()
"""Per engine (its pool), whether its database has the `citus` extension (`detect_citus`)."""

log = logging.getLogger("checkpointer")


@dataclass(frozen=True)
class Released:
    """Rows of a plan's last statement, read before its connection was released."""

    rows: Rows | None


class Runner:
    """Runs steps on a SQLAlchemy `Connection` (opened on entry from `opening`, an
    engine's `connect()` or `begin()`): what executes a plan when the fast path does
    not. In a transaction (`done` a list) it keeps each step with its rows, so a
    transaction lost midway can be replayed (`retry.Progress`)."""

    __slots__ = ("_conn", "_opening", "commit_each", "done")

    def __init__(
        self,
        opening: AbstractContextManager[Connection],
        done: list[Any] | None = None,
        commit_each: bool = False,
    ) -> None:
        self._opening = opening
        self.done = done
        self.commit_each = commit_each

    def __enter__(self) -> Runner:
        self._conn = self._opening.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        try:
            return self._opening.__exit__(*exc)
        except Exception as error:
            if self.done is not None:  # COMMIT (or ROLLBACK) failed
                retry.note_done(error, self.done, finished=exc[0] is None)
                if exc[1] is not None and hasattr(exc[1], "_checkpointer_at"):
                    retry.note_step(error, exc[1]._checkpointer_at)
            raise
        finally:
            if exc[1] is not None and self.done is not None:
                retry.note_done(exc[1], self.done, finished=False)

    def execute(self, step: Step) -> Rows | None:
        for_name(self._conn.dialect.name).check_statement(self._conn, step.params)
        result = self._conn.execute(step.statement, step.params)
        rows = result.mappings().all() if step.fetch else None
        if self.commit_each:  # `Dialect.commit_each`: as if autocommit
            self._conn.commit()
        if self.done is not None:
            self.done.append((step, rows))
        return rows  # type: ignore[return-value]


def drive(plan: Plan[T], item: Step | Emit, execute: Callable[[Step], Rows | None]) -> Any:
    """The plan driver: run the plan's statements from `item` with `execute`, handing
    each its rows, until the plan returns (its result), reaches an `Emit` (returned, for
    the caller to hand over with no connection held) or a step marked `last` (its rows
    as `Released`, for `finish` once the connection is back in the pool)."""
    steps = plan.steps
    try:
        while True:
            if isinstance(item, Emit):
                return item
            rows = execute(item)
            if item.last:
                return Released(rows)
            item = steps.send(rows)
    except StopIteration as done:
        return done.value
    except Exception as error:
        retry.note_step(error, item)
        raise


def finish(plan: Plan[T], outcome: Any) -> T:
    """The plan's result from what `drive` returned."""
    if not isinstance(outcome, Released):
        return outcome  # type: ignore[no-any-return]
    try:
        plan.steps.send(outcome.rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("a plan asked for a statement after its last one")


def resume(plan: Plan[Any]) -> Step | Emit | None:
    """The plan's next item after an `Emit`, or None when it is done."""
    try:
        return plan.steps.send(None)
    except StopIteration:
        return None


class SaverBase(BaseCheckpointSaver[str]):
    """A checkpoint saver over SQLAlchemy: plans made here, executed by a subclass."""

    def __init__(
        self,
        dialect_name: str,
        *,
        serde: SerializerProtocol | None = None,
        schema: str | None = None,
        retry_policy: retry.Retry | bool | None = None,
        blob_encoding: str = incremental.PLAIN,
    ) -> None:
        super().__init__(serde=serde)
        self.retry = retry.policy(retry_policy)
        self.schema = migrations.validate_schema(schema, dialect_name)
        if blob_encoding not in incremental.ENCODINGS:
            raise ValueError(
                f"unknown blob_encoding {blob_encoding!r}: use one of "
                + ", ".join(repr(e) for e in incremental.ENCODINGS)
            )
        self.blob_encoding = blob_encoding
        encoder = None
        if blob_encoding != incremental.PLAIN:
            encoder = incremental.Encoder(writes=blob_encoding == incremental.NAME)
            if blob_encoding == incremental.NAME:
                incremental.require_zstd()
        statements = for_dialect(dialect_name, encoder is not None)
        self._planner = Planner(statements, self.serde, encoder)
        self._encoding_checked = False
        """The database's `blob_encoding` setting was recorded or checked (`_first_use`)."""
        self._schema_ready = False
        self._ready = False
        """The schema was checked and the fast path tried (`_first_use`)."""
        # Set by the executor on a single-writer database (SQLite): an asyncio or a
        # threading lock that writing plans take before checking out a connection.
        self._write_turn: Any = None
        self._fast: fastpath.FastPath | None = None

    def _views(self, engine: E) -> tuple[E, E]:
        """The saver's views of the caller's engine (same pool): for transactions, and
        autocommit for single statements (no BEGIN/COMMIT round trips). With a schema,
        every table name is rendered schema-qualified (no reliance on `search_path`)."""
        if self.schema:
            engine = engine.execution_options(schema_translate_map={None: self.schema})
        if self._planner.statements.dialect.commit_each:
            return engine, engine
        return engine, engine.execution_options(isolation_level="AUTOCOMMIT")

    def _use_engines(
        self, engine: Engine, transact: Engine, autocommit: Engine, fast_path: bool
    ) -> None:
        """The sync engines plans run on (the async saver's run them in a greenlet), and
        the fast path where the dialect allows it and `fast_path` is not off (see
        `checkpointer.fastpath`); not on an engine whose own `schema_translate_map` it
        would not apply."""
        self._transact, self._autocommit_sync = transact, autocommit
        if not fast_path or not self._planner.statements.dialect.direct:
            return
        if "schema_translate_map" in engine.get_execution_options():
            log.info(
                "fast path off for %s: the engine has its own schema_translate_map",
                engine.url,
            )
            return

        def fallback(step: Step) -> Rows | None:
            with Runner(autocommit.connect()) as runner:
                return runner.execute(step)

        views = {id(e): e for e in (transact, autocommit) if e is not engine}
        self._fast = fastpath.probe(engine, self.schema, fallback, list(views.values()))

    def _runner(self, plan: Plan[Any]) -> Runner | fastpath.FastConnection:
        """Where a plan's statements run: a transaction, the fast path when nothing
        observes statements, else an autocommit `Connection`."""
        if plan.atomic:
            return Runner(self._transact.begin(), [])
        fast = self._fast
        if fast is not None and fast.usable():
            return fast.connect()
        commit_each = self._planner.statements.dialect.commit_each
        return Runner(self._autocommit_sync.connect(), commit_each=commit_each)

    def _drive(self, plan: Plan[T], item: Step | Emit, turn: Any = None) -> Any:
        """Run a plan from `item` on one connection (the async saver runs this in a
        greenlet); see `drive`. `turn`: the write turn, for the fast path to take (see
        `_grouped`)."""
        fast = self._fast
        if fast is not None and fast.runs_plans and fast.usable():
            return fast.run(plan, drive, item, turn=turn)
        with self._runner(plan) as runner:
            return drive(plan, item, runner.execute)

    def _again(self, plan: Plan[Any], item: Step | Emit, error: Exception) -> Any:
        """After `_drive(plan, item)` failed with `error`: the plan from where it broke,
        on fresh connections, while the connection was lost and the policy allows; else
        the error (`retry.give_up` when lost). Sync; in a greenlet on the async saver
        only through `_replay`."""
        progress = retry.Progress(self.retry, plan, item, error, type(self).__name__)
        while (wait := progress.next_wait()) is not None:
            time.sleep(wait)
            try:
                return self._resume(plan, progress)
            except Exception as again:
                progress.failed(again)
        raise progress.error() from progress.last

    def _resume(self, plan: Plan[Any], progress: retry.Progress) -> Any:
        """One more try of a plan that lost its connection: a transaction replayed
        from its start, else the failed statement and what follows."""
        if plan.atomic:
            return self._replay(plan, progress)
        return self._drive(plan, progress.at)

    def _replay(self, plan: Plan[Any], progress: retry.Progress) -> Any:
        """A transaction lost midway, again in a new one: the statements it had run,
        each of which must read back what the plan was given the first time (plans
        do no I/O, so the plan is then where it was), then the rest of the plan."""
        with Runner(self._transact.begin(), []) as runner:
            for step, rows in progress.done:
                if not retry.same_rows(runner.execute(step), rows):
                    raise progress.diverged()
            if progress.finished:
                return progress.outcome()
            return drive(plan, progress.at, runner.execute)

    def _turn(self, plan: Plan[Any], first: Step | Emit) -> Any:
        """On a single-writer database (SQLite) a writing plan waits for its turn here,
        holding no connection and with no timeout; reads, and every plan on other
        databases, take nothing. (`nullcontext` serves `with` and `async with` alike.)"""
        return self._write_turn if self._writes(plan, first) else nullcontext()

    def _writes(self, plan: Plan[Any], first: Step | Emit) -> bool:
        """A plan that takes the write turn (on a single-writer database only)."""
        return self._write_turn is not None and (
            plan.atomic or (isinstance(first, Step) and first.statement.is_dml)
        )

    def _grouped(self, plan: Plan[Any], first: Step | Emit) -> Any:
        """The write turn, for a writing plan the fast path runs whole (SQLite), which
        takes the turn itself for a group of such plans (`fastpath.SqlitePath.run`);
        None where the caller takes the turn (`_turn`), or none is needed."""
        fast = self._fast
        if fast is not None and fast.runs_plans and self._writes(plan, first) and fast.usable():
            return self._write_turn
        return None

    def _first_use(self) -> None:
        """Once per saver, before its first plan (sync; in a greenlet on the async
        saver): fail closed unless the database is at the revision this package expects
        (SchemaNotReadyError, not cached while it is not), the dialect's one-time setup
        of the database (`Dialect.prepare`: SQLite's journal mode), then the fast path's
        trial statement (off for this saver if it fails)."""
        dialect = self._planner.statements.dialect
        citus = _citus.get(self._transact.pool)
        if (
            not self._schema_ready
            or dialect.prepares
            or not self._encoding_checked
            or citus is None
        ):
            with self._autocommit_sync.connect() as conn:
                if not self._schema_ready:
                    migrations.check_revision(conn, self.schema)
                    self._schema_ready = True
                dialect.prepare(conn)
                if citus is None:
                    citus = _citus[self._transact.pool] = detect_citus(conn)
                if not self._encoding_checked:
                    self._check_encoding(conn)
                    self._encoding_checked = True
        if citus and not dialect.citus:
            encoder = self._planner.encoder
            statements = for_dialect(dialect.name, encoder is not None, citus=True)
            self._planner = Planner(statements, self.serde, encoder)
        fast = self._fast
        if fast is not None and not fast.trial():
            self._fast = None
        self._ready = True

    def _check_encoding(self, conn: Connection) -> None:
        """Record that this saver writes encoded blob rows, or (without the option)
        refuse a database where such rows may exist (`BlobEncodingError`)."""
        encoder = self._planner.encoder
        if encoder is not None and self.blob_encoding == incremental.AUTO:
            s = self._planner.statements
            found = conn.execute(s.get_setting, {SETTING_NAME: incremental.SETTING}).scalar()
            encoder.writes = found == incremental.NAME
            return
        plan = self._planner.record_encoding()

        def execute(step: Step) -> Rows | None:
            result = conn.execute(step.statement, step.params)
            return result.mappings().all() if step.fetch else None  # type: ignore[return-value]

        try:
            first = next(plan.steps)
        except StopIteration:
            return
        try:
            finish(plan, drive(plan, first, execute))
        except DBAPIError as error:
            # A role granted only the three tables (deployments older than revision
            # 0005) may not read the setting: without the option, go on; an encoded
            # row is still refused when read (by its type).
            if encoder is not None or getattr(error.orig, "sqlstate", None) != "42501":
                raise
            log.warning(
                "cannot read %s (%s): grant SELECT on it to this role; encoded blob rows "
                "are still refused when read",
                "checkpointer_settings",
                error.orig,
            )

    def _decoded(self) -> None:
        """After `decode_blobs` removed the setting: should this saver write again, it
        records the setting again first (its next call is a first use)."""
        self._encoding_checked = False
        self._ready = False

    def _decoding(self, batch: int) -> DecodeBlobs:
        if self._planner.encoder is None:
            raise ValueError(
                'decode_blobs needs a saver created with blob_encoding="incremental" '
                "(a saver without it refuses a database that holds encoded rows)"
            )
        return self.plans.decode_blobs(batch)

    def _note_citus(self, conn: Connection) -> None:
        """Decide the engine's Citus capability on a connection at hand (`setup`)."""
        _citus[self._transact.pool] = detect_citus(conn)

    @property
    def plans(self) -> Planner:
        # `with_allowlist` clones the saver with another serde: follow it.
        if self._planner.serde is not self.serde:
            self._planner = Planner(self._planner.statements, self.serde, self._planner.encoder)
        return self._planner

    def get_next_version(self, current: str | None, channel: Any = None) -> str:
        return codec.next_version(current)
