"""The incremental blob encoding without a database: `Encoder` round trips, bounded
chains and memory, a missing base named, and the plans of a saver with the option
(`put`, `get_tuple` fetching bases, `record_encoding`, `decode_blobs`) driven with fake
rows."""

from __future__ import annotations

import functools
import random
import string
from typing import Any

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpointer import incremental
from checkpointer.codec import BlobRow, CheckpointRow
from checkpointer.errors import BlobEncodingError
from checkpointer.incremental import Encoder, Memory, MissingBaseError
from checkpointer.plans import Planner
from checkpointer.rows import KIND, KIND_BLOB, KIND_CHECKPOINT
from checkpointer.statements import EncodedStatements, for_dialect

SERDE = JsonPlusSerializer()


@functools.cache
def text(i: int) -> str:
    """~200 characters of message i that compress like text, not like a repeated line."""
    rng = random.Random(i)
    return " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8))) for _ in range(40)
    )


def value(n: int) -> list[str]:
    """n messages: the first 100 long, then short ones (each delta then adds so little
    that only `MAX_DELTAS` ends a chain)."""
    return [f"message {i}: {text(i)}" if i < 100 else f"ok {i}" for i in range(n)]


def put_rows(
    thread: str, step: int, parent: str | None, n: int
) -> tuple[CheckpointRow, list[BlobRow]]:
    version = f"{step:032}.0.5"
    type_, data = SERDE.dumps_typed(value(n))
    row = CheckpointRow(
        thread_id=thread,
        checkpoint_ns="",
        checkpoint_id=f"c{step:04}",
        parent_checkpoint_id=parent,
        checkpoint={"channel_versions": {"messages": version}},
        metadata={},
    )
    blob = BlobRow(
        thread_id=thread, checkpoint_ns="", channel="messages", version=version, type=type_,
        blob=data,
    )  # fmt: skip
    return row, [blob]


def write_chain(encoder: Encoder, steps: int, thread: str = "t", start: int = 4) -> list[BlobRow]:
    """`steps` puts of a growing list, each committed; the rows stored."""
    stored: list[BlobRow] = []
    parent = None
    for step in range(steps):
        row, blobs = put_rows(thread, step, parent, step + start)
        out, committed = encoder.encode(row, blobs)
        committed()
        stored += out
        parent = row["checkpoint_id"]
    return stored


def test_round_trip_and_bounded_chains() -> None:
    """Every stored version decodes to the serde's bytes from the stored rows alone; a
    delta names a full copy or a plain row, never a delta; at most `MAX_DELTAS` deltas
    per base; and the whole chain is far smaller than the values.
    Mutation: `previous.deltas >= MAX_DELTAS` -> `False` in `Encoder._delta` -> fails."""
    encoder = Encoder()
    stored = write_chain(encoder, 150, start=100)  # a long list, one short message a step
    by_version = {r["version"]: r for r in stored}
    per_base: dict[str, int] = {}
    for step, r in enumerate(stored):
        base = incremental.base_version(r["type"])
        if base is not None:
            assert incremental.base_version(by_version[base]["type"]) is None
            per_base[base] = per_base.get(base, 0) + 1
        reader = Encoder(Memory(0, 0))  # remembers nothing: bases from the rows
        plain = reader.decode([r], [by_version[base]] if base else [])[0]
        assert (plain["type"], plain["blob"]) == SERDE.dumps_typed(value(step + 100))
    assert max(per_base.values()) <= incremental.MAX_DELTAS
    assert len(per_base) >= 2
    raw = sum(len(SERDE.dumps_typed(value(s + 100))[1]) for s in range(150))
    assert sum(len(r["blob"] or b"") for r in stored) < raw / 20


def test_small_values_stay_plain_and_a_strange_parent_writes_a_full_copy() -> None:
    """Values under `MIN_SIZE` are stored as they are; a put whose parent is not the
    remembered checkpoint (another writer, a fork, a restart) writes no delta; an
    uncommitted put is not remembered.
    Mutation: drop the parent check in `Encoder.encode` -> fails."""
    encoder = Encoder()
    row, blobs = put_rows("t", 0, None, 1)
    out, _ = encoder.encode(row, blobs)
    assert out == blobs  # under 1 kB: plain
    write_chain(encoder, 5)
    row, blobs = put_rows("t", 5, "someone-else", 12)
    out, _ = encoder.encode(row, blobs)
    assert out[0]["type"] == incremental.FULL
    row, blobs = put_rows("t", 5, "c0004", 12)
    out, _committed = encoder.encode(row, blobs)  # never committed
    assert out[0]["type"].startswith(incremental.DELTA)
    row, blobs = put_rows("t", 6, "c0005", 13)
    out, _ = encoder.encode(row, blobs)
    assert out[0]["type"] == incremental.FULL


def test_missing_base_is_named() -> None:
    encoder = Encoder()
    stored = write_chain(encoder, 4)
    delta = stored[-1]
    assert incremental.base_version(delta["type"]) is not None
    with pytest.raises(MissingBaseError, match="not in the database"):
        Encoder(Memory(0, 0)).decode([delta])


