"""Every saver operation as a plan: a generator that yields statements and receives
their rows, written once and driven by the async executor (`aio`) or the sync one
(`sync`). Neither executor knows SQL; plans do no I/O, so they run the same over any
connection and can be tested step by step without a database.

Values are encoded when a plan is made, before any connection is checked out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.sql.base import Executable

from . import codec, incremental
from .codec import BlobRow, CheckpointRow, WriteRow
from .errors import BlobEncodingError, ThreadNotEmptyError
from .ids import id_floor, id_time
from .reports import (
    Stats,
    SweepReport,
    TableStats,
    ThreadPage,
    ThreadSize,
    ThreadSummary,
    decode_cursor,
    encode_cursor,
)
from .rows import (
    AFTER_CHANNEL,
    AFTER_ID,
    AFTER_NS,
    AFTER_THREAD,
    AFTER_VERSION,
    B_BLOB,
    B_CHANNEL,
    B_CHECKPOINT_NS,
    B_THREAD_ID,
    B_TYPE,
    B_VERSION,
    BASES,
    BEFORE,
    BLOB,
    BLOBS,
    BYTES,
    CHANNEL,
    CHECKPOINT,
    CHECKPOINT_ID,
    CHECKPOINT_NS,
    CHECKPOINTS,
    COUNT,
    CUTOFF,
    DEAD_ROWS,
    ENCODED,
    FIRST,
    FREE_PAGES,
    HEAD,
    IDX,
    KEEP,
    KEEP_ALL,
    KEEP_LAST,
    KEY_ID,
    KEY_NS,
    KEY_THREAD,
    KIND,
    KIND_BLOB,
    KIND_CHECKPOINT,
    KIND_SEND,
    KIND_WRITE,
    LIMIT,
    LO_CHUNK,
    LO_ID,
    LO_OFFSET,
    LOCKED,
    METADATA,
    NEW_BLOB,
    NEW_TYPE,
    NEWEST,
    OLDEST,
    PAGE_COUNT,
    PAGE_SIZE,
    PARENT_CHECKPOINT_ID,
    PARENT_SENDS,
    PRUNE_NS,
    PRUNE_THREAD,
    ROWS,
    RUN_IDS,
    SETTING_NAME,
    SETTING_VALUE,
    SOURCE,
    TABLE,
    TARGET,
    TASK_ID,
    TASK_PATH,
    THREAD_ID,
    THREAD_IDS,
    THREADS,
    TOP,
    TYPE,
    UPDATED_AFTER,
    UPDATED_BEFORE,
    VALUE,
    VALUES_CHUNK,
    VERSION,
    VERSIONS,
    W_BLOB,
    W_CHANNEL,
    W_IDX,
    W_TYPE,
    WRITES,
    channel_key,
    values_key,
)
from .statements import LIST_CHUNK, SWEEP_BATCH, PageShape, Statements, ThreadShape

T = TypeVar("T")

IN_CHUNK = 1000
"""Ids per `IN (...)` list: far below SQLite's and asyncpg's bound-parameter limits."""

PRUNE_BATCH = 100
"""Threads deleted per transaction by `prune(strategy="delete")`."""

PRUNE_STRATEGIES = ("keep_latest", "delete")

LARGE_BLOB = 16 * 2**20
"""A blob over this size is staged in chunks where the dialect can (`staged_blobs`)."""

BLOB_CHUNK = 8 * 2**20
"""Bytes per statement when a large blob is staged."""


@dataclass(frozen=True)
class Step:
    """One statement to execute; `params` a dict, or a list of dicts for executemany."""

    statement: Executable
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    fetch: bool = False
    last: bool = False
    """No statement follows: the executor releases the connection before it hands
    back the rows, so decoding them holds none."""


@dataclass(frozen=True)
class Emit:
    """A value a streaming plan hands to its consumer between statements."""

    value: Any


Rows = Sequence[Mapping[str, Any]]
"""Rows as mappings by column name (`Result.mappings()`)."""
Steps = Generator[Step | Emit, Rows | None, T]


@dataclass
class Plan(Generic[T]):
    """A plan's steps, and whether they must run in one transaction (otherwise each
    statement commits on its own, which saves the BEGIN and COMMIT round trips)."""

    steps: Steps[T]
    atomic: bool = False
    committed: Callable[[], None] | None = None
    """Run by the executor once the plan succeeded and committed (the incremental
    encoding remembers what a put stored only then)."""


class Sweep:
    """A sweep as a series of plans, one transaction per batch of at most
    `SWEEP_BATCH` idle threads, made as they are run; `report` adds up what each
    batch removed (or would remove, with `dry_run`).

    A batch selects idle threads (latest root checkpoint id below `cutoff`) oldest
    first after the previous batch's last one and takes their locks, leaving out
    threads another sweeper or a writer holds (PostgreSQL; SQLite's batch holds the
    write lock from its first statement; MySQL's locks the rows of its threads,
    `_delete_locked`). Then, inside the same transaction, it
    removes every row of the threads still idle (`delete`: a thread that got a
    checkpoint since it was selected is left whole) or prunes each to its latest state
    (`keep_latest`). A checkpoint written after the thread went idle has a greater id
    than `cutoff` and is never touched; a writer that comes while the batch holds the
    thread waits for its commit."""

    def __init__(
        self,
        planner: Planner,
        *,
        cutoff: str,
        strategy: str,
        keep: dict[str, Any] | None,
        limit: int,
        dry_run: bool,
    ) -> None:
        self.planner = planner
        self.cutoff = cutoff
        self.strategy = strategy
        self.keep = keep
        self.limit = limit
        self.dry_run = dry_run
        self.report = SweepReport(strategy=strategy, dry_run=dry_run)
        self._after: tuple[str, str] | None = None
        self._done = False

    def __iter__(self) -> Iterator[Plan[None]]:
        while not self._done and self.report.threads < self.limit:
            yield Plan(self._batch(), atomic=not self.dry_run)

    def _batch(self) -> Steps[None]:
        p = self.planner
        s = p.statements
        yield from p._lock() if not self.dry_run else _none()
        # MySQL: the batch locks its threads' rows itself (`sweep_locks`), for either
        # strategy, in the order writers insert (a keep_latest batch that locked the
        # head rows first deadlocked with a run writing the thread, again and again)
        row_locks = s.sweep_locks if not self.dry_run else None
        if row_locks is not None and s.sweep_isolation is not None:
            yield Step(s.sweep_isolation)
        size = min(SWEEP_BATCH, self.limit - self.report.threads)
        statement, keep_params = s.sweep_batch(
            self._after is not None, self.keep, locking=row_locks is None
        )
        params: dict[str, Any] = {**keep_params, CUTOFF: self.cutoff, LIMIT: size}
        if self._after is not None:
            params[AFTER_ID], params[AFTER_THREAD] = self._after
        rows = (yield Step(statement, params, fetch=True)) or []
        if len(rows) < size:
            self._done = True
        if not rows:
            return
        self._after = (rows[-1][HEAD], rows[-1][THREAD_ID])
        # a candidate whose lock is held (another sweeper's, a writer's) is left out
        threads = [r[THREAD_ID] for r in rows if self.dry_run or r.get(LOCKED, True)]
        if not threads:
            return
        if row_locks is not None:
            if self.strategy == "delete":
                yield from self._delete_locked(row_locks, threads)
                return
            for lock in row_locks:
                yield Step(lock, {THREAD_IDS: threads}, fetch=True)
        delete_idle = s.sweep_delete
        if self.strategy == "delete" and not self.dry_run and delete_idle is not None:
            params = {THREAD_IDS: threads, CUTOFF: self.cutoff}
            gone = ((yield Step(delete_idle, params, fetch=True)) or [{}])[0]
            self._add(int(gone[THREADS]), gone)
            return
        before = ((yield Step(s.batch_sizes, {THREAD_IDS: threads}, fetch=True)) or [{}])[0]
        after: Mapping[str, Any] = {CHECKPOINTS: 0, BLOBS: 0, WRITES: 0, BYTES: 0}
        if self.dry_run:
            if self.strategy == "keep_latest":  # an upper bound: each keeps its root head
                after = {CHECKPOINTS: len(threads), BLOBS: 0, WRITES: 0, BYTES: 0}
        elif self.strategy == "delete":
            if not s.dialect.single_writer:
                # only a batch that holds the write lock knows its threads are still idle
                raise NotImplementedError(
                    f"sweep(strategy='delete') on {s.dialect.name!r} needs thread locks and "
                    "a one-statement `Threads.sweep_delete` (see `Dialect.thread_lock`)"
                )
            yield from _each(s.delete_threads, {THREAD_IDS: threads})
        else:
            for thread_id in threads:
                yield from p._keep_newest(thread_id, 1)
            after = ((yield Step(s.batch_sizes, {THREAD_IDS: threads}, fetch=True)) or [{}])[0]
        kinds = (CHECKPOINTS, BLOBS, WRITES, BYTES)
        self._add(len(threads), {k: int(before[k] or 0) - int(after[k] or 0) for k in kinds})

    def _delete_locked(self, row_locks: Sequence[Executable], threads: list[str]) -> Steps[None]:
        """MySQL: lock every row of `threads` (blobs, writes, then checkpoints; see
        `Threads.sweep_locks`), then delete those still idle: no checkpoint, in any
        namespace, at or after the cutoff. A thread with no checkpoint left (another
        sweeper or `delete_thread` removed it while this batch waited) is not counted.

        Deadlocks: the locks are taken in the order writers insert, so a `put` and a
        batch only wait for each other; if the server still picks the batch as a
        deadlock's victim (next to a prune or `delete_thread`), the executor runs it
        again, and it goes on only if it reads what it read the first time."""
        params = {THREAD_IDS: threads}
        locked: list[dict[str, Mapping[str, Any]]] = []
        for statement in row_locks:
            rows = (yield Step(statement, params, fetch=True)) or []
            locked.append({r[THREAD_ID]: r for r in rows})
        blob_rows, write_rows, checkpoint_rows = locked
        heads = {t: r[HEAD] for t, r in checkpoint_rows.items()}
        idle = [t for t in threads if t in heads and heads[t] < self.cutoff]
        if idle:
            yield from _each(self.planner.statements.delete_threads, {THREAD_IDS: idle})

        def total(rows: Mapping[str, Mapping[str, Any]], column: str) -> int:
            return sum(int(rows[t][column] or 0) for t in idle if t in rows)

        tables = {CHECKPOINTS: checkpoint_rows, BLOBS: blob_rows, WRITES: write_rows}
        removed = {kind: total(rows, ROWS) for kind, rows in tables.items()}
        removed[BYTES] = sum(total(rows, BYTES) for rows in tables.values())
        self._add(len(idle), removed)

    def _add(self, threads: int, removed: Mapping[str, Any]) -> None:
        r = self.report
        r.batches += 1
        r.threads += threads
        r.checkpoints += max(0, int(removed[CHECKPOINTS]))
        r.blobs += max(0, int(removed[BLOBS]))
        r.writes += max(0, int(removed[WRITES]))
        r.bytes += max(0, int(removed[BYTES] or 0))


DECODE_BATCH = 500
"""Encoded rows rewritten as plain per transaction by `decode_blobs`."""


class DecodeBlobs:
    """Rewriting a database's encoded blob rows as plain ones, as a series of plans:
    one transaction per batch of `batch` rows in key order (a delta's base is read
    from the database, plain or not: a rewritten base has the same bytes), then one
    that removes the `blob_encoding` setting if no encoded row is left. `rows` counts
    the rows rewritten. Writers with the option must be stopped first, or they write
    encoded rows again."""

    def __init__(self, planner: Planner, batch: int) -> None:
        self.planner = planner
        self.batch = batch
        self.rows = 0
        self._after: Mapping[str, Any] | None = None
        self._done = False
        self._encoder = incremental.Encoder(incremental.Memory(0, 0))

    def __iter__(self) -> Iterator[Plan[None]]:
        while not self._done:
            yield Plan(self._batch(), atomic=True)
        yield Plan(self._forget(), atomic=True)

    def _batch(self) -> Steps[None]:
        p = self.planner
        s = p.statements
        yield from p._lock()
        params: dict[str, Any] = {ENCODED: incremental.PREFIX + "%", LIMIT: self.batch}
        if self._after is not None:
            a = self._after
            params.update(
                {
                    AFTER_THREAD: a[THREAD_ID],
                    AFTER_NS: a[CHECKPOINT_NS],
                    AFTER_CHANNEL: a[CHANNEL],
                    AFTER_VERSION: a[VERSION],
                }
            )
        rows = (yield Step(s.encoded_blobs(self._after is not None), params, True)) or []
        if len(rows) < self.batch:
            self._done = True
        if not rows:
            return
        self._after = rows[-1]
        fetched = yield from p._bases(self._encoder.missing(rows))
        plain = self._encoder.decode(rows, fetched)
        yield Step(
            s.plain_blob,
            [
                {
                    "b_thread_id": r[THREAD_ID],
                    "b_checkpoint_ns": r[CHECKPOINT_NS],
                    "b_channel": r[CHANNEL],
                    "b_version": r[VERSION],
                    NEW_TYPE: r[TYPE],
                    NEW_BLOB: r[BLOB],
                }
                for r in plain
            ],
        )
        self.rows += len(rows)

    def _forget(self) -> Steps[None]:
        p = self.planner
        s = p.statements
        yield from p._lock()
        params = {ENCODED: incremental.PREFIX + "%", LIMIT: 1}
        left = yield Step(s.encoded_blobs(False), params, True)
        if not left:
            yield Step(s.delete_setting, {SETTING_NAME: incremental.SETTING})


class Planner:
    """Builds the plans of one dialect with one serializer."""

    large_blob = LARGE_BLOB
    blob_chunk = BLOB_CHUNK

    def __init__(
        self,
        statements: Statements,
        serde: SerializerProtocol,
        encoder: incremental.Encoder | None = None,
    ) -> None:
        self.statements = statements
        self.serde = serde
        self.encoder = encoder
        """The incremental blob encoding, None when off (the default)."""

    # -- writing -----------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[Plan[None], RunnableConfig]:
        row, blobs = codec.encode_checkpoint(self.serde, config, checkpoint, metadata, new_versions)
        if self.encoder is not None and self.encoder.writes:
            return self._put_encoded(row, blobs)
        dialect = self.statements.dialect
        dialect.check_keys(row)
        dialect.check_keys(blobs)
        if dialect.staged_blobs and any(self._is_large(b) for b in blobs):
            return Plan(self._put_staged(row, blobs), atomic=True), codec.next_config(row)
        if dialect.citus:
            return self._put_values(row, blobs), codec.next_config(row)
        if dialect.cte_dml:
            return Plan(
                _one(Step(self.statements.put_checkpoint, _with_blob_arrays(row, blobs)))
            ), (codec.next_config(row))
        return Plan(self._put_separately(row, blobs), atomic=bool(blobs)), codec.next_config(row)

    def _put_encoded(
        self, row: CheckpointRow, blobs: list[BlobRow]
    ) -> tuple[Plan[None], RunnableConfig]:
        """`put` with the incremental encoding: the same statements on encoded rows,
        and what they stored remembered once committed."""
        assert self.encoder is not None
        blobs, committed = self.encoder.encode(row, blobs)
        dialect = self.statements.dialect
        if dialect.staged_blobs and any(self._is_large(b) for b in blobs):
            plan = Plan(self._put_staged(row, blobs), atomic=True, committed=committed)
        elif dialect.citus:
            plan = self._put_values(row, blobs, committed)
        elif dialect.cte_dml:
            step = Step(self.statements.put_checkpoint, _with_blob_arrays(row, blobs))
            plan = Plan(_one(step), committed=committed)
        else:
            plan = Plan(self._put_separately(row, blobs), atomic=bool(blobs), committed=committed)
        return plan, codec.next_config(row)

    def _put_values(
        self,
        row: CheckpointRow,
        blobs: list[BlobRow],
        committed: Callable[[], None] | None = None,
    ) -> Plan[None]:
        """Citus: the blobs, then the checkpoint naming them, each a single-shard
        `VALUES` insert (a data-modifying CTE cannot be planned once for every call, as a
        prepared statement's generic plan is). No transaction: a blob row is the
        immutable value of one channel version, invisible until a checkpoint names it,
        so a call that fails between the two leaves nothing a reader sees (the
        unreferenced blobs go with the next `prune` or sweep of the thread), as the
        official saver's own `put` on an autocommit connection."""
        s = self.statements
        assert s.put_checkpoint_values is not None
        steps = [
            Step(s.put_blob_values(len(c)), _blob_values(row, c))
            for c in _chunks(blobs, VALUES_CHUNK)
        ]
        steps.append(Step(s.put_checkpoint_values, {**row, TYPE: None}))
        return Plan(_each_step(steps), committed=committed)

    def _put_separately(self, row: CheckpointRow, blobs: list[BlobRow]) -> Steps[None]:
        if blobs:
            if self.statements.dialect.gap_locks:
                # in key order, as a sweep batch locks them (`Threads.sweep_locks`): a
                # row inserted out of order could land in a gap the batch locked
                # while the batch waits for one inserted before it (a deadlock)
                blobs = sorted(blobs, key=lambda b: (b[CHANNEL], b[VERSION]))
            yield Step(self.statements.put_blobs, blobs)
        yield Step(self.statements.put_checkpoint, {**row, TYPE: None})

    def _put_staged(self, row: CheckpointRow, blobs: list[BlobRow]) -> Steps[None]:
        """Large blobs sent in chunks to a large object each, stored from there, then the
        checkpoint with the others: client memory stays near `BLOB_CHUNK` per statement
        whatever the value's size (`Dialect.staged_blobs`)."""
        s = self.statements
        store, drop = s.put_staged_blob, s.drop_staged_blob
        assert store is not None
        assert drop is not None
        small = []
        for blob in blobs:
            data = blob["blob"]
            if data is None or not self._is_large(blob):
                small.append(blob)
                continue
            lo_id = yield from self._stage(data)
            key = {k: v for k, v in blob.items() if k != BLOB}
            yield Step(store, {**key, LO_ID: lo_id})
            yield Step(drop, {LO_ID: lo_id})
        yield Step(s.put_checkpoint, _with_blob_arrays(row, small))

    def _stage(self, data: bytes) -> Steps[Any]:
        """Send `data` in chunks of `blob_chunk` to a new large object; returns its id."""
        s = self.statements
        stage, append = s.stage_blob, s.append_blob
        assert stage is not None
        assert append is not None
        size = self.blob_chunk
        rows = yield Step(stage, {LO_CHUNK: data[:size]}, fetch=True)
        assert rows, "lo_from_bytea returns one row"
        lo_id = rows[0][LO_ID]
        for offset in range(size, len(data), size):
            chunk = data[offset : offset + size]
            yield Step(append, {LO_ID: lo_id, LO_OFFSET: offset, LO_CHUNK: chunk})
        return lo_id

    def _put_writes_staged(self, rows: list[WriteRow]) -> Steps[None]:
        """A task's writes with large values, as `_put_staged` stores large blobs: each
        large value sent in chunks to a large object and stored from there, the
        others in one `put_writes` statement, all in one transaction."""
        s = self.statements
        store, drop = s.put_staged_write, s.drop_staged_blob
        assert store is not None
        assert drop is not None
        small = []
        for write in rows:
            if not self._is_large(write):
                small.append(write)
                continue
            lo_id = yield from self._stage(write["blob"])
            key = {k: v for k, v in write.items() if k != BLOB}
            yield Step(store, {**key, LO_ID: lo_id})
            yield Step(drop, {LO_ID: lo_id})
        if small:
            yield Step(s.put_writes, _write_arrays(small))

    def _is_large(self, blob: BlobRow | WriteRow) -> bool:
        data = blob["blob"]
        return data is not None and len(data) > self.large_blob

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Plan[None]:
        rows = _last_per_key(codec.encode_writes(self.serde, config, writes, task_id, task_path))
        if not rows:
            return Plan(_none())
        self.statements.dialect.check_keys(rows)
        if self.statements.dialect.staged_blobs and any(self._is_large(r) for r in rows):
            return Plan(self._put_writes_staged(rows), atomic=True)
        if self.statements.dialect.citus:
            steps = [
                Step(self.statements.put_writes_values(len(c)), _write_values(c))
                for c in _chunks(rows, VALUES_CHUNK)
            ]
            return Plan(_each_step(steps), atomic=len(steps) > 1)
        if self.statements.dialect.batch_as_arrays:
            return Plan(_one(Step(self.statements.put_writes, _write_arrays(rows))))
        return Plan(_one(Step(self.statements.put_writes, rows)), atomic=len(rows) > 1)

    def delete_thread(self, thread_id: str) -> Plan[None]:
        return Plan(
            _each(self.statements.delete_thread, {THREAD_ID: codec.thread_key(thread_id)}),
            atomic=True,
        )

    # -- reading -----------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> Plan[CheckpointTuple | None]:
        where = codec.target(config)
        if where["checkpoint_id"] is None:
            params: dict[str, Any] = {
                THREAD_ID: where["thread_id"],
                CHECKPOINT_NS: where["checkpoint_ns"],
            }
            step = Step(self.statements.get_latest, params, fetch=True, last=True)
        else:
            step = Step(self.statements.get_by_id, dict(where), fetch=True, last=True)
        if self.encoder is not None:
            return Plan(self._first_encoded(replace(step, last=False)))
        return Plan(self._first(step))

    def _first(self, step: Step) -> Steps[CheckpointTuple | None]:
        rows = yield step
        tuples = self.decode(rows or ())
        return tuples[0] if tuples else None

    def _first_encoded(self, step: Step) -> Steps[CheckpointTuple | None]:
        """`_first` with the incremental encoding: bases no row brought and `Memory`
        does not hold are read by one more statement; what was read is remembered."""
        rows = yield step
        rows = yield from self._plain_rows(rows or (), remember=True)
        tuples = self.decode(rows)
        return tuples[0] if tuples else None

    def _plain_rows(self, rows: Rows, remember: bool = False) -> Steps[Rows]:
        """A read's rows with every encoded blob row replaced by its plain equivalent."""
        encoder = self.encoder
        assert encoder is not None
        blob_rows = [r for r in rows if r[KIND] == KIND_BLOB]
        checkpoints = [r for r in rows if r[KIND] == KIND_CHECKPOINT]
        known = None
        if remember and len(checkpoints) == 1:
            c = checkpoints[0]
            known = (c[THREAD_ID], c[CHECKPOINT_NS], c[CHECKPOINT_ID])
        if known is None and not any(incremental.is_encoded(r[TYPE]) for r in blob_rows):
            return rows
        fetched = yield from self._bases(encoder.missing(blob_rows))
        decoded = iter(encoder.decode(blob_rows, fetched, known))
        return [next(decoded) if r[KIND] == KIND_BLOB else r for r in rows]

    def _bases(self, need: Mapping[tuple[str, str], set[tuple[str, str]]]) -> Steps[list[Any]]:
        fetched: list[Any] = []
        for (thread_id, ns), keys in need.items():
            params = {THREAD_ID: thread_id, CHECKPOINT_NS: ns, BASES: sorted(keys)}
            rows = yield Step(self.statements.blobs_by_version, params, fetch=True)
            fetched += rows or ()
        return fetched

    def list_checkpoints(
        self,
        config: RunnableConfig | None,
        *,
        filter: Mapping[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Plan[None]:
        params: dict[str, Any] = {}
        shape: dict[str, bool] = {}
        if config is not None:
            configurable = config.get("configurable") or {}
            where = codec.target(config)
            params[THREAD_ID] = where["thread_id"]
            shape["thread"] = True
            if configurable.get("checkpoint_ns") is not None:
                params[CHECKPOINT_NS] = where["checkpoint_ns"]
                shape["namespace"] = True
            if where["checkpoint_id"] is not None:
                params[CHECKPOINT_ID] = where["checkpoint_id"]
                shape["checkpoint_id"] = True
        if before is not None:
            before_id = (before.get("configurable") or {}).get("checkpoint_id")
            if before_id is None:
                raise ValueError(
                    'before must name a checkpoint: config["configurable"] has no "checkpoint_id"'
                )
            params[BEFORE] = str(before_id)
            shape["before"] = True
        if filter is not None and not isinstance(filter, Mapping):
            raise TypeError(f"filter must be a mapping of metadata keys, got {filter!r}")
        if limit is not None:
            limit = int(limit)
            if limit <= 0:
                return Plan(_none())
        clean = codec.clean_json(dict(filter), "filter") if filter else None
        return Plan(self._list(shape, clean, params, limit))

    def _list(
        self,
        shape: dict[str, bool],
        filter: dict[str, Any] | None,
        params: dict[str, Any],
        limit: int | None,
    ) -> Steps[None]:
        """Pages of at most `LIST_CHUNK` checkpoints, newest first (keyset pagination),
        until `limit` (if any) is reached: a full page has a constant LIMIT, the last
        page of a limit a bound one."""
        key: dict[str, str] = {}
        remaining = limit
        while True:
            size = LIST_CHUNK if remaining is None else min(remaining, LIST_CHUNK)
            whole = remaining is None or remaining > LIST_CHUNK
            page = PageShape(**shape, chunk=whole, limit=not whole, after_key=bool(key))
            statement, filter_params = self.statements.list_page(page, filter)
            page_params = {**params, **filter_params, **key}
            if not whole:
                page_params[LIMIT] = size
            rows = yield Step(statement, page_params, True)
            if self.encoder is not None:
                rows = yield from self._plain_rows(rows or ())
            tuples = self.decode(rows or ())
            for item in tuples:
                yield Emit(item)
            if len(tuples) < size:
                return
            if remaining is not None:
                remaining -= len(tuples)
                if remaining <= 0:
                    return
            last = tuples[-1].config["configurable"]
            key = {
                KEY_ID: last["checkpoint_id"],
                KEY_THREAD: last["thread_id"],
                KEY_NS: last["checkpoint_ns"],
            }

    # -- operations ----------------------------------------------------------------

    def _lock(self) -> Steps[None]:
        """First step of a transaction that reads before it writes (SQLite only)."""
        if self.statements.write_lock is not None:
            yield Step(self.statements.write_lock)

    def delete_for_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        """Delete the checkpoints whose metadata `run_id` is one of `run_ids`, their
        writes, and the blobs of their threads no remaining checkpoint references.
        Checkpoints of other runs are untouched (a survivor whose parent was deleted
        keeps pointing at it). One transaction."""
        ids = _names(run_ids, "run_ids")
        if not ids:
            return Plan(_none())
        return Plan(self._delete_for_runs(ids), atomic=True)

    def _delete_for_runs(self, run_ids: list[str]) -> Steps[None]:
        s = self.statements
        yield from self._lock()
        threads: set[str] = set()
        for chunk in _chunks(run_ids, IN_CHUNK):
            rows = yield Step(s.run_threads, {RUN_IDS: chunk}, fetch=True)
            found = {r[THREAD_ID] for r in rows or ()}
            if not found:
                continue
            threads |= found
            yield Step(s.delete_run_writes, {RUN_IDS: chunk})
            yield Step(s.delete_run_checkpoints, {RUN_IDS: chunk})
        for chunk in _chunks(sorted(threads), IN_CHUNK):
            yield Step(s.delete_unreferenced_blobs, {THREAD_IDS: chunk})

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> Plan[None]:
        """Copy every checkpoint (all namespaces, ids unchanged), write and blob of one
        thread to another, in one transaction. The target must be empty: a target
        that has checkpoints or writes raises `ThreadNotEmptyError` and nothing is
        copied. A source without checkpoints copies nothing and is not an error."""
        source = _name(source_thread_id, "source_thread_id")
        target = _name(target_thread_id, "target_thread_id")
        if source == target:
            raise ValueError(f"copy_thread: source and target are the same thread {source!r}")
        self.statements.dialect.check_keys({THREAD_ID: target})
        return Plan(self._copy_thread(source, target), atomic=True)

    def _copy_thread(self, source: str, target: str) -> Steps[None]:
        s = self.statements
        yield from self._lock()
        rows = yield Step(s.thread_rows, {THREAD_ID: target}, fetch=True)
        state = (rows or [{}])[0]
        if any(state.values()):
            kinds = ", ".join(k for k, v in state.items() if v)
            raise ThreadNotEmptyError(
                f"copy_thread: target thread {target!r} already has rows ({kinds}); "
                "delete it first (delete_thread) or copy to a new thread id"
            )
        for statement in s.copy_thread:
            yield Step(statement, {SOURCE: source, TARGET: target})

    def prune(
        self, thread_ids: Sequence[str], strategy: str = "keep_latest", keep_last: int = 1
    ) -> Iterator[Plan[None]]:
        """One plan (one transaction) per batch of `PRUNE_BATCH` threads for `delete`,
        per thread for `keep_latest`, made as they are run. Arguments are checked
        before anything runs."""
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(
                f"unknown prune strategy {strategy!r}: use one of {', '.join(PRUNE_STRATEGIES)}"
            )
        keep_last = _keep_last(keep_last)
        ids = list(dict.fromkeys(_names(thread_ids, "thread_ids")))
        if strategy == "delete":
            return (
                Plan(_each(self.statements.delete_threads, {THREAD_IDS: chunk}), atomic=True)
                for chunk in _chunks(ids, PRUNE_BATCH)
            )
        return (
            Plan(self._locked(self._keep_newest(thread_id, keep_last)), atomic=True)
            for thread_id in ids
        )

    def _locked(self, steps: Steps[Any]) -> Steps[None]:
        yield from self._lock()
        yield from steps

    def _keep_newest(self, thread_id: str, keep_last: int) -> Steps[int]:
        """Keep, per namespace, the `keep_last` newest checkpoints with their writes,
        plus what reading each needs: the parent holding its pending sends (format
        < 4), and for each `DeltaChannel` not stored in it, the ancestors (with their
        writes) back to the nearest one that stores the channel (a `_DeltaSnapshot`).
        Delete the older rest, then the blobs nothing kept references. Returns how
        many namespaces were trimmed.

        Only rows older than the latest checkpoint seen are deleted, so a run that
        saves while the thread is pruned loses nothing."""
        s = self.statements
        rows = yield Step(s.prune_newest, {THREAD_ID: thread_id, KEEP_LAST: keep_last}, fetch=True)
        by_ns: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for r in rows or ():
            by_ns[r[CHECKPOINT_NS]].append(r)
        trimmed = 0
        for ns, newest in by_ns.items():
            if newest[0][COUNT] <= keep_last:
                continue
            head = newest[0][CHECKPOINT_ID]
            keep = [r[CHECKPOINT_ID] for r in newest]
            for r in newest:
                if r[PARENT_SENDS]:
                    keep.append(r[PARENT_CHECKPOINT_ID])
                channels = delta_channels(r[METADATA], r[VERSIONS])
                if channels:
                    chain = yield Step(
                        s.keep_chain(len(channels)),
                        {
                            THREAD_ID: thread_id,
                            CHECKPOINT_NS: ns,
                            CHECKPOINT_ID: r[CHECKPOINT_ID],
                            **{channel_key(i): ch for i, ch in enumerate(channels)},
                        },
                        fetch=True,
                    )
                    keep += [c[CHECKPOINT_ID] for c in chain or ()]
            keep = list(dict.fromkeys(keep))
            params = {
                PRUNE_THREAD: thread_id,
                PRUNE_NS: ns,
                HEAD: head,
                KEEP: keep,
                KEEP_ALL: keep,
            }
            for statement in s.prune_trim:
                yield Step(statement, params)
            trimmed += 1
        if trimmed:
            yield Step(s.delete_unreferenced_blobs, {THREAD_IDS: [thread_id]})
        return trimmed

    # -- the incremental encoding ------------------------------------------------------

    def record_encoding(self) -> Plan[None]:
        """Before a saver with the incremental encoding writes: record in the database
        that encoded rows may exist; without it, check none do (`BlobEncodingError`)."""
        s = self.statements
        if self.encoder is not None:
            params = {SETTING_NAME: incremental.SETTING, SETTING_VALUE: incremental.NAME}
            return Plan(_one(Step(s.put_setting, params)))
        return Plan(self._refuse_encoded())

    def _refuse_encoded(self) -> Steps[None]:
        rows = yield Step(self.statements.get_setting, {SETTING_NAME: incremental.SETTING}, True)
        value = rows[0]["value"] if rows else None
        if value == incremental.NAME:
            raise BlobEncodingError(
                "this database holds blob rows in the incremental encoding (its "
                'checkpointer_settings record blob_encoding="incremental"), which a saver '
                "without that option cannot read: create the saver with "
                'blob_encoding="incremental", or rewrite the rows as plain blobs first '
                "(`checkpointer decode-blobs URL`, or `decode_blobs()` on a saver with the "
                "option)"
            )

    def decode_blobs(self, batch: int = DECODE_BATCH) -> DecodeBlobs:
        """The plans that rewrite every encoded blob row as a plain one (see
        `DecodeBlobs`)."""
        batch = int(batch)
        if batch <= 0:
            raise ValueError(f"batch must be a positive number of rows, got {batch}")
        return DecodeBlobs(self, batch)

    # -- threads, sweeps and stats ---------------------------------------------------

    def list_threads(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        updated_before: datetime | None = None,
        updated_after: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Plan[ThreadPage]:
        """A page of threads, most recently updated first (see `Threads.thread_page`):
        one statement. `filter` is containment on the latest root checkpoint's
        metadata, as `list`'s."""
        limit = int(limit)
        if limit <= 0:
            raise ValueError(f"limit must be a positive number of threads, got {limit}")
        params, shape_args = _time_bounds(updated_before, updated_after)
        if cursor is not None:
            params[AFTER_ID], params[AFTER_THREAD] = decode_cursor(cursor)
        shape = ThreadShape(after_key=cursor is not None, **shape_args)
        clean = _filter(filter, "filter")
        statement, filter_params = self.statements.thread_page(shape, clean)
        step = Step(statement, {**params, **filter_params, LIMIT: limit}, fetch=True, last=True)
        return Plan(self._thread_page(step, limit))

    def _thread_page(self, step: Step, limit: int) -> Steps[ThreadPage]:
        rows = yield step
        threads = [
            ThreadSummary(
                thread_id=r[THREAD_ID],
                created_at=id_time(r[FIRST]),
                updated_at=id_time(r[HEAD]),
                checkpoint_count=int(r[CHECKPOINTS]),
                checkpoint_id=r[HEAD],
                metadata=dict(r[METADATA] or {}),
            )
            for r in rows or ()
        ]
        last = threads[-1] if len(threads) == limit else None
        return ThreadPage(
            threads, encode_cursor(last.checkpoint_id, last.thread_id) if last else None
        )

    def count_threads(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        updated_before: datetime | None = None,
        updated_after: datetime | None = None,
    ) -> Plan[int]:
        """How many threads `list_threads` would list with these filters."""
        params, shape_args = _time_bounds(updated_before, updated_after)
        statement, filter_params = self.statements.thread_count(
            ThreadShape(**shape_args), _filter(filter, "filter")
        )
        step = Step(statement, {**params, **filter_params}, fetch=True, last=True)
        return Plan(self._count(step))

    def _count(self, step: Step) -> Steps[int]:
        rows = yield step
        return int((rows or [{COUNT: 0}])[0][COUNT])

    def sweep(
        self,
        *,
        idle_for: timedelta,
        strategy: str = "delete",
        keep: Mapping[str, Any] | None = None,
        limit: int = 1000,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> Sweep:
        """The plans of a sweep (see `Sweep`), arguments checked first. `now` (default:
        the current time) fixes the sweep's clock: a dry run and the sweep that follows
        it with the same `now` select the same idle threads."""
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(
                f"unknown sweep strategy {strategy!r}: use one of {', '.join(PRUNE_STRATEGIES)}"
            )
        if not isinstance(idle_for, timedelta) or idle_for < timedelta(0):
            raise ValueError(f"idle_for must be a non-negative timedelta, got {idle_for!r}")
        limit = int(limit)
        if limit <= 0:
            raise ValueError(f"limit must be a positive number of threads, got {limit}")
        if now is not None and not isinstance(now, datetime):
            raise TypeError(f"now must be a datetime, got {now!r}")
        moment = now if now is not None else datetime.now(timezone.utc)
        return Sweep(
            self,
            cutoff=id_floor(moment - idle_for),
            strategy=strategy,
            keep=_filter(keep, "keep"),
            limit=limit,
            dry_run=dry_run,
        )

    def stats(self, top: int = 10, schema: str | None = None) -> Plan[Stats]:
        """Rows and bytes per table, activity, the largest threads: a few statements,
        no transaction."""
        top = int(top)
        if top < 0:
            raise ValueError(f"top must be zero or more, got {top}")
        return Plan(self._stats(top, schema))

    def _stats(self, top: int, schema: str | None) -> Steps[Stats]:
        s = self.statements
        counted = yield Step(s.table_rows, fetch=True)
        sized = yield Step(s.table_sizes, s.dialect.table_sizes_params(schema) or None, fetch=True)
        active = yield Step(s.activity, fetch=True)
        largest: Rows = []
        if top:
            largest = (yield Step(s.largest_threads, {TOP: top}, fetch=True)) or []
        pages: Rows = []
        if s.file_pages is not None:
            pages = (yield Step(s.file_pages, fetch=True)) or []
        rows = {r[TABLE]: int(r[ROWS]) for r in counted or ()}
        sizes = {r[TABLE]: r for r in sized or ()}
        a = (active or [{}])[0]
        tables = [
            TableStats(
                table=name,
                rows=rows.get(name, 0),
                bytes=int((sizes.get(name) or {}).get(BYTES) or 0),
                dead_rows=(
                    None
                    if (sizes.get(name) or {}).get(DEAD_ROWS) is None
                    else int(sizes[name][DEAD_ROWS])
                ),
            )
            for name in rows
        ]
        database_bytes = free_bytes = None
        if pages:
            p = pages[0]
            database_bytes = int(p[PAGE_COUNT]) * int(p[PAGE_SIZE])
            free_bytes = int(p[FREE_PAGES]) * int(p[PAGE_SIZE])
        return Stats(
            tables=tables,
            threads=int(a.get(THREADS) or 0),
            checkpoints=int(a.get(CHECKPOINTS) or 0),
            oldest=id_time(a.get(OLDEST)),
            newest=id_time(a.get(NEWEST)),
            largest_threads=[ThreadSize(r[THREAD_ID], int(r[BYTES] or 0)) for r in largest],
            database_bytes=database_bytes,
            free_bytes=free_bytes,
        )

    def delta_history(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Plan[dict[str, DeltaChannelHistory]]:
        """`get_delta_channel_history` in one statement, whatever the depth: walk the
        parent chain (not id order) of the target's namespace, per channel up to the
        nearest ancestor storing a value (the seed), and return the writes on the way
        oldest first, each checkpoint's in `writes_sort_key` order."""
        if isinstance(channels, str):
            raise TypeError(
                f"channels must be a list of channel names, not the string {channels!r}"
            )
        names = list(dict.fromkeys(str(c) for c in channels))
        if not names:
            return Plan(_value({}))
        where = codec.target(config)
        params: dict[str, Any] = {**where, **{channel_key(i): ch for i, ch in enumerate(names)}}
        return Plan(self._delta_history(names, params))

    def _delta_history(
        self, channels: list[str], params: dict[str, Any]
    ) -> Steps[dict[str, DeltaChannelHistory]]:
        statement = self.statements.delta_history(len(channels))
        rows = yield Step(statement, params, fetch=True, last=self.encoder is None)
        if self.encoder is not None:
            rows = yield from self._plain_seeds(rows or (), params)
        found: dict[str, list[Mapping[str, Any]]] = {ch: [] for ch in channels}
        seeds: dict[str, Any] = {}
        for r in rows or ():
            channel, kind = r[CHANNEL], r[KIND]
            if kind == KIND_WRITE:
                found[channel].append(r)
            elif kind == KIND_BLOB:
                try:
                    seeds[channel] = self.serde.loads_typed((r[TYPE], r[BLOB]))
                except Exception as error:
                    codec.refuse_encoded(r[TYPE], error)
                    raise
            else:
                seeds[channel] = (r[VALUE] or {}).get(channel)
        out: dict[str, DeltaChannelHistory] = {}
        for channel in channels:
            ordered = sorted(  # oldest checkpoint first: ancestors have smaller ids
                found[channel],
                key=lambda r: (
                    r[CHECKPOINT_ID],
                    writes_sort_key(r[TASK_PATH] or "", r[TASK_ID], r[IDX]),
                ),
            )
            entry = DeltaChannelHistory(
                writes=[
                    (r[TASK_ID], channel, self.serde.loads_typed((r[TYPE], r[BLOB])))
                    for r in ordered
                ]
            )
            if channel in seeds:
                entry["seed"] = seeds[channel]
            out[channel] = entry
        return out

    def _plain_seeds(self, rows: Rows, params: Mapping[str, Any]) -> Steps[Rows]:
        """Delta history's seed rows (which carry no thread or version) made plain."""
        encoder = self.encoder
        assert encoder is not None
        seeds = [
            {
                THREAD_ID: params[THREAD_ID],
                CHECKPOINT_NS: params[CHECKPOINT_NS],
                CHANNEL: r[CHANNEL],
                VERSION: None,
                TYPE: r[TYPE],
                BLOB: r[BLOB],
            }
            for r in rows
            if r[KIND] == KIND_BLOB
        ]
        if not any(incremental.is_encoded(r[TYPE]) for r in seeds):
            return rows
        fetched = yield from self._bases(encoder.missing(seeds))
        decoded = iter(encoder.decode(seeds, fetched))
        out: list[Mapping[str, Any]] = []
        for r in rows:
            if r[KIND] == KIND_BLOB:
                plain = next(decoded)
                r = {**r, TYPE: plain[TYPE], BLOB: plain[BLOB]}
            out.append(r)
        return out

    def decode(self, rows: Rows) -> list[CheckpointTuple]:
        """Group a read's tagged rows back into checkpoint tuples, newest first."""
        checkpoints: list[Mapping[str, Any]] = []
        blob_rows: dict[tuple[str, str, str, str], Mapping[str, Any]] = {}
        writes: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for r in rows:
            kind = r[KIND]
            if kind == KIND_CHECKPOINT:
                checkpoints.append(r)
            elif kind == KIND_BLOB:
                blob_rows[(r[THREAD_ID], r[CHECKPOINT_NS], r[CHANNEL], r[VERSION])] = r
            else:
                writes[(kind, r[THREAD_ID], r[CHECKPOINT_NS], r[CHECKPOINT_ID])].append(r)
        checkpoints.sort(
            key=lambda r: (r[CHECKPOINT_ID], r[THREAD_ID], r[CHECKPOINT_NS]), reverse=True
        )
        out = []
        for c in checkpoints:
            thread_id, ns = c[THREAD_ID], c[CHECKPOINT_NS]
            versions = (c[CHECKPOINT] or {}).get("channel_versions") or {}
            blobs = [
                blob_rows[key]
                for channel, version in versions.items()
                if (key := (thread_id, ns, channel, str(version))) in blob_rows
            ]
            out.append(
                codec.decode_tuple(
                    self.serde,
                    c,
                    blobs,
                    writes.get((KIND_WRITE, thread_id, ns, c[CHECKPOINT_ID]), ()),
                    writes.get((KIND_SEND, thread_id, ns, c[PARENT_CHECKPOINT_ID]), ()),
                )
            )
        return out


def delta_channels(
    metadata: Mapping[str, Any] | None, versions: Mapping[str, Any] | None
) -> list[str]:
    """The channels of a checkpoint that a `DeltaChannel` backs: those LangGraph keeps
    update counters for in the metadata; for a LangGraph.js thread (marked
    `delta_writes_versioned`, no counters), every versioned channel, to be safe.
    Only channels with a version have anything to reconstruct."""
    metadata = metadata or {}
    versions = versions or {}
    counters = metadata.get("counters_since_delta_snapshot")
    names = set(counters) if isinstance(counters, Mapping) else set()
    if metadata.get("delta_writes_versioned"):
        names |= set(versions)
    return sorted(n for n in names if n in versions)


def _keep_last(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"keep_last must be a whole number of checkpoints >= 1, got {value!r}")
    return value


def _filter(value: Mapping[str, Any] | None, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping of metadata keys, got {value!r}")
    return codec.clean_json(dict(value), what) if value else None


def _time_bounds(
    updated_before: datetime | None, updated_after: datetime | None
) -> tuple[dict[str, Any], dict[str, bool]]:
    params: dict[str, Any] = {}
    shape: dict[str, bool] = {}
    for key, moment in ((UPDATED_BEFORE, updated_before), (UPDATED_AFTER, updated_after)):
        if moment is None:
            continue
        if not isinstance(moment, datetime):
            raise TypeError(f"{key} must be a datetime, got {moment!r}")
        params[key] = id_floor(moment)
        shape[key] = True
    return params, shape


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _names(values: Sequence[str], what: str) -> list[str]:
    """A list of ids, refusing a lone string (which would iterate as characters)."""
    if isinstance(values, (str, bytes)):
        raise TypeError(
            f"{what} must be a list of ids, not the string {values!r}: pass [{values!r}]"
        )
    if not isinstance(values, Iterable):
        raise TypeError(f"{what} must be a list of ids, got {values!r}")
    out = []
    for v in values:
        if not isinstance(v, str) or not v:
            raise TypeError(f"{what} must hold non-empty strings, got {v!r}")
        out.append(v)
    return out


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _value(value: T) -> Steps[T]:
    return value
    yield  # pragma: no cover - makes this a generator


def _one(step: Step) -> Steps[None]:
    yield step


def _each(statements: Sequence[Executable], params: Mapping[str, Any]) -> Steps[None]:
    for statement in statements:
        yield Step(statement, params)


def _each_step(steps: Sequence[Step]) -> Steps[None]:
    for step in steps:  # noqa: UP028 - not `yield from`: a list takes no `send`
        yield step


def _none() -> Steps[None]:
    return
    yield  # pragma: no cover - makes this a generator


def _with_blob_arrays(row: CheckpointRow, blobs: list[BlobRow]) -> dict[str, Any]:
    return {
        **row,
        TYPE: None,
        B_THREAD_ID: row["thread_id"],
        B_CHECKPOINT_NS: row["checkpoint_ns"],
        B_CHANNEL: [b["channel"] for b in blobs],
        B_VERSION: [b["version"] for b in blobs],
        B_TYPE: [b["type"] for b in blobs],
        B_BLOB: [b["blob"] for b in blobs],
    }


def _blob_values(row: CheckpointRow, blobs: Sequence[BlobRow]) -> dict[str, Any]:
    """A checkpoint's blobs bound one by one (`Writes.put_blob_values`)."""
    out: dict[str, Any] = {B_THREAD_ID: row["thread_id"], B_CHECKPOINT_NS: row["checkpoint_ns"]}
    for i, b in enumerate(blobs):
        out[values_key(B_CHANNEL, i)] = b["channel"]
        out[values_key(B_VERSION, i)] = b["version"]
        out[values_key(B_TYPE, i)] = b["type"]
        out[values_key(B_BLOB, i)] = b["blob"]
    return out


def _write_values(rows: Sequence[WriteRow]) -> dict[str, Any]:
    """One task's writes bound one by one (`Writes.put_writes_values`)."""
    first = rows[0]
    out: dict[str, Any] = {
        THREAD_ID: first["thread_id"],
        CHECKPOINT_NS: first["checkpoint_ns"],
        CHECKPOINT_ID: first["checkpoint_id"],
        TASK_ID: first["task_id"],
        TASK_PATH: first["task_path"],
    }
    for i, r in enumerate(rows):
        out[values_key(W_CHANNEL, i)] = r["channel"]
        out[values_key(W_TYPE, i)] = r["type"]
        out[values_key(W_BLOB, i)] = r["blob"]
        out[values_key(W_IDX, i)] = r["idx"]
    return out


def _last_per_key(rows: list[WriteRow]) -> list[WriteRow]:
    """One row per (task, idx): a statement may not upsert the same row twice, and the
    last of two special writes to one channel is the one that stands."""
    by_idx = {r["idx"]: r for r in rows}
    return list(by_idx.values()) if len(by_idx) < len(rows) else rows


def _write_arrays(rows: list[WriteRow]) -> dict[str, Any]:
    """One task's writes (`put_writes`): the keys they share, and the rest as arrays."""
    first = rows[0]
    return {
        THREAD_ID: first["thread_id"],
        CHECKPOINT_NS: first["checkpoint_ns"],
        CHECKPOINT_ID: first["checkpoint_id"],
        TASK_ID: first["task_id"],
        TASK_PATH: first["task_path"],
        W_CHANNEL: [r["channel"] for r in rows],
        W_TYPE: [r["type"] for r in rows],
        W_BLOB: [r["blob"] for r in rows],
        W_IDX: [r["idx"] for r in rows],
    }
