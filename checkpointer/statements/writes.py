"""Writing a thread: checkpoints with their blobs, a task's writes, and deleting it.

On PostgreSQL (`cte_dml`, `batch_as_arrays`) each is one statement whatever the batch:
rows go as array parameters, and a checkpoint's blobs ride in a data-modifying CTE.
"""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Text, bindparam, delete, select
from sqlalchemy.sql.expression import Delete, Insert

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
        values = d.array_rows(("channel", "version", "type"), ("blob",), prefix="b_")
        blob_insert = d.insert(blobs).from_select(
            BLOB_COLUMNS,
            select(
                bindparam("b_thread_id", type_=Text),
                bindparam("b_checkpoint_ns", type_=Text),
                values.c.channel,
                values.c.version,
                values.c.type,
                values.c.blob,
            ),
        )
        return stmt.add_cte(d.insert_or_ignore(blobs, blob_insert).cte("stored_blobs"))

    @cached_property
    def put_writes(self) -> Insert:
        """Store a task's writes: special writes (negative idx) replace, others are kept
        if already there. With `batch_as_arrays`, one statement for the whole batch."""
        d = self.dialect
        if d.batch_as_arrays:
            # one task's writes: what they share is bound once, the rest as arrays
            values = d.array_rows(("channel", "type"), ("blob",), ("idx",), prefix="w_")
            insert = d.insert(writes).from_select(
                WRITE_COLUMNS,
                select(
                    bindparam("thread_id", type_=Text),
                    bindparam("checkpoint_ns", type_=Text),
                    bindparam("checkpoint_id", type_=Text),
                    bindparam("task_id", type_=Text),
                    bindparam("task_path", type_=Text),
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

    @cached_property
    def delete_thread(self) -> tuple[Delete, ...]:
        return tuple(
            delete(t).where(t.c.thread_id == bindparam("thread_id")) for t in (writes, blobs, cp)
        )