def test_memory_is_bounded() -> None:
    """The least recently used threads go first, within the byte budget."""
    memory = Memory(max_bytes=100_000, max_threads=3)
    encoder = Encoder(memory)
    for thread in "abcde":
        write_chain(encoder, 3, thread)
    assert memory.get(("a", "")) is None
    assert memory.get(("e", "")) is not None
    assert len(memory._known) <= 3
    assert memory._bytes <= 100_000


def planner() -> Planner:
    return Planner(for_dialect("sqlite", True), SERDE, Encoder())


def test_get_tuple_reads_missing_bases_with_one_more_statement() -> None:
    """A delta whose base neither the rows nor the memory hold: one `blobs_by_version`
    step, then the checkpoint decodes.
    Mutation: return `rows` unchanged from `Planner._plain_rows` -> fails."""
    stored = write_chain(Encoder(), 6)
    delta = stored[-1]
    base = incremental.base_version(delta["type"])
    assert base is not None
    p = planner()
    plan = p.get_tuple({"configurable": {"thread_id": "t", "checkpoint_id": "c0005"}})
    step = next(plan.steps)
    assert not step.last
    checkpoint = {
        KIND: KIND_CHECKPOINT, "thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c0005",
        "parent_checkpoint_id": "c0004", "metadata": {}, "type": None, "blob": None,
        "channel": None, "version": None,
        "checkpoint": {"v": 4, "id": "c0005", "channel_versions": {"messages": delta["version"]},
                       "channel_values": {}},
    }  # fmt: skip
    fetch = plan.steps.send([checkpoint, {KIND: KIND_BLOB, **delta}])
    assert fetch.statement is p.statements.blobs_by_version
    assert fetch.params == {"thread_id": "t", "checkpoint_ns": "", "bases": [("messages", base)]}
    base_row = next(r for r in stored if r["version"] == base)
    with pytest.raises(StopIteration) as done:
        plan.steps.send([dict(base_row)])
    assert done.value.value.checkpoint["channel_values"]["messages"] == value(9)
    # remembered: the same read again needs no base statement
    plan = p.get_tuple({"configurable": {"thread_id": "t", "checkpoint_id": "c0005"}})
    next(plan.steps)
    with pytest.raises(StopIteration) as done:
        plan.steps.send([checkpoint, {KIND: KIND_BLOB, **delta}])
    assert done.value.value.checkpoint["channel_values"]["messages"] == value(9)


def test_put_remembers_only_once_committed() -> None:
    p = planner()
    _row, blobs = put_rows("t", 0, None, 10)
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    checkpoint: Any = {
        "v": 4, "id": "c0000", "ts": "", "channel_values": {"messages": value(10)},
        "channel_versions": {"messages": blobs[0]["version"]}, "versions_seen": {},
    }  # fmt: skip
    plan, _ = p.put(config, checkpoint, {}, {"messages": blobs[0]["version"]})
    assert plan.committed is not None
    assert p.encoder is not None
    assert p.encoder.memory.get(("t", "")) is None
    plan.committed()
    assert p.encoder.memory.get(("t", "")) is not None


def test_record_encoding_and_refusal() -> None:
    """With the option: one insert-or-ignore of the setting. Without: a read of it, and
    `BlobEncodingError` when it says "incremental"."""
    on = planner().record_encoding()
    step = next(on.steps)
    assert step.statement is for_dialect("sqlite", True).put_setting
    assert step.params == {"setting_name": "blob_encoding", "setting_value": "incremental"}
    off = Planner(for_dialect("sqlite"), SERDE).record_encoding()
    step = next(off.steps)
    assert step.fetch
    with pytest.raises(BlobEncodingError, match="decode-blobs"):
        off.steps.send([{"value": "incremental"}])
    fine = Planner(for_dialect("sqlite"), SERDE).record_encoding()
    next(fine.steps)
    with pytest.raises(StopIteration):
        fine.steps.send([])


def test_decode_blobs_plans() -> None:
    """Batches of encoded rows rewritten as the serde's rows, then the setting removed
    when none is left."""
    stored = write_chain(Encoder(), 8)
    encoded = [r for r in stored if incremental.is_encoded(r["type"])]
    assert encoded
    p = planner()
    decoding = p.decode_blobs(batch=len(encoded) + 1)
    plans = iter(decoding)
    batch = next(plans)
    assert batch.atomic
    step = next(batch.steps)  # SQLite: the write lock first
    step = batch.steps.send(None)
    assert step.params["limit"] == len(encoded) + 1
    update = batch.steps.send([dict(r) for r in encoded])
    assert update.statement is p.statements.plain_blob
    for params, r in zip(update.params, encoded, strict=False):  # type: ignore[arg-type]
        n = int(r["version"].split(".")[0]) + 4
        assert (params["new_type"], params["new_blob"]) == SERDE.dumps_typed(value(n))
    with pytest.raises(StopIteration):
        batch.steps.send(None)
    assert decoding.rows == len(encoded)
    last = next(plans)
    next(last.steps)
    step = last.steps.send(None)
    assert step.params["limit"] == 1
    assert last.steps.send([]).statement is p.statements.delete_setting
    assert isinstance(p.statements, EncodedStatements)
