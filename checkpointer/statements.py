"""Core constructs for every operation, built once per dialect and executed with bound
parameters, so SQLAlchemy's compiled cache is hit on every call.

Identifiers come from `schema`; values are always bound. Reads return rows, never
aggregates: one statement answers a page of checkpoints with their blobs and writes as
a `UNION ALL` of tagged rows (`kind` is `c` checkpoint, `b` blob, `w` write, `s` a
pre-format-4 parent's pending send), which `plans` groups back per checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from langgraph.checkpoint.serde.types import TASKS
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.sql.expression import CompoundSelect, Delete, Insert, Update

from . import codec, schema
from .dialects import Dialect, filter_shape, for_name

cp, blobs, writes = schema.checkpoints, schema.checkpoint_blobs, schema.checkpoint_writes

BLOB_COLUMNS = ["thread_id", "checkpoint_ns", "channel", "version", "type", "blob"]
WRITE_COLUMNS = [
    "thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "task_path", "idx",
    "channel", "type", "blob",
]  # fmt: skip


LIST_CHUNK = 64
"""Checkpoints per `list` statement (pages follow by keyset). It bounds memory, and it
keeps each statement's estimated cost below PostgreSQL's JIT threshold (100,000 by
default): PostgreSQL estimates 100 channel versions per checkpoint for the blob
lookups, so a page of 1,000 was costed at 838,000 and spent 350 ms compiling itself on
every call (measured: a 1,000-checkpoint history took 450-700 ms; in pages of 100, 43-49
ms at a cost of 85,000; 64 leaves a margin)."""

FILTER_SHAPES = 256
"""Filtered list statements kept per dialect (one per page and filter shape)."""


@dataclass(frozen=True)
class PageShape:
    """Which filters a page of checkpoints has (not their values): one shape, one
    compiled statement."""

    thread: bool = False
    namespace: bool = False
    checkpoint_id: bool = False
    before: bool = False
    after_key: bool = False
    limit: bool = False
    chunk: bool = False
    """LIMIT `LIST_CHUNK`, a constant (see `latest`)."""
    latest: bool = False


class Statements:
    """The statements of one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._filtered: dict[tuple[PageShape, tuple[Any, ...]], CompoundSelect[Any]] = {}

    # -- writing -----------------------------------------------------------------

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
        values = self._unnest(("channel", "version", "type"), ("blob",), prefix="b_")
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
            values = self._unnest(("channel", "type"), ("blob",), ("idx",), prefix="w_")
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

    def _unnest(
        self,
        texts: tuple[str, ...],
        binaries: tuple[str, ...] = (),
        integers: tuple[str, ...] = (),
        *,
        prefix: str,
    ) -> Any:
        from sqlalchemy import func
        from sqlalchemy.dialects.postgresql import ARRAY, BYTEA

        names = [*texts, *binaries, *integers]
        arrays = (
            [bindparam(prefix + n, type_=ARRAY(Text)) for n in texts]
            + [bindparam(prefix + n, type_=ARRAY(BYTEA)) for n in binaries]
            + [bindparam(prefix + n, type_=ARRAY(Integer)) for n in integers]
        )
        return func.unnest(*arrays).table_valued(*names).render_derived(name="batch")

    # -- deleting ----------------------------------------------------------------

    @cached_property
    def delete_thread(self) -> tuple[Delete, ...]:
        return tuple(
            delete(t).where(t.c.thread_id == bindparam("thread_id")) for t in (writes, blobs, cp)
        )

    # -- reading -----------------------------------------------------------------

    def page(self, shape: PageShape, filter_clause: Any = None) -> Select[Any]:
        """The checkpoint rows of one page, newest first (ties broken by thread and
        namespace, so keyset pagination is exact)."""
        q = select(cp)
        if shape.thread:
            q = q.where(cp.c.thread_id == bindparam("thread_id"))
        if shape.namespace:
            q = q.where(cp.c.checkpoint_ns == bindparam("checkpoint_ns"))
        if shape.checkpoint_id:
            q = q.where(cp.c.checkpoint_id == bindparam("checkpoint_id"))
        if shape.before:
            q = q.where(cp.c.checkpoint_id < bindparam("before"))
        if shape.after_key:
            q = q.where(
                tuple_(cp.c.checkpoint_id, cp.c.thread_id, cp.c.checkpoint_ns)
                < tuple_(bindparam("key_id"), bindparam("key_thread"), bindparam("key_ns"))
            )
        if filter_clause is not None:
            q = q.where(filter_clause)
        if shape.latest:
            # A constant LIMIT lets PostgreSQL keep one generic plan for the prepared
            # statement instead of planning every call (a bound LIMIT makes the
            # generic plan look costlier than the custom ones).
            return q.order_by(cp.c.checkpoint_id.desc()).limit(literal_column("1", Integer))
        q = q.order_by(cp.c.checkpoint_id.desc(), cp.c.thread_id.desc(), cp.c.checkpoint_ns.desc())
        if shape.chunk:
            return q.limit(literal_column(str(LIST_CHUNK), Integer))
        if shape.limit:
            q = q.limit(bindparam("limit", type_=Integer))
        return q

    def read(self, page: Select[Any]) -> CompoundSelect[Any]:
        """A page of checkpoints with, as rows, the blobs their versions name, their
        pending writes, and the parents' pending sends of pre-format-4 checkpoints."""
        d = self.dialect
        p = page.cte("page")
        versions = d.channel_versions(p.c.checkpoint)
        write_key = tuple_(writes.c.thread_id, writes.c.checkpoint_ns, writes.c.checkpoint_id)
        old_parents = select(p.c.thread_id, p.c.checkpoint_ns, p.c.parent_checkpoint_id).where(
            p.c.parent_checkpoint_id.is_not(None), d.checkpoint_format(p.c.checkpoint) < 4
        )
        write_columns = {n: writes.c[n] for n in _ROW_COLUMNS if n in writes.c}
        return union_all(
            _tagged("c", {n: p.c[n] for n in _ROW_COLUMNS if n in p.c and n != "type"}),
            self._blobs_of(p, versions),
            _tagged("w", write_columns).where(
                write_key.in_(select(p.c.thread_id, p.c.checkpoint_ns, p.c.checkpoint_id))
            ),
            _tagged("s", write_columns).where(
                writes.c.channel == literal(TASKS, Text), write_key.in_(old_parents)
            ),
        )

    def _blobs_of(self, p: Any, versions: Any) -> Select[Any]:
        """The blob rows a page's channel versions name."""
        key = (
            blobs.c.thread_id == p.c.thread_id,
            blobs.c.checkpoint_ns == p.c.checkpoint_ns,
            blobs.c.channel == versions.c.key,
            blobs.c.version == cast(versions.c.value, Text),
        )
        if self.dialect.lateral:
            # One primary-key probe per (checkpoint, version). LIMIT 1 keeps PostgreSQL
            # from flattening the subquery into a join, which it would plan as a hash
            # join over the whole blobs table once a page has a few dozen checkpoints
            # (`jsonb_each_text` is estimated at 100 rows a document).
            blob = select(blobs).where(*key).limit(literal_column("1", Integer)).lateral("blob")
            return (
                _tagged("b", {n: blob.c[n] for n in _ROW_COLUMNS if n in blob.c})
                .select_from(p)
                .join(versions, self.dialect.may_have_blob(p.c.checkpoint, versions.c.key))
                .join(blob, true())
            )
        wanted = (
            select(p.c.thread_id, p.c.checkpoint_ns, versions.c.key, cast(versions.c.value, Text))
            .select_from(p)
            .join(versions, true())
        )
        blob_key = tuple_(
            blobs.c.thread_id, blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.version
        )
        return _tagged("b", {n: blobs.c[n] for n in _ROW_COLUMNS if n in blobs.c}).where(
            blob_key.in_(wanted)
        )

    @cached_property
    def get_latest(self) -> CompoundSelect[Any]:
        return self.read(self.page(PageShape(thread=True, namespace=True, latest=True)))

    @cached_property
    def get_by_id(self) -> CompoundSelect[Any]:
        return self.read(self.page(PageShape(thread=True, namespace=True, checkpoint_id=True)))

    def list_page(
        self, shape: PageShape, filter: Mapping[str, Any] | None
    ) -> tuple[CompoundSelect[Any], dict[str, Any]]:
        if not filter:
            return self._list_page(shape), {}
        # Building the statement costs more than running it: keep one per filter shape
        # (bounded, as filter shapes come from callers).
        key = (shape, filter_shape(filter))
        statement = self._filtered.get(key)
        if statement is not None:
            return statement, self.dialect.metadata_filter_params(filter, "f_")
        clause, params = self.dialect.metadata_filter(cp.c.metadata, filter, "f_")
        if len(self._filtered) >= FILTER_SHAPES:
            self._filtered.clear()
        statement = self._filtered[key] = self.read(self.page(shape, clause))
        return statement, params

    @cache  # noqa: B019 - one Statements per dialect, kept for the process
    def _list_page(self, shape: PageShape) -> CompoundSelect[Any]:
        return self.read(self.page(shape))

    # -- operations: delete_for_runs, copy_thread, prune, delta history -----------

    @cached_property
    def write_lock(self) -> Update | None:
        """A write that changes nothing, run first in a transaction that reads before it
        writes, where the dialect needs the write lock taken up front (SQLite)."""
        if not self.dialect.lock_before_read:
            return None
        return update(cp).where(false()).values(thread_id=cp.c.thread_id)

    @cached_property
    def run_threads(self) -> Select[Any]:
        """The threads holding checkpoints of the runs `run_ids` (served on PostgreSQL by
        the `checkpoints_run_id_idx` expression index)."""
        return select(cp.c.thread_id).where(_of_runs()).distinct()

    @cached_property
    def delete_run_writes(self) -> Delete:
        return delete(writes).where(
            tuple_(writes.c.thread_id, writes.c.checkpoint_ns, writes.c.checkpoint_id).in_(
                select(cp.c.thread_id, cp.c.checkpoint_ns, cp.c.checkpoint_id).where(_of_runs())
            )
        )

    @cached_property
    def delete_run_checkpoints(self) -> Delete:
        return delete(cp).where(_of_runs())

    @cached_property
    def delete_unreferenced_blobs(self) -> Delete:
        """Delete the blobs of the threads `thread_ids` that no checkpoint of theirs
        references: a set difference (blob keys EXCEPT the versions named by surviving
        checkpoints), so a blob shared by a deleted and a kept checkpoint stays."""
        threads: Any = bindparam("thread_ids", expanding=True)
        versions = self.dialect.channel_versions(cp.c.checkpoint)
        stored = select(blobs.c.thread_id, blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.version)
        referenced = (
            select(cp.c.thread_id, cp.c.checkpoint_ns, versions.c.key, cast(versions.c.value, Text))
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
        threads: Any = bindparam("thread_ids", expanding=True)
        return tuple(delete(t).where(t.c.thread_id.in_(threads)) for t in (writes, blobs, cp))

    @cached_property
    def thread_rows(self) -> Select[Any]:
        """Whether the thread `thread_id` has checkpoints, writes, blobs."""
        thread = bindparam("thread_id", type_=Text)
        return select(  # type: ignore[return-value]
            *(exists().where(t.c.thread_id == thread).label(t.name) for t in (cp, writes, blobs))
        )

    @cached_property
    def copy_thread(self) -> tuple[Insert, ...]:
        """Copy every row of thread `source` to thread `target`, ids unchanged."""
        source = bindparam("source", type_=Text)
        target = bindparam("target", type_=Text)
        out = []
        for t in (cp, blobs, writes):
            names = [c.name for c in t.columns]
            columns = [target if n == "thread_id" else t.c[n] for n in names]
            out.append(
                insert(t).from_select(names, select(*columns).where(t.c.thread_id == source))
            )
        return tuple(out)

    @cached_property
    def prune_heads(self) -> Select[Any]:
        """Per namespace of the thread `thread_id`: its latest checkpoint (id, parent,
        metadata, channel versions, and whether it is older than format 4 and reads
        pending sends from its parent's writes) and how many checkpoints it has."""
        thread = bindparam("thread_id", type_=Text)
        d = self.dialect
        h = (
            select(
                cp.c.checkpoint_ns,
                func.max(cp.c.checkpoint_id).label("head"),
                func.count().label("n"),
            )
            .where(cp.c.thread_id == thread)
            .group_by(cp.c.checkpoint_ns)
            .subquery("h")
        )
        return select(
            h.c.checkpoint_ns,
            h.c.head,
            h.c.n,
            cp.c.parent_checkpoint_id,
            cp.c.metadata,
            and_(
                d.checkpoint_format(cp.c.checkpoint) < 4,
                exists().where(
                    writes.c.thread_id == thread,
                    writes.c.checkpoint_ns == h.c.checkpoint_ns,
                    writes.c.checkpoint_id == cp.c.parent_checkpoint_id,
                    writes.c.channel == literal(TASKS, Text),
                ),
            ).label("parent_sends"),
            d.json_member(cp.c.checkpoint, "channel_versions").label("versions"),
        ).join_from(
            h,
            cp,
            and_(
                cp.c.thread_id == thread,
                cp.c.checkpoint_ns == h.c.checkpoint_ns,
                cp.c.checkpoint_id == h.c.head,
            ),
        )

    def _trim_where(self, t: Any) -> list[Any]:
        return [
            t.c.thread_id == bindparam("prune_thread", type_=Text),
            t.c.checkpoint_ns == bindparam("prune_ns", type_=Text),
            t.c.checkpoint_id < bindparam("head", type_=Text),
            t.c.checkpoint_id.not_in(bindparam("keep", expanding=True)),
        ]

    @cached_property
    def prune_trim(self) -> tuple[Delete, Delete, Update]:
        """In one namespace, delete the checkpoints older than `head` that are not in
        `keep`, with their writes, and detach the kept ones whose parent is gone.
        Bounded by `head`, so whatever a run saves meanwhile is never touched."""
        keep_all: Any = bindparam("keep_all", expanding=True)
        detach = (
            update(cp)
            .where(
                cp.c.thread_id == bindparam("prune_thread", type_=Text),
                cp.c.checkpoint_ns == bindparam("prune_ns", type_=Text),
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

    def _lookup(self, walk: Any, table: Any, on: list[Any]) -> tuple[Any, Any]:
        """Join the walk to the rows of `table` matching `on` (which names walk
        columns). On PostgreSQL as a LATERAL subquery, so each is a primary-key lookup
        per walked row whatever the planner's row estimates (a fresh table's estimate
        of one row per thread made it scan the thread once per step, quadratically)."""
        if self.dialect.lateral:
            # OFFSET 0 keeps the planner from flattening the subquery back into a join.
            rows = select(table).where(*on).offset(0).lateral(f"{table.name}_of_walk")
            return walk.join(rows, true()), rows
        return walk.join(table, and_(*on)), table

    def _walk(self, channels: int, count_target: bool) -> Any:
        """Walk the parent chain from checkpoint `checkpoint_id` (or the latest) of
        `thread_id`/`checkpoint_ns`, as a recursive CTE, only as far as needed: per
        channel `ch_<i>`, up to the nearest ancestor storing a value for it.

        Row columns: `checkpoint_id`, `parent_checkpoint_id`, `depth` (0 = the target),
        and per channel `ver_<i>` (its version), `hb_<i>` (a non-empty blob of that
        version exists), `in_<i>` (an inline value exists) and `acc_<i>` (a row nearer
        the target already stores it: this row is not on that channel's chain), and
        `top_<i>`/`near_<i>`, the target's version and the highest version at or below
        it with a non-empty blob (found once, by one backward index scan): a version
        above `near` and not above `top` has none, so only the others are probed. A
        delta channel leaves an "empty" blob row at every step, and probing each one
        read it from the heap (half of the walk's time on a 500-step chain).
        With `count_target`, the target's own stored values count (what reading it
        needs); without, the walk starts at its parent (`get_delta_channel_history`).
        An ancestor always has a smaller id (uuid6 is time-ordered), which also
        guarantees the walk ends even on a corrupt parent cycle."""
        d = self.dialect
        thread = bindparam("thread_id", type_=Text)
        ns = bindparam("checkpoint_ns", type_=Text)
        names = [bindparam(f"ch_{i}", type_=Text) for i in range(channels)]

        def probes(c: Any, real: bool, bounds: list[tuple[Any, Any]]) -> list[Any]:
            out: list[Any] = []
            for i, ch in enumerate(names):
                version = d.json_text(c.c.checkpoint, "channel_versions", ch)
                if not real:
                    out += [
                        version.label(f"ver_{i}"),
                        false().label(f"hb_{i}"),
                        false().label(f"in_{i}"),
                    ]
                    continue
                top, near = bounds[i]
                stored = exists().where(
                    blobs.c.thread_id == c.c.thread_id,
                    blobs.c.checkpoint_ns == c.c.checkpoint_ns,
                    blobs.c.channel == ch,
                    blobs.c.version == version,
                    non_empty,
                )
                none_here = and_(version <= top, or_(near.is_(None), version > near))
                out += [
                    version.label(f"ver_{i}"),
                    case((none_here, false()), else_=stored).label(f"hb_{i}"),
                    d.json_has_key(c.c.checkpoint, "channel_values", ch).label(f"in_{i}"),
                ]
            return out

        non_empty = blobs.c.type != literal(codec.EMPTY, Text)
        target = cp.alias("t")
        tops = [d.json_text(target.c.checkpoint, "channel_versions", ch) for ch in names]
        nearest = [
            select(blobs.c.version)
            .where(
                blobs.c.thread_id == thread,
                blobs.c.checkpoint_ns == ns,
                blobs.c.channel == ch,
                blobs.c.version <= top,
                non_empty,
            )
            .order_by(blobs.c.version.desc())
            .limit(1)
            .scalar_subquery()
            for ch, top in zip(names, tops, strict=True)
        ]
        latest = (
            select(func.max(cp.c.checkpoint_id))
            .where(cp.c.thread_id == thread, cp.c.checkpoint_ns == ns)
            .scalar_subquery()
        )
        anchor = select(
            target.c.checkpoint_id,
            target.c.parent_checkpoint_id,
            literal(0, Integer).label("depth"),
            *(false().label(f"acc_{i}") for i in range(channels)),
            *(top.label(f"top_{i}") for i, top in enumerate(tops)),
            *(near.label(f"near_{i}") for i, near in enumerate(nearest)),
            *probes(target, count_target, list(zip(tops, nearest, strict=True))),
        ).where(
            target.c.thread_id == thread,
            target.c.checkpoint_ns == ns,
            target.c.checkpoint_id == func.coalesce(bindparam("checkpoint_id", type_=Text), latest),
        )
        walk = anchor.cte("walk", recursive=True)
        done = [
            or_(walk.c[f"acc_{i}"], walk.c[f"hb_{i}"], walk.c[f"in_{i}"]) for i in range(channels)
        ]
        parent = cp.alias("p")
        found, row = self._lookup(
            walk,
            parent,
            [
                parent.c.thread_id == thread,
                parent.c.checkpoint_ns == ns,
                parent.c.checkpoint_id == walk.c.parent_checkpoint_id,
                parent.c.checkpoint_id < walk.c.checkpoint_id,
            ],
        )
        step = (
            select(
                row.c.checkpoint_id,
                row.c.parent_checkpoint_id,
                (walk.c.depth + 1).label("depth"),
                *(done[i].label(f"acc_{i}") for i in range(channels)),
                *(walk.c[f"top_{i}"] for i in range(channels)),
                *(walk.c[f"near_{i}"] for i in range(channels)),
                *probes(
                    row, True, [(walk.c[f"top_{i}"], walk.c[f"near_{i}"]) for i in range(channels)]
                ),
            )
            .select_from(found)
            .where(not_(and_(*done)))
        )
        return walk.union_all(step)

    @cache  # noqa: B019
    def delta_history(self, channels: int) -> CompoundSelect[Any]:
        """Everything `get_delta_channel_history` returns for `channels` channels, in
        one statement: per channel, the writes on its chain (`w`), and its seed as a
        blob (`b`) or as the inline `channel_values` object (`v`). Rows carry the
        checkpoint they belong to (ancestors have smaller ids: oldest first is id order)."""
        walk = self._walk(channels, count_target=False)
        thread = bindparam("thread_id", type_=Text)
        ns = bindparam("checkpoint_ns", type_=Text)
        branches: list[Select[Any]] = []
        for i in range(channels):
            ch = bindparam(f"ch_{i}", type_=Text)
            on_chain = and_(walk.c.depth > 0, not_(walk.c[f"acc_{i}"]))
            branches += self._chain_writes(walk, on_chain, ch, i)
            found, b = self._lookup(
                walk,
                blobs,
                [
                    blobs.c.thread_id == thread,
                    blobs.c.checkpoint_ns == ns,
                    blobs.c.channel == ch,
                    blobs.c.version == walk.c[f"ver_{i}"],
                ],
            )
            branches.append(
                _history_row("b", walk.c.checkpoint_id, ch, {n: b.c[n] for n in ("type", "blob")})
                .select_from(found)
                .where(on_chain, walk.c[f"hb_{i}"])
            )
            found, c = self._lookup(
                walk,
                cp,
                [
                    cp.c.thread_id == thread,
                    cp.c.checkpoint_ns == ns,
                    cp.c.checkpoint_id == walk.c.checkpoint_id,
                ],
            )
            branches.append(
                _history_row(
                    "v",
                    walk.c.checkpoint_id,
                    ch,
                    {"value": self.dialect.json_member(c.c.checkpoint, "channel_values")},
                )
                .select_from(found)
                .where(on_chain, walk.c[f"in_{i}"], not_(walk.c[f"hb_{i}"]))
            )
        return union_all(*branches)

    def _chain_writes(self, walk: Any, on_chain: Any, ch: Any, i: int) -> list[Select[Any]]:
        """The writes to channel `ch` of the checkpoints on its chain: one primary-key
        lookup per checkpoint; on PostgreSQL, when the chain is most of the checkpoints
        between its ends (a linear history: at least half), one range scan of the
        thread's writes between those ends instead, kept to the chain by a hashed
        membership test (500 lookups: 1.1 ms; the scan: 0.5). Which one runs is decided
        once per statement (a one-time filter), from a count capped at twice the chain,
        so a short chain across a long fork never scans the history in between."""
        thread = bindparam("thread_id", type_=Text)
        ns = bindparam("checkpoint_ns", type_=Text)
        columns = ("task_id", "task_path", "idx", "type", "blob")
        found, w = self._lookup(
            walk,
            writes,
            [
                writes.c.thread_id == thread,
                writes.c.checkpoint_ns == ns,
                writes.c.checkpoint_id == walk.c.checkpoint_id,
                writes.c.channel == ch,
            ],
        )
        lookups = (
            _history_row("w", walk.c.checkpoint_id, ch, {n: w.c[n] for n in columns})
            .select_from(found)
            .where(on_chain)
        )
        if not self.dialect.lateral:
            return [lookups]
        ids = select(walk.c.checkpoint_id).where(on_chain)
        ends = select(
            func.min(walk.c.checkpoint_id).label("low"),
            func.max(walk.c.checkpoint_id).label("high"),
            func.count().label("n"),
        ).where(on_chain)
        span = ends.cte(f"chain_{i}")
        between = (
            select(literal(1, Integer))
            .where(
                cp.c.thread_id == thread,
                cp.c.checkpoint_ns == ns,
                cp.c.checkpoint_id.between(span.c.low, span.c.high),
            )
            .limit(span.c.n * 2 + 1)
            .lateral(f"between_{i}")
        )
        linear = (
            select(func.count() <= span.c.n * 2)
            .select_from(span.join(between, true()))
            .group_by(span.c.n)
            .cte(f"linear_{i}")
        )
        is_linear = select(linear.c[0]).scalar_subquery()
        scan = _history_row(
            "w", writes.c.checkpoint_id, ch, {n: writes.c[n] for n in columns}
        ).where(
            writes.c.thread_id == thread,
            writes.c.checkpoint_ns == ns,
            writes.c.checkpoint_id.between(
                select(span.c.low).scalar_subquery(), select(span.c.high).scalar_subquery()
            ),
            writes.c.channel == ch,
            # `IS TRUE` keeps this a hashed subplan, not a join planned from the walk's
            # row estimate (two)
            writes.c.checkpoint_id.in_(ids).is_(true()),
            is_linear.is_(true()),
        )
        return [lookups.where(is_linear.is_not(true())), scan]

    @cache  # noqa: B019
    def keep_chain(self, channels: int) -> Select[Any]:
        """The ancestors of checkpoint `checkpoint_id` that reading it needs: the
        chain back to a stored value (a snapshot) of each channel `ch_<i>`."""
        walk = self._walk(channels, count_target=True)
        return select(walk.c.checkpoint_id).where(walk.c.depth > 0)


def _of_runs() -> ColumnElement[bool]:
    return schema.run_id.in_(bindparam("run_ids", expanding=True))


_HISTORY_COLUMNS: dict[str, Any] = {
    "task_id": Text,
    "task_path": Text,
    "idx": Integer,
    "type": Text,
    "blob": schema.Blob,
    "value": schema.JsonDocument,
}


def _history_row(
    kind: str, checkpoint_id: Any, channel: Any, columns: Mapping[str, Any]
) -> Select[Any]:
    return select(
        literal(kind, Text).label("kind"),
        checkpoint_id.label("checkpoint_id"),
        channel.label("channel"),
        *(
            (columns[name] if name in columns else cast(null(), type_)).label(name)
            for name, type_ in _HISTORY_COLUMNS.items()
        ),
    )


_ROW_COLUMNS: dict[str, Any] = {
    "thread_id": Text,
    "checkpoint_ns": Text,
    "checkpoint_id": Text,
    "parent_checkpoint_id": Text,
    "checkpoint": schema.JsonDocument,
    "metadata": schema.JsonDocument,
    "channel": Text,
    "version": Text,
    "type": Text,
    "blob": schema.Blob,
    "task_id": Text,
    "task_path": Text,
    "idx": Integer,
}
"""The columns of a read's tagged rows; a row leaves NULL what its kind lacks."""


def _tagged(kind: str, columns: Mapping[str, Any]) -> Select[Any]:
    return select(  # type: ignore[no-any-return]
        literal(kind, Text).label("kind"),
        *(
            (columns[name] if name in columns else cast(null(), type_)).label(name)
            for name, type_ in _ROW_COLUMNS.items()
        ),
    )


@cache
def for_dialect(name: str) -> Statements:
    return Statements(for_name(name))
