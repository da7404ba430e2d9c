"""Delta history (`get_delta_channel_history`): per channel, the writes on its chain and
its seed, in one statement over the chain walk (`walk`), whatever the depth.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    func,
    literal,
    not_,
    select,
    true,
    union_all,
)
from sqlalchemy.sql.expression import CompoundSelect

from ..dialects import Blob, JsonDocument
from ..rows import (
    BLOB,
    CHANNEL,
    CHECKPOINT_ID,
    CHECKPOINT_NS,
    DEPTH,
    IDX,
    KIND_BLOB,
    KIND_VALUE,
    KIND_WRITE,
    TASK_ID,
    TASK_PATH,
    THREAD_ID,
    TYPE,
    VALUE,
    channel_key,
    walk_has_blob,
    walk_has_inline,
    walk_stored_nearer,
    walk_version,
)
from .common import Family, blobs, cp, tagged, writes
from .walk import chain_walk, lookup

_HISTORY_COLUMNS: dict[str, Any] = {
    CHECKPOINT_ID: Text,
    CHANNEL: Text,
    TASK_ID: Text,
    TASK_PATH: Text,
    IDX: Integer,
    TYPE: Text,
    BLOB: Blob,
    VALUE: JsonDocument,
}
"""The columns of a history row (`checkpoint_id` and `channel` always set)."""


class History(Family):
    """`delta_history(channels)`."""

    @cache  # noqa: B019 - one Statements per dialect, kept for the process
    def delta_history(self, channels: int) -> CompoundSelect[Any]:
        """Everything `get_delta_channel_history` returns for `channels` channels, in
        one statement: per channel, the writes on its chain (`w`), and its seed as a
        blob (`b`) or as the inline `channel_values` object (`v`). Rows carry the
        checkpoint they belong to (ancestors have smaller ids: oldest first is id order)."""
        d = self.dialect
        walk = chain_walk(d, channels, count_target=False)
        thread = bindparam(THREAD_ID, type_=Text)
        ns = bindparam(CHECKPOINT_NS, type_=Text)
        branches: list[Select[Any]] = []
        for i in range(channels):
            ch = bindparam(channel_key(i), type_=Text)
            on_chain = and_(walk.c[DEPTH] > 0, not_(walk.c[walk_stored_nearer(i)]))
            branches += self._chain_writes(walk, on_chain, ch, i)
            found, b = lookup(
                d,
                walk,
                blobs,
                [
                    blobs.c.thread_id == thread,
                    blobs.c.checkpoint_ns == ns,
                    blobs.c.channel == ch,
                    blobs.c.version == walk.c[walk_version(i)],
                ],
            )
            branches.append(
                _history_row(KIND_BLOB, walk.c.checkpoint_id, ch, {n: b.c[n] for n in (TYPE, BLOB)})
                .select_from(found)
                .where(on_chain, walk.c[walk_has_blob(i)])
            )
            found, c = lookup(
                d,
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
                    KIND_VALUE,
                    walk.c.checkpoint_id,
                    ch,
                    {VALUE: d.json_member(c.c.checkpoint, "channel_values")},
                )
                .select_from(found)
                .where(on_chain, walk.c[walk_has_inline(i)], not_(walk.c[walk_has_blob(i)]))
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
        thread = bindparam(THREAD_ID, type_=Text)
        ns = bindparam(CHECKPOINT_NS, type_=Text)
        columns = (TASK_ID, TASK_PATH, IDX, TYPE, BLOB)
        found, w = lookup(
            self.dialect,
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
            _history_row(KIND_WRITE, walk.c.checkpoint_id, ch, {n: w.c[n] for n in columns})
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
            KIND_WRITE, writes.c.checkpoint_id, ch, {n: writes.c[n] for n in columns}
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


def _history_row(
    kind: str, checkpoint_id: Any, channel: Any, columns: dict[str, Any]
) -> Select[Any]:
    return tagged(
        kind, _HISTORY_COLUMNS, {CHECKPOINT_ID: checkpoint_id, CHANNEL: channel, **columns}
    )
