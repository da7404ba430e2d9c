"""Every saver operation as a plan: a generator that yields statements and receives
their rows, written once and driven by the async executor (`aio`) or the sync one
(`sync`). Neither executor knows SQL; plans do no I/O, so they run the same over any
connection and can be tested step by step without a database.

Values are encoded when a plan is made, before any connection is checked out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.sql.base import Executable

from . import codec
from .codec import BlobRow, CheckpointRow, WriteRow
from .statements import PageShape, Statements

T = TypeVar("T")

LIST_CHUNK = 1000
"""Checkpoints per statement when `list` has no limit (bounds memory, not results)."""


@dataclass(frozen=True)
class Step:
    """One statement to execute; `params` a dict, or a list of dicts for executemany."""

    statement: Executable
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    fetch: bool = False


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
    emits: bool = field(default=False)


class Planner:
    """Builds the plans of one dialect with one serializer."""

    def __init__(self, statements: Statements, serde: SerializerProtocol) -> None:
        self.statements = statements
        self.serde = serde

    # -- writing -----------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[Plan[None], RunnableConfig]:
        row, blobs = codec.encode_checkpoint(self.serde, config, checkpoint, metadata, new_versions)
        if self.statements.dialect.cte_dml:
            return Plan(
                _one(Step(self.statements.put_checkpoint, _with_blob_arrays(row, blobs)))
            ), (codec.next_config(row))
        return Plan(self._put_separately(row, blobs), atomic=bool(blobs)), codec.next_config(row)

    def _put_separately(self, row: CheckpointRow, blobs: list[BlobRow]) -> Steps[None]:
        if blobs:
            yield Step(self.statements.put_blobs, blobs)
        yield Step(self.statements.put_checkpoint, {**row, "type": None})

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
        if self.statements.dialect.batch_as_arrays:
            return Plan(_one(Step(self.statements.put_writes, _write_arrays(rows))))
        return Plan(_one(Step(self.statements.put_writes, rows)), atomic=len(rows) > 1)

    def delete_thread(self, thread_id: str) -> Plan[None]:
        return Plan(
            _each(self.statements.delete_thread, {"thread_id": codec.thread_key(thread_id)}),
            atomic=True,
        )

    # -- reading -----------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> Plan[CheckpointTuple | None]:
        where = codec.target(config)
        if where["checkpoint_id"] is None:
            params: dict[str, Any] = {
                "thread_id": where["thread_id"],
                "checkpoint_ns": where["checkpoint_ns"],
            }
            step = Step(self.statements.get_latest, params, fetch=True)
        else:
            step = Step(self.statements.get_by_id, dict(where), fetch=True)
        return Plan(self._first(step))

    def _first(self, step: Step) -> Steps[CheckpointTuple | None]:
        rows = yield step
        tuples = self.decode(rows or ())
        return tuples[0] if tuples else None

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
            params["thread_id"] = where["thread_id"]
            shape["thread"] = True
            if configurable.get("checkpoint_ns") is not None:
                params["checkpoint_ns"] = where["checkpoint_ns"]
                shape["namespace"] = True
            if where["checkpoint_id"] is not None:
                params["checkpoint_id"] = where["checkpoint_id"]
                shape["checkpoint_id"] = True
        if before is not None:
            before_id = (before.get("configurable") or {}).get("checkpoint_id")
            if before_id is None:
                raise ValueError(
                    'before must name a checkpoint: config["configurable"] has no "checkpoint_id"'
                )
            params["before"] = str(before_id)
            shape["before"] = True
        if filter is not None and not isinstance(filter, Mapping):
            raise TypeError(f"filter must be a mapping of metadata keys, got {filter!r}")
        if limit is not None:
            limit = int(limit)
            if limit <= 0:
                return Plan(_none())
        clean = codec.clean_json(dict(filter), "filter") if filter else None
        return Plan(self._list(shape, clean, params, limit), emits=True)

    def _list(
        self,
        shape: dict[str, bool],
        filter: dict[str, Any] | None,
        params: dict[str, Any],
        limit: int | None,
    ) -> Steps[None]:
        if limit is not None:
            statement, filter_params = self.statements.list_page(
                PageShape(**shape, limit=True), filter
            )
            rows = yield Step(statement, {**params, **filter_params, "limit": limit}, True)
            for item in self.decode(rows or ()):
                yield Emit(item)
            return
        first, filter_params = self.statements.list_page(PageShape(**shape, limit=True), filter)
        rest, _ = self.statements.list_page(PageShape(**shape, limit=True, after_key=True), filter)
        statement, key = first, dict[str, str]()
        while True:
            page_params = {**params, **filter_params, **key, "limit": LIST_CHUNK}
            rows = yield Step(statement, page_params, True)
            tuples = self.decode(rows or ())
            for item in tuples:
                yield Emit(item)
            if len(tuples) < LIST_CHUNK:
                return
            last = tuples[-1].config["configurable"]
            key = {
                "key_id": last["checkpoint_id"],
                "key_thread": last["thread_id"],
                "key_ns": last["checkpoint_ns"],
            }
            statement = rest

    def decode(self, rows: Rows) -> list[CheckpointTuple]:
        """Group a read's tagged rows back into checkpoint tuples, newest first."""
        checkpoints: list[Mapping[str, Any]] = []
        blob_rows: dict[tuple[str, str, str, str], Mapping[str, Any]] = {}
        writes: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for r in rows:
            kind = r["kind"]
            if kind == "c":
                checkpoints.append(r)
            elif kind == "b":
                blob_rows[(r["thread_id"], r["checkpoint_ns"], r["channel"], r["version"])] = r
            else:
                writes[(kind, r["thread_id"], r["checkpoint_ns"], r["checkpoint_id"])].append(r)
        checkpoints.sort(
            key=lambda r: (r["checkpoint_id"], r["thread_id"], r["checkpoint_ns"]), reverse=True
        )
        out = []
        for c in checkpoints:
            thread_id, ns = c["thread_id"], c["checkpoint_ns"]
            versions = (c["checkpoint"] or {}).get("channel_versions") or {}
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
                    writes.get(("w", thread_id, ns, c["checkpoint_id"]), ()),
                    writes.get(("s", thread_id, ns, c["parent_checkpoint_id"]), ()),
                )
            )
        return out


