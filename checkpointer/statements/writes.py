"""Writing a thread: checkpoints with their blobs, a task's writes, and deleting it.

On PostgreSQL (`cte_dml`, `batch_as_arrays`) each is one statement whatever the batch:
rows go as array parameters, and a checkpoint's blobs ride in a data-modifying CTE.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    Text,
    bindparam,
    delete,
    func,
    literal_column,
    select,
)
from sqlalchemy.sql.expression import Delete, Insert

from ..dialects import Blob, LargeObjectId
from ..rows import (
    B_BLOB,
    B_CHANNEL,
    B_CHECKPOINT_NS,
    B_THREAD_ID,
    B_TYPE,
    B_VERSION,
    BLOB,
    CHANNEL,
    CHECKPOINT_ID,
    CHECKPOINT_NS,
    IDX,
    LO_CHUNK,
    LO_ID,
    LO_OFFSET,
    TASK_ID,
    TASK_PATH,
    THREAD_ID,
    TYPE,
    VERSION,
    W_BLOB,
    W_CHANNEL,
    W_IDX,
    W_TYPE,
    values_key,
)
from .common import Family, blobs, cp, writes

BLOB_COLUMNS = ["thread_id", "checkpoint_ns", "channel", "version", "type", "blob"]
WRITE_COLUMNS = [
    "thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "task_path", "idx",
    "channel", "type", "blob",
]  # fmt: skip


class Writes(Family):
    """`put`, `put_writes`, `delete_thread`."""

    @cached_property
    def put_blobs(self) -> Insert:
        """Insert-or-ignore one blob row (executemany); a version's value never changes."""
        d = self.dialect
        return d.insert_or_ignore(blobs, d.insert(blobs))

    @cached_property
    def put_checkpoint(self) -> Insert:
        """Upsert one checkpoint row; with `cte_dml`, its blob rows in the same statement,
        as arrays (`b_channel`, `b_version`, `b_type`, `b_blob`, with `b_thread_id` and
        `b_checkpoint_ns`)."""
        d = self.dialect
        stmt = d.upsert(cp, d.insert(cp), ["checkpoint", "metadata"])
        if not d.cte_dml:
            return stmt
        values = d.array_rows(
            {CHANNEL: B_CHANNEL, VERSION: B_VERSION, TYPE: B_TYPE}, {BLOB: B_BLOB}
        )
        rows = select(
            bindparam(B_THREAD_ID, type_=Text),
            bindparam(B_CHECKPOINT_NS, type_=Text),
            values.c.channel,
            values.c.version,
            values.c.type,
            values.c.blob,
        )
        lock = d.thread_lock(bindparam(B_THREAD_ID, type_=Text), shared=True)
        if lock is not None:
            # The thread's shared lock, as a one-time filter (evaluated once, with or
            # without blobs): a sweeper deleting the thread is waited for, and one
            # that has not started yet sees this checkpoint (`Threads.sweep_delete`).
            rows = rows.where(select(lock).scalar_subquery().is_not(None))
        blob_insert = d.insert(blobs).from_select(BLOB_COLUMNS, rows)
        return stmt.add_cte(d.insert_or_ignore(blobs, blob_insert).cte("stored_blobs"))

    # -- a large blob, staged in chunks (`staged_blobs`; None elsewhere) ----------------

    @cached_property
    def stage_blob(self) -> Select[Any] | None:
        """Create a large object holding the first chunk; returns its id as `lo_id`."""
        if not self.dialect.staged_blobs:
            return None
        chunk = bindparam(LO_CHUNK, type_=Blob)
        return select(func.lo_from_bytea(0, chunk, type_=LargeObjectId).label(LO_ID))

    @cached_property
    def append_blob(self) -> Select[Any] | None:
        """Write the next chunk at `lo_offset` of the large object `lo_id`."""
        if not self.dialect.staged_blobs:
            return None
        return select(
            func.lo_put(
                bindparam(LO_ID, type_=LargeObjectId),
                bindparam(LO_OFFSET, type_=BigInteger),
                bindparam(LO_CHUNK, type_=Blob),
            )
        )

    @cached_property
    def put_staged_blob(self) -> Insert | None:
        """Insert-or-ignore one blob row whose value is the large object `lo_id`."""
        d = self.dialect
        if not d.staged_blobs:
            return None
        value = func.lo_get(bindparam(LO_ID, type_=LargeObjectId), type_=Blob)
        staged = select(*(bindparam(c, type_=Text) for c in BLOB_COLUMNS[:-1]), value)
        return d.insert_or_ignore(blobs, d.insert(blobs).from_select(BLOB_COLUMNS, staged))

    @cached_property
    def drop_staged_blob(self) -> Select[Any] | None:
        """Remove the large object `lo_id` (its transaction would undo it anyway)."""
        if not self.dialect.staged_blobs:
            return None
        return select(func.lo_unlink(bindparam(LO_ID, type_=LargeObjectId), type_=Integer))

    @cached_property
    def put_staged_write(self) -> Insert | None:
        """Store one write whose value is the large object `lo_id`, as `put_writes`
        does (a special write replaces, others are kept if already there)."""
        d = self.dialect
        if not d.staged_blobs:
            return None
        value = func.lo_get(bindparam(LO_ID, type_=LargeObjectId), type_=Blob)
        keys = (bindparam(c, type_=Integer if c == IDX else Text) for c in WRITE_COLUMNS[:-1])
        insert = d.insert(writes).from_select(WRITE_COLUMNS, select(*keys, value))
        return d.upsert(
            writes, insert, ["channel", "type", "blob", "task_path"], where=insert.excluded.idx < 0
        )

    @cached_property
    def put_writes(self) -> Insert:
        """Store a task's writes: special writes (negative idx) replace, others are kept
        if already there. With `batch_as_arrays`, one statement for the whole batch."""
        d = self.dialect
        if d.batch_as_arrays:
            # one task's writes: what they share is bound once, the rest as arrays
            values = d.array_rows({CHANNEL: W_CHANNEL, TYPE: W_TYPE}, {BLOB: W_BLOB}, {IDX: W_IDX})
            insert = d.insert(writes).from_select(
                WRITE_COLUMNS,
                select(
                    bindparam(THREAD_ID, type_=Text),
                    bindparam(CHECKPOINT_NS, type_=Text),
                    bindparam(CHECKPOINT_ID, type_=Text),
                    bindparam(TASK_ID, type_=Text),
                    bindparam(TASK_PATH, type_=Text),
                    values.c.idx,
                    values.c.channel,
                    values.c.type,
                    values.c.blob,
                ),
            )
        else:
            insert = d.insert(writes)
        return d.upsert(
            writes, insert, ["channel", "type", "blob", "task_path"], where=insert.excluded.idx < 0
        )

    # -- rows as one multi-row VALUES (Citus: a single-shard insert) ----------------

    @cached_property
    def put_checkpoint_values(self) -> Insert | None:
        """Citus: upsert one checkpoint row, alone (its blobs: `put_blob_values`, first);
        None elsewhere."""
        d = self.dialect
        if not d.citus:
            return None
        return d.upsert(cp, d.insert(cp), ["checkpoint", "metadata"])

    @cache  # noqa: B019 - one Statements per dialect, kept for the process
    def put_blob_values(self, count: int) -> Insert:
        """Insert-or-ignore `count` blob rows of thread `b_thread_id`, namespace
        `b_checkpoint_ns`, bound one by one (keys `b_channel_<i>`, ...: `values_key`) as
        one `VALUES` instead of arrays: Citus routes an `INSERT ... VALUES` whose rows
        share the bound `thread_id` to one shard, where an `INSERT ... SELECT` from
        arrays is pulled through the coordinator and committed in two phases."""
        d = self.dialect
        thread, ns = bindparam(B_THREAD_ID, type_=Text), bindparam(B_CHECKPOINT_NS, type_=Text)
        rows = [
            {
                "thread_id": thread,
                "checkpoint_ns": ns,
                "channel": bindparam(values_key(B_CHANNEL, i), type_=Text),
                "version": bindparam(values_key(B_VERSION, i), type_=Text),
                "type": bindparam(values_key(B_TYPE, i), type_=Text),
                "blob": bindparam(values_key(B_BLOB, i), type_=Blob),
            }
            for i in range(count)
        ]
        return d.insert_or_ignore(blobs, d.insert(blobs).values(rows))

    @cache  # noqa: B019 - one Statements per dialect, kept for the process
    def put_writes_values(self, count: int) -> Insert:
        """`put_writes` for `count` writes of one task bound one by one (`w_channel_<i>`,
        ...) as one `VALUES`: a single-shard insert on Citus. The `idx < 0` test of the
        upsert compares with a constant: a bound one is sent to the worker untyped."""
        d = self.dialect
        shared = {
            name: bindparam(name, type_=Text)
            for name in (THREAD_ID, CHECKPOINT_NS, CHECKPOINT_ID, TASK_ID, TASK_PATH)
        }
        rows = [
            {
                **shared,
                "idx": bindparam(values_key(W_IDX, i), type_=Integer),
                "channel": bindparam(values_key(W_CHANNEL, i), type_=Text),
                "type": bindparam(values_key(W_TYPE, i), type_=Text),
                "blob": bindparam(values_key(W_BLOB, i), type_=Blob),
            }
            for i in range(count)
        ]
        insert = d.insert(writes).values(rows)
        return d.upsert(
            writes,
            insert,
            ["channel", "type", "blob", "task_path"],
            where=insert.excluded.idx < literal_column("0", Integer),
        )

    @cached_property
    def delete_thread(self) -> tuple[Delete, ...]:
        return tuple(
            delete(t).where(t.c.thread_id == bindparam(THREAD_ID)) for t in (writes, blobs, cp)
        )
