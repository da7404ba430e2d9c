"""Cross-thread operations: the thread list and count, sweep batches, keep-last-N
pruning's newest checkpoints, and statistics. These fan out over every thread (the
router rule's exception); `prune_newest` is per thread and filters on `thread_id`.

A thread's summary row is its latest root checkpoint (namespace ''): a root checkpoint
with no newer root checkpoint in its thread. Walked newest first by id (on PostgreSQL
through the partial index `checkpoints_root_id_idx` on checkpoint_id, revision 0006;
ties between equal ids of different threads are broken by an incremental sort), each
candidate costs one primary-key probe, so a page costs about its length times the
checkpoints per thread, wherever the keyset cursor starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from langgraph.checkpoint.serde.types import TASKS
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    not_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.expression import CompoundSelect

from ..dialects import Dialect, filter_shape
from ..rows import (
    AFTER_ID,
    AFTER_THREAD,
    BLOBS,
    BYTES,
    CHECKPOINTS,
    COUNT,
    CUTOFF,
    FILTER_PREFIX,
    FIRST,
    HEAD,
    KEEP_LAST,
    KEEP_PREFIX,
    LIMIT,
    LOCKED,
    NEWEST,
    OLDEST,
    PARENT_SENDS,
    RANK,
    ROWS,
    TABLE,
    THREAD_ID,
    THREAD_IDS,
    THREADS,
    TOP,
    UPDATED_AFTER,
    UPDATED_BEFORE,
    VERSIONS,
    WRITES,
)
from .common import Family, blobs, cp, writes

ROOT = literal_column("''", Text)
"""The root namespace as a constant in the SQL text, so PostgreSQL matches the partial
index's predicate under a generic plan (a bound '' would not)."""

SWEEP_BATCH = 500
"""Threads per sweep transaction: short transactions, few locks held at once. Measured
deleting idle 5-checkpoint threads on PostgreSQL (loaded machine): 100 a batch 2,500-3,400
threads/s, 500 5,500-6,300/s, 1,000 5,100-9,600/s; 500 keeps a batch near 0.1 s and
its advisory locks well inside the default lock table (64 x max_connections)."""

FILTER_SHAPES = 256


@dataclass(frozen=True)
class ThreadShape:
    """Which bounds a thread page or count has (not their values)."""

    after_key: bool = False
    updated_before: bool = False
    updated_after: bool = False


def _latest_root(newer_alias: str = "newer") -> Select[Any]:
    """Root checkpoints that are their thread's latest root checkpoint."""
    newer = cp.alias(newer_alias)
    return select(cp.c.thread_id, cp.c.checkpoint_id.label(HEAD), cp.c.metadata).where(
        cp.c.checkpoint_ns == ROOT,
        not_(
            exists().where(
                newer.c.thread_id == cp.c.thread_id,
                newer.c.checkpoint_ns == ROOT,
                newer.c.checkpoint_id > cp.c.checkpoint_id,
            )
        ),
    )


def _bounded(q: Select[Any], shape: ThreadShape) -> Select[Any]:
    if shape.updated_before:
        q = q.where(cp.c.checkpoint_id < bindparam(UPDATED_BEFORE, type_=Text))
    if shape.updated_after:
        q = q.where(cp.c.checkpoint_id >= bindparam(UPDATED_AFTER, type_=Text))
    return q


def _citus_thread_page(page: Any) -> Select[Any]:
    """`thread_page` on Citus: the page is found across the shards, then its threads'
    first root checkpoint and count by one grouped query per shard, joined to it (Citus
    runs no correlated subquery over a page it has gathered)."""
    counted = cp.alias("counted")
    totals = (
        select(
            counted.c.thread_id,
            func.min(counted.c.checkpoint_id).filter(counted.c.checkpoint_ns == ROOT).label(FIRST),
            func.count().label(CHECKPOINTS),
        )
        .where(counted.c.thread_id.in_(select(page.c.thread_id)))
        .group_by(counted.c.thread_id)
        .subquery("totals")
    )
    return (
        select(
            page.c.thread_id,
            page.c[HEAD],
            page.c.metadata,
            totals.c[FIRST],
            totals.c[CHECKPOINTS],
        )
        .join_from(page, totals, totals.c.thread_id == page.c.thread_id)
        .order_by(page.c[HEAD].desc(), page.c.thread_id.desc())
    )


