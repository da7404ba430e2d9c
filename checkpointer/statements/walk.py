"""The chain walk: a recursive CTE that follows a checkpoint's parents only as far as
each asked channel needs (to the nearest ancestor storing a value for it), shared by
delta history (`history`) and pruning (`operations.keep_chain`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from .. import codec, schema
from ..dialects import Dialect
from ..rows import (
    CHECKPOINT_ID,
    CHECKPOINT_NS,
    DEPTH,
    THREAD_ID,
    channel_key,
    walk_has_blob,
    walk_has_inline,
    walk_near,
    walk_stored_nearer,
    walk_top,
    walk_version,
)

cp, blobs = schema.checkpoints, schema.checkpoint_blobs


def lookup(dialect: Dialect, walk: Any, table: Any, on: list[Any]) -> tuple[Any, Any]:
    """Join the walk to the rows of `table` matching `on` (which names walk
    columns). On PostgreSQL as a LATERAL subquery, so each is a primary-key lookup
    per walked row whatever the planner's row estimates (a fresh table's estimate
    of one row per thread made it scan the thread once per step, quadratically)."""
    if dialect.lateral:
        # OFFSET 0 keeps the planner from flattening the subquery back into a join.
        rows = select(table).where(*on).offset(0).lateral(f"{table.name}_of_walk")
        return walk.join(rows, true()), rows
    return walk.join(table, and_(*on)), table


def chain_walk(dialect: Dialect, channels: int, count_target: bool) -> Any:
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
    d = dialect
    thread = bindparam(THREAD_ID, type_=Text)
    ns = bindparam(CHECKPOINT_NS, type_=Text)
    names = [bindparam(channel_key(i), type_=Text) for i in range(channels)]

    def probes(c: Any, real: bool, bounds: list[tuple[Any, Any]]) -> list[Any]:
        out: list[Any] = []
        for i, ch in enumerate(names):
            version = d.json_text(c.c.checkpoint, "channel_versions", ch)
            if not real:
                out += [
                    version.label(walk_version(i)),
                    false().label(walk_has_blob(i)),
                    false().label(walk_has_inline(i)),
                ]
                continue
            top, near = bounds[i]
            stored = exists().where(
                # on Citus, the bound thread: every table filtered on it (router rule)
                blobs.c.thread_id == (thread if d.citus else c.c.thread_id),
                blobs.c.checkpoint_ns == c.c.checkpoint_ns,
                blobs.c.channel == ch,
                blobs.c.version == version,
                non_empty,
            )
            none_here = and_(version <= top, or_(near.is_(None), version > near))
            out += [
                version.label(walk_version(i)),
                case((none_here, false()), else_=stored).label(walk_has_blob(i)),
                d.json_has_key(c.c.checkpoint, "channel_values", ch).label(walk_has_inline(i)),
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
        literal(0, Integer).label(DEPTH),
        *(false().label(walk_stored_nearer(i)) for i in range(channels)),
        *(top.label(walk_top(i)) for i, top in enumerate(tops)),
        *(near.label(walk_near(i)) for i, near in enumerate(nearest)),
        *probes(target, count_target, list(zip(tops, nearest, strict=True))),
    ).where(
        target.c.thread_id == thread,
        target.c.checkpoint_ns == ns,
        target.c.checkpoint_id == func.coalesce(bindparam(CHECKPOINT_ID, type_=Text), latest),
    )
    walk = anchor.cte("walk", recursive=True)
    done = [
        or_(walk.c[walk_stored_nearer(i)], walk.c[walk_has_blob(i)], walk.c[walk_has_inline(i)])
        for i in range(channels)
    ]
    parent = cp.alias("p")
    found, row = lookup(
        d,
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
            (walk.c[DEPTH] + 1).label(DEPTH),
            *(done[i].label(walk_stored_nearer(i)) for i in range(channels)),
            *(walk.c[walk_top(i)] for i in range(channels)),
            *(walk.c[walk_near(i)] for i in range(channels)),
            *probes(
                row,
                True,
                [(walk.c[walk_top(i)], walk.c[walk_near(i)]) for i in range(channels)],
            ),
        )
        .select_from(found)
        .where(not_(and_(*done)))
    )
    return walk.union_all(step)