def _one(step: Step) -> Steps[None]:
    yield step


def _each(statements: Sequence[Executable], params: Mapping[str, Any]) -> Steps[None]:
    for statement in statements:
        yield Step(statement, params)


def _none() -> Steps[None]:
    return
    yield  # pragma: no cover - makes this a generator


def _with_blob_arrays(row: CheckpointRow, blobs: list[BlobRow]) -> dict[str, Any]:
    return {
        **row,
        "type": None,
        "b_thread_id": row["thread_id"],
        "b_checkpoint_ns": row["checkpoint_ns"],
        "b_channel": [b["channel"] for b in blobs],
        "b_version": [b["version"] for b in blobs],
        "b_type": [b["type"] for b in blobs],
        "b_blob": [b["blob"] for b in blobs],
    }


def _last_per_key(rows: list[WriteRow]) -> list[WriteRow]:
    """One row per (task, idx): a statement may not upsert the same row twice, and the
    last of two special writes to one channel is the one that stands."""
    by_idx = {r["idx"]: r for r in rows}
    return list(by_idx.values()) if len(by_idx) < len(rows) else rows


def _write_arrays(rows: list[WriteRow]) -> dict[str, Any]:
    first = rows[0]
    return {
        "thread_id": first["thread_id"],
        "checkpoint_ns": first["checkpoint_ns"],
        "checkpoint_id": first["checkpoint_id"],
        **{
            f"w_{name}": [r[name] for r in rows]  # type: ignore[literal-required]
            for name in ("task_id", "task_path", "channel", "type", "blob", "idx")
        },
    }
