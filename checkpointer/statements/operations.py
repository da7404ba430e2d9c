"""Operations on whole threads and runs: `delete_for_runs`, `copy_thread` and `prune`
(with `keep_chain`, the ancestors a kept checkpoint needs, over the chain walk).

Batches of threads or runs are bound as expanding `IN` lists; on PostgreSQL
`delete_for_runs` finds checkpoints through the `checkpoints_run_id_idx` expression index.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    bindparam,
    cast,
    delete,
    exists,
    false,
    insert,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.sql.expression import Delete, Insert, Update

from .. import schema
from ..rows import (
    CHECKPOINT_ID,
    DEPTH,
    HEAD,
    KEEP,
    KEEP_ALL,
    PRUNE_NS,
    PRUNE_THREAD,
    RUN_IDS,
    SOURCE,
    TARGET,
    THREAD_ID,
    THREAD_IDS,
)
from .common import Family, blobs, cp, writes
from .walk import chain_walk


class Operations(Family):
    """`delete_for_runs`, `copy_thread`, `prune`."""

    @cached_property
    def write_lock(self) -> Update | None:
        """A write that changes nothing, run first in a transaction that reads before it
        writes, where the dialect needs the write lock taken up front (SQLite)."""
        if not self.dialect.lock_before_read:
            return None
        return update(cp).where(false()).values(thread_id=cp.c.thread_id)

    def _of_runs(self) -> ColumnElement[bool]:
        return _of_runs(self.dialect)

    @cached_property
    def run_threads(self) -> Select[Any]:
        """The threads holding checkpoints of the runs `run_ids` (served on PostgreSQL by
        the `checkpoints_run_id_idx` expression index)."""
        return select(cp.c.thread_id).where(self._of_runs()).distinct()

    @cached_property
    def delete_run_writes(self) -> Delete:
        return delete(writes).where(
            tuple_(writes.c.thread_id, writes.c.checkpoint_ns, writes.c.checkpoint_id).in_(
                select(cp.c.thread_id, cp.c.checkpoint_ns, cp.c.checkpoint_id).where(
                    self._of_runs()
                )
            )
        )

    @cached_property
    def delete_run_checkpoints(self) -> Delete:
        return delete(cp).where(self._of_runs())

    @cached_property
    def delete_unreferenced_blobs(self) -> Delete:
        """Delete the blobs of the threads `thread_ids` that no checkpoint of theirs
        references: a set difference (blob keys EXCEPT the versions named by surviving
        checkpoints), so a blob shared by a deleted and a kept checkpoint stays."""
        threads: Any = bindparam(THREAD_IDS, expanding=True)
        versions = self.dialect.channel_versions(cp.c.checkpoint)
        stored = select(blobs.c.thread_id, blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.version)
        referenced = (
            select(
                cp.c.thread_id,
                cp.c.checkpoint_ns,
                versions.c.key,
                cast(self.dialect.version_value(versions, cp.c.checkpoint), Text),
            )
            .select_from(cp)
            .join(versions, true())
            .where(cp.c.thread_id.in_(threads))
        )
        garbage = stored.where(blobs.c.thread_id.in_(threads)).except_(referenced)
        return delete(blobs).where(
            blobs.c.thread_id.in_(threads),
            tuple_(blobs.c.thread_id, blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.version).in_(
                garbage
            ),
        )

    @cached_property
    def delete_threads(self) -> tuple[Delete, ...]:
        """Delete every row of the threads `thread_ids` (a batch)."""
        threads: Any = bindparam(THREAD_IDS, expanding=True)
        return tuple(delete(t).where(t.c.thread_id.in_(threads)) for t in (writes, blobs, cp))

    @cached_property
    def thread_rows(self) -> Select[Any]:
        """Whether the thread `thread_id` has checkpoints, writes, blobs."""
        thread = bindparam(THREAD_ID, type_=Text)
        return select(  # type: ignore[return-value]
            *(exists().where(t.c.thread_id == thread).label(t.name) for t in (cp, writes, blobs))
        )

    @cached_property
    def copy_thread(self) -> tuple[Insert, ...]:
        """Copy every row of thread `source` to thread `target`, ids unchanged."""
        source = bindparam(SOURCE, type_=Text)
        target = bindparam(TARGET, type_=Text)
        out = []
        for t in (cp, blobs, writes):
            names = [c.name for c in t.columns]
            columns = [target if n == THREAD_ID else t.c[n] for n in names]
            out.append(
                insert(t).from_select(names, select(*columns).where(t.c.thread_id == source))
            )
        return tuple(out)

    def _trim_where(self, t: Any) -> list[Any]:
        return [
            t.c.thread_id == bindparam(PRUNE_THREAD, type_=Text),
            t.c.checkpoint_ns == bindparam(PRUNE_NS, type_=Text),
            t.c.checkpoint_id < bindparam(HEAD, type_=Text),
            t.c.checkpoint_id.not_in(bindparam(KEEP, expanding=True)),
        ]

    @cached_property
    def prune_trim(self) -> tuple[Delete, Delete, Update]:
        """In one namespace, delete the checkpoints older than `head` that are not in
        `keep`, with their writes, and detach the kept ones whose parent is gone.
        Bounded by `head`, so whatever a run saves meanwhile is never touched."""
        keep_all: Any = bindparam(KEEP_ALL, expanding=True)
        detach = (
            update(cp)
            .where(
                cp.c.thread_id == bindparam(PRUNE_THREAD, type_=Text),
                cp.c.checkpoint_ns == bindparam(PRUNE_NS, type_=Text),
                cp.c.checkpoint_id.in_(keep_all),
                cp.c.parent_checkpoint_id.not_in(keep_all),
            )
            .values(parent_checkpoint_id=None)
        )
        return (
            delete(writes).where(*self._trim_where(writes)),
            delete(cp).where(*self._trim_where(cp)),
            detach,
        )

    @cache  # noqa: B019 - one Statements per dialect, kept for the process
    def keep_chain(self, channels: int) -> Select[Any]:
        """The ancestors of checkpoint `checkpoint_id` that reading it needs: the
        chain back to a stored value (a snapshot) of each channel `ch_<i>`."""
        walk = chain_walk(self.dialect, channels, count_target=True)
        return select(walk.c[CHECKPOINT_ID]).where(walk.c[DEPTH] > 0)


def _of_runs(dialect: Any) -> ColumnElement[bool]:
    return dialect.run_id(schema.run_id).in_(bindparam(RUN_IDS, expanding=True))  # type: ignore[no-any-return]
