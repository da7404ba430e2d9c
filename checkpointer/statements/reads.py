"""Reading checkpoints: one statement answers a page of checkpoints with their blobs and
writes, as a `UNION ALL` of tagged rows (their `KIND`: checkpoint, blob, write, or a
pre-format-4 parent's pending send; labels and kinds in `rows`), which `plans` groups
back per checkpoint.

Which filters a page has (not their values) decides its statement: one per `PageShape`,
and per metadata filter shape, so SQLAlchemy's compiled cache stays small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from langgraph.checkpoint.serde.types import TASKS
from sqlalchemy import (
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    literal,
    literal_column,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.sql.expression import CompoundSelect

from ..dialects import Blob, Dialect, JsonDocument, filter_shape
from ..rows import (
    BEFORE,
    BLOB,
    CHANNEL,
    CHECKPOINT,
    CHECKPOINT_ID,
    CHECKPOINT_NS,
    FILTER_PREFIX,
    IDX,
    KEY_ID,
    KEY_NS,
    KEY_THREAD,
    KIND_BLOB,
    KIND_CHECKPOINT,
    KIND_SEND,
    KIND_WRITE,
    LIMIT,
    METADATA,
    PARENT_CHECKPOINT_ID,
    TASK_ID,
    TASK_PATH,
    THREAD_ID,
    TYPE,
    VERSION,
)
from .common import Family, blobs, cp, tagged, writes

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


class Reads(Family):
    """`get_latest`, `get_by_id` and the pages of `list`."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._filtered: dict[tuple[PageShape, tuple[Any, ...]], CompoundSelect[Any]] = {}

    def page(self, shape: PageShape, filter_clause: Any = None) -> Select[Any]:
        """The checkpoint rows of one page, newest first (ties broken by thread and
        namespace, so keyset pagination is exact)."""
        q = select(cp)
        if shape.thread:
            q = q.where(cp.c.thread_id == bindparam(THREAD_ID))
        if shape.namespace:
            q = q.where(cp.c.checkpoint_ns == bindparam(CHECKPOINT_NS))
        if shape.checkpoint_id:
            q = q.where(cp.c.checkpoint_id == bindparam(CHECKPOINT_ID))
        if shape.before:
            q = q.where(cp.c.checkpoint_id < bindparam(BEFORE))
        if shape.after_key:
            q = q.where(
                tuple_(cp.c.checkpoint_id, cp.c.thread_id, cp.c.checkpoint_ns)
                < tuple_(bindparam(KEY_ID), bindparam(KEY_THREAD), bindparam(KEY_NS))
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
            q = q.limit(bindparam(LIMIT, type_=Integer))
        return q

    def read(self, page: Select[Any], thread: bool = False) -> CompoundSelect[Any]:
        """A page of checkpoints with, as rows, the blobs their versions name, their
        pending writes, and the parents' pending sends of pre-format-4 checkpoints.
        `thread`: the page is of thread `thread_id`, which on Citus every table is
        filtered on (the router rule)."""
        d = self.dialect
        p = page.cte("page")
        versions = d.channel_versions(p.c.checkpoint)
        write_key = tuple_(writes.c.thread_id, writes.c.checkpoint_ns, writes.c.checkpoint_id)
        old_parents = select(p.c.thread_id, p.c.checkpoint_ns, p.c.parent_checkpoint_id).where(
            p.c.parent_checkpoint_id.is_not(None), d.checkpoint_format(p.c.checkpoint) < 4
        )
        write_columns = {n: writes.c[n] for n in _ROW_COLUMNS if n in writes.c}
        routed = d.citus and thread
        of_thread = [writes.c.thread_id == bindparam(THREAD_ID)] if routed else []
        return union_all(
            _tagged(KIND_CHECKPOINT, {n: p.c[n] for n in _ROW_COLUMNS if n in p.c and n != TYPE}),
            self._blobs_of(p, versions, routed),
            _tagged(KIND_WRITE, write_columns).where(
                *of_thread,
                write_key.in_(select(p.c.thread_id, p.c.checkpoint_ns, p.c.checkpoint_id)),
            ),
            _tagged(KIND_SEND, write_columns).where(
                *of_thread, writes.c.channel == literal(TASKS, Text), write_key.in_(old_parents)
            ),
        )

    def _blobs_of(self, p: Any, versions: Any, routed: bool = False) -> Select[Any]:
        """The blob rows a page's channel versions name. On Citus, a page of one thread
        probes them by the bound `thread_id`; a page across threads joins them without
        LATERAL (Citus cannot push a LATERAL subquery with a LIMIT down to the shards)."""
        value = self.dialect.version_value(versions, p.c.checkpoint)
        key = (
            blobs.c.thread_id == (bindparam(THREAD_ID) if routed else p.c.thread_id),
            blobs.c.checkpoint_ns == p.c.checkpoint_ns,
            blobs.c.channel == versions.c.key,
            blobs.c.version == cast(value, Text),
        )
        if self.dialect.lateral and (routed or not self.dialect.citus):
            # One primary-key probe per (checkpoint, version). LIMIT 1 keeps PostgreSQL
            # from flattening the subquery into a join, which it would plan as a hash
            # join over the whole blobs table once a page has a few dozen checkpoints
            # (`jsonb_each_text` is estimated at 100 rows a document).
            blob = select(blobs).where(*key).limit(literal_column("1", Integer)).lateral("blob")
            return (
                _tagged(KIND_BLOB, {n: blob.c[n] for n in _ROW_COLUMNS if n in blob.c})
                .select_from(p)
                .join(versions, self.dialect.may_have_blob(p.c.checkpoint, versions.c.key))
                .join(blob, true())
            )
        wanted = (
            select(p.c.thread_id, p.c.checkpoint_ns, versions.c.key, cast(value, Text))
            .select_from(p)
            .join(versions, true())
        )
        blob_key = tuple_(
            blobs.c.thread_id, blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.version
        )
        return _tagged(KIND_BLOB, {n: blobs.c[n] for n in _ROW_COLUMNS if n in blobs.c}).where(
            blob_key.in_(wanted)
        )

    @cached_property
    def get_latest(self) -> CompoundSelect[Any]:
        return self.read(self.page(PageShape(thread=True, namespace=True, latest=True)), True)

    @cached_property
    def get_by_id(self) -> CompoundSelect[Any]:
        return self.read(
            self.page(PageShape(thread=True, namespace=True, checkpoint_id=True)), True
        )

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
            return statement, self.dialect.metadata_filter_params(filter, FILTER_PREFIX)
        clause, params = self.dialect.metadata_filter(cp.c.metadata, filter, FILTER_PREFIX)
        if len(self._filtered) >= FILTER_SHAPES:
            self._filtered.clear()
        statement = self._filtered[key] = self.read(self.page(shape, clause), shape.thread)
        return statement, params

    @cache  # noqa: B019 - one Statements per dialect, kept for the process
    def _list_page(self, shape: PageShape) -> CompoundSelect[Any]:
        return self.read(self.page(shape), shape.thread)


_ROW_COLUMNS: dict[str, Any] = {
    THREAD_ID: Text,
    CHECKPOINT_NS: Text,
    CHECKPOINT_ID: Text,
    PARENT_CHECKPOINT_ID: Text,
    CHECKPOINT: JsonDocument,
    METADATA: JsonDocument,
    CHANNEL: Text,
    VERSION: Text,
    TYPE: Text,
    BLOB: Blob,
    TASK_ID: Text,
    TASK_PATH: Text,
    IDX: Integer,
}
"""The columns of a read's tagged rows; a row leaves NULL what its kind lacks."""


def _tagged(kind: str, columns: Mapping[str, Any]) -> Select[Any]:
    return tagged(kind, _ROW_COLUMNS, columns)