class Threads(Family):
    """`thread_page`, `thread_count`, `sweep_batch`, `batch_sizes`, `sweep_delete`,
    `prune_newest` and the statistics."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._thread_pages: dict[tuple[Any, ...], Select[Any]] = {}

    def _by_shape(
        self, kind: str, shape: Any, filter: Mapping[str, Any] | None, build: Any
    ) -> tuple[Any, dict[str, Any]]:
        """A statement cached by kind, shape and the filter's shape, and the filter's
        parameters."""
        key = (kind, shape, filter_shape(filter) if filter else None)
        statement = self._thread_pages.get(key)
        if statement is None:
            if len(self._thread_pages) >= FILTER_SHAPES:
                self._thread_pages.clear()
            clause = None
            if filter:
                prefix = KEEP_PREFIX if kind == "sweep" else FILTER_PREFIX
                clause, _ = self.dialect.metadata_filter(cp.c.metadata, filter, prefix)
            statement = self._thread_pages[key] = build(clause)
        params: dict[str, Any] = {}
        if filter:
            prefix = KEEP_PREFIX if kind == "sweep" else FILTER_PREFIX
            params = self.dialect.metadata_filter_params(filter, prefix)
        return statement, params

    def thread_page(
        self, shape: ThreadShape, filter: Mapping[str, Any] | None
    ) -> tuple[Select[Any], dict[str, Any]]:
        """A page of `limit` threads, most recently updated first: `thread_id`, `head`
        (latest root checkpoint id), `metadata`, `first` (first root checkpoint id),
        `checkpoints` (count, every namespace). Keyset after (`after_id`,
        `after_thread`)."""

        def build(clause: Any) -> Select[Any]:
            q = _bounded(_latest_root(), shape)
            if clause is not None:
                q = q.where(clause)
            if shape.after_key:
                q = q.where(
                    tuple_(cp.c.checkpoint_id, cp.c.thread_id)
                    < tuple_(bindparam(AFTER_ID, type_=Text), bindparam(AFTER_THREAD, type_=Text))
                )
            newest = q.order_by(cp.c.checkpoint_id.desc(), cp.c.thread_id.desc()).limit(
                bindparam(LIMIT, type_=Integer)
            )
            if self.dialect.citus:
                return _citus_thread_page(newest.cte("page"))
            page = newest.subquery("page")
            first = cp.alias("first_cp")
            counted = cp.alias("counted")
            return select(
                page.c.thread_id,
                page.c[HEAD],
                page.c.metadata,
                select(func.min(first.c.checkpoint_id))
                .where(first.c.thread_id == page.c.thread_id, first.c.checkpoint_ns == ROOT)
                .scalar_subquery()
                .label(FIRST),
                select(func.count())
                .select_from(counted)
                .where(counted.c.thread_id == page.c.thread_id)
                .scalar_subquery()
                .label(CHECKPOINTS),
            ).order_by(page.c[HEAD].desc(), page.c.thread_id.desc())

        return self._by_shape("page", shape, filter, build)  # type: ignore[no-any-return]

    def thread_count(
        self, shape: ThreadShape, filter: Mapping[str, Any] | None
    ) -> tuple[Select[Any], dict[str, Any]]:
        """How many threads match (`count`)."""

        def build(clause: Any) -> Select[Any]:
            q = _bounded(_latest_root(), shape)
            if clause is not None:
                q = q.where(clause)
            return select(func.count().label(COUNT)).select_from(q.subquery("t"))

        return self._by_shape("count", shape, filter, build)  # type: ignore[no-any-return]

    def sweep_batch(
        self, after_key: bool, keep: Mapping[str, Any] | None, locking: bool = True
    ) -> tuple[Select[Any], dict[str, Any]]:
        """The next `limit` idle threads (latest root checkpoint id below `cutoff`),
        oldest first, keyset after (`after_id`, `after_thread`), leaving out those whose
        latest metadata contains `keep`. Where the dialect has thread locks, each
        candidate's lock is tried (`locked`) after the limit, so no more than `limit`
        are taken, and a thread another sweeper or a writer holds is left out of this
        batch: sweepers take disjoint batches, and never wait for one another.

        MySQL (`skip_locked`, no thread locks): the rows read are locked, skipping
        those another transaction holds, unless `locking` is false (a sweep that
        deletes locks its threads with `sweep_locks` instead: a locking read here also
        locks every older root checkpoint it passes, which two sweepers could then
        wait for in opposite orders)."""

        def build(clause: Any) -> Select[Any]:
            q = _latest_root().where(cp.c.checkpoint_id < bindparam(CUTOFF, type_=Text))
            if clause is not None:
                q = q.where(not_(clause))
            if after_key:
                q = q.where(
                    tuple_(cp.c.checkpoint_id, cp.c.thread_id)
                    > tuple_(bindparam(AFTER_ID, type_=Text), bindparam(AFTER_THREAD, type_=Text))
                )
            q = q.order_by(cp.c.checkpoint_id, cp.c.thread_id).limit(
                bindparam(LIMIT, type_=Integer)
            )
            candidates = q.subquery("candidates")
            lock = self.dialect.thread_lock(candidates.c.thread_id, shared=False)
            if lock is None:
                if self.dialect.skip_locked and locking:
                    q = q.with_for_update(skip_locked=True, of=cp)
                return q
            locked = select(
                candidates.c.thread_id,
                candidates.c[HEAD],
                candidates.c.metadata,
                lock.label(LOCKED),
            )
            return locked.order_by(candidates.c[HEAD], candidates.c.thread_id)

        shape = after_key if locking else (after_key, "unlocked")
        return self._by_shape("sweep", shape, keep, build)  # type: ignore[no-any-return]

    @cached_property
    def sweep_isolation(self) -> Executable | None:
        """The first statement of a sweep batch that deletes, where locking reads lock
        gaps only at REPEATABLE READ (`Dialect.repeatable_read`); None elsewhere."""
        return self.dialect.repeatable_read() if self.dialect.gap_locks else None

    @cached_property
    def sweep_locks(self) -> tuple[Select[Any], ...] | None:
        """`gap_locks` only (MySQL/MariaDB; None elsewhere): lock every row of the
        threads `thread_ids` in checkpoint_blobs, checkpoint_writes, then checkpoints
        (the order a `put` inserts in), returning per thread `thread_id`, `rows`,
        `bytes` (as `batch_sizes` counts them) and, for checkpoints, `head` (the
        greatest checkpoint id, every namespace). A locking read sees the latest
        committed rows, waits for a writer's uncommitted ones, and locks the gaps
        between and after them (next-key locks): until the batch commits no row of
        those threads can be inserted, so a thread whose `head` is below the cutoff
        stays idle and `delete_threads` removes it whole. Locks are taken in key
        order, table by table, as every sweeper and writer takes them, so they wait
        for one another without deadlocks; the gap after a thread's last row is
        locked alone (a gap lock, which conflicts only with inserts), so a sweeper
        never waits for its neighbour thread's sweeper."""
        if not self.dialect.gap_locks:
            return None
        threads: Any = bindparam(THREAD_IDS, expanding=True)

        def locked(t: Any) -> Select[Any]:
            columns = [
                t.c.thread_id,
                func.count().label(ROWS),
                func.coalesce(func.sum(self._row_bytes(t)), 0).label(BYTES),
            ]
            if t is cp:
                columns.append(func.max(cp.c.checkpoint_id).label(HEAD))
            q = select(*columns).where(t.c.thread_id.in_(threads)).group_by(t.c.thread_id)
            return q.with_for_update()

        return tuple(locked(t) for t in (blobs, writes, cp))

    def _row_bytes(self, t: Any) -> ColumnElement[Any]:
        """About how many bytes a row of `t` holds: its documents and its value."""
        total: ColumnElement[Any] = literal(0, Integer)
        for name, document in (("checkpoint", True), ("metadata", True), ("blob", False)):
            if name in t.c:
                size = self.dialect.stored_bytes(t.c[name], document=document)
                total = total + func.coalesce(size, 0)
        return total

    @cached_property
    def batch_sizes(self) -> Select[Any]:
        """Rows and approximate bytes of the threads `thread_ids`: `checkpoints`,
        `blobs`, `writes`, `bytes` (`Dialect.stored_bytes` of documents and values)."""
        threads: Any = bindparam(THREAD_IDS, expanding=True)

        def sized(t: Any, name: str) -> Any:
            total = func.coalesce(func.sum(self._row_bytes(t)), 0)
            q = select(func.count().label("n"), total.label("b")).select_from(t)
            return q.where(t.c.thread_id.in_(threads)).subquery(name)

        cs, bs, ws = sized(cp, "c"), sized(blobs, "b"), sized(writes, "w")
        return select(
            cs.c.n.label(CHECKPOINTS),
            bs.c.n.label(BLOBS),
            ws.c.n.label(WRITES),
            (cs.c.b + bs.c.b + ws.c.b).label(BYTES),
        ).select_from(cs.join(bs, literal(True)).join(ws, literal(True)))

    @cached_property
    def sweep_delete(self) -> Select[Any] | None:
        """Delete every row of those threads `thread_ids` still idle (no checkpoint, in
        any namespace, at or after `cutoff`) in one statement, returning what went:
        `threads`, `checkpoints`, `blobs`, `writes`, `bytes` (as `batch_sizes` counts
        them). Run after the batch took its threads' locks (`Dialect.thread_lock`), it
        sees every checkpoint committed before them, and none commits until the batch
        does: a thread written meanwhile is left whole. None without `cte_dml`
        (SQLite): there the batch holds the write lock from its first statement, so
        its threads are still idle and `delete_threads` removes them."""
        if not self.dialect.cte_dml:
            return None
        threads: Any = bindparam(THREAD_IDS, expanding=True)
        idle = (
            select(cp.c.thread_id)
            .where(cp.c.thread_id.in_(threads))
            .group_by(cp.c.thread_id)
            .having(func.max(cp.c.checkpoint_id) < bindparam(CUTOFF, type_=Text))
            .cte("idle")
        )

        def gone(t: Any) -> Any:
            deletion = delete(t).where(t.c.thread_id.in_(select(idle.c.thread_id)))
            return deletion.returning(self._row_bytes(t).label(BYTES)).cte(f"gone_{t.name}")

        removed = {CHECKPOINTS: gone(cp), BLOBS: gone(blobs), WRITES: gone(writes)}

        def count(c: Any) -> Any:
            return select(func.count()).select_from(c).scalar_subquery()

        def size(c: Any) -> Any:
            return select(func.coalesce(func.sum(c.c[BYTES]), 0)).scalar_subquery()

        total: ColumnElement[Any] = literal(0, Integer)
        for c in removed.values():
            total = total + size(c)
        return select(
            count(idle).label(THREADS),
            *(count(c).label(name) for name, c in removed.items()),
            total.label(BYTES),
        )

    @cached_property
    def prune_newest(self) -> Select[Any]:
        """Per namespace of the thread `thread_id`, its `keep_last` newest checkpoints
        (id, `rank` from 1, parent, metadata, channel versions, whether a format < 4
        one reads pending sends from its parent) and the namespace's `n` checkpoints."""
        thread = bindparam(THREAD_ID, type_=Text)
        d = self.dialect
        ranked = (
            select(
                cp.c.checkpoint_ns,
                cp.c.checkpoint_id,
                func.row_number()
                .over(partition_by=cp.c.checkpoint_ns, order_by=cp.c.checkpoint_id.desc())
                .label(RANK),
                func.count().over(partition_by=cp.c.checkpoint_ns).label(COUNT),
            )
            .where(cp.c.thread_id == thread)
            .subquery("ranked")
        )
        kept = cp.alias("kept")
        return (
            select(
                ranked.c.checkpoint_ns,
                ranked.c.checkpoint_id,
                ranked.c[RANK],
                ranked.c[COUNT],
                kept.c.parent_checkpoint_id,
                kept.c.metadata,
                and_(
                    d.checkpoint_format(kept.c.checkpoint) < 4,
                    exists().where(
                        writes.c.thread_id == thread,
                        writes.c.checkpoint_ns == ranked.c.checkpoint_ns,
                        writes.c.checkpoint_id == kept.c.parent_checkpoint_id,
                        writes.c.channel == literal(TASKS, Text),
                    ),
                ).label(PARENT_SENDS),
                d.json_member(kept.c.checkpoint, "channel_versions").label(VERSIONS),
            )
            .join_from(
                ranked,
                kept,
                and_(
                    kept.c.thread_id == thread,
                    kept.c.checkpoint_ns == ranked.c.checkpoint_ns,
                    kept.c.checkpoint_id == ranked.c.checkpoint_id,
                ),
            )
            .where(ranked.c[RANK] <= bindparam(KEEP_LAST, type_=Integer))
            .order_by(ranked.c.checkpoint_ns, ranked.c[RANK])
        )

    # -- statistics --------------------------------------------------------------------

    @cached_property
    def table_rows(self) -> CompoundSelect[Any]:
        """`table`, `rows` of each of the three tables."""
        return union_all(
            *(
                select(
                    literal_column(f"'{t.name}'", Text).label(TABLE), func.count().label(ROWS)
                ).select_from(t)
                for t in (cp, blobs, writes)
            )
        )

    @cached_property
    def table_sizes(self) -> Select[Any]:
        return self.dialect.table_sizes([cp, blobs, writes])

    @cached_property
    def activity(self) -> Select[Any]:
        """`threads` (with a root checkpoint), `checkpoints`, and the `oldest` and
        `newest` root checkpoint ids."""
        root = select(cp.c.thread_id, cp.c.checkpoint_id).where(cp.c.checkpoint_ns == ROOT)
        r = root.subquery("r")
        return select(
            select(func.count(func.distinct(r.c.thread_id))).scalar_subquery().label(THREADS),
            select(func.count()).select_from(cp).scalar_subquery().label(CHECKPOINTS),
            select(func.min(r.c.checkpoint_id)).scalar_subquery().label(OLDEST),
            select(func.max(r.c.checkpoint_id)).scalar_subquery().label(NEWEST),
        )

    @cached_property
    def largest_threads(self) -> Select[Any]:
        """The `top` threads by approximate bytes: `thread_id`, `bytes`."""
        parts = union_all(
            select(
                cp.c.thread_id,
                (
                    func.length(cast(cp.c.checkpoint, Text))
                    + func.length(cast(cp.c.metadata, Text))
                ).label(BYTES),
            ),
            select(blobs.c.thread_id, func.coalesce(func.length(blobs.c.blob), 0).label(BYTES)),
            select(writes.c.thread_id, func.length(writes.c.blob).label(BYTES)),
        ).subquery("sized")
        total = func.sum(parts.c[BYTES])
        return (
            select(parts.c.thread_id, total.label(BYTES))
            .group_by(parts.c.thread_id)
            .order_by(total.desc(), parts.c.thread_id)
            .limit(bindparam(TOP, type_=Integer))
        )

    @cached_property
    def file_pages(self) -> Select[Any] | None:
        return self.dialect.file_pages()
