"""`Planner.put` with a blob over `large_blob` on PostgreSQL (`staged_blobs`): the blob is
sent in chunks to a large object, stored from it and the object dropped, all in one
transaction, then the checkpoint with the other blobs. Thresholds made small here; run
for real in tests/runtime/test_memory.py."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

from checkpointer.rows import B_CHANNEL, LO_CHUNK, LO_ID, LO_OFFSET

from ..replay import params, planner


def test_large_blob_is_staged_in_chunks() -> None:
    """Steps: stage (first chunk, fetch), append the rest at their offsets, store, drop,
    then `put_checkpoint` with only the small blob; the plan is atomic.
    Mutation: `range(size, len(data), size)` -> `range(size, len(data) - 1, size)` in
    `Planner._stage` -> fails (the last chunk is not sent)."""
    p = planner("postgresql")
    p.large_blob, p.blob_chunk = 10, 4
    checkpoint: Any = empty_checkpoint()
    big = bytes(range(13))
    checkpoint["channel_values"] = {"big": big, "small": ["x"]}
    checkpoint["channel_versions"] = {"big": "1", "small": "1"}
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    plan, _ = p.put(config, checkpoint, {}, {"big": "1", "small": "1"})
    assert plan.atomic
    s = p.statements
    steps, rows = [], None
    try:
        while True:
            step = plan.steps.send(rows)
            steps.append(step)
            rows = [{LO_ID: 42}] if step.fetch else None
    except StopIteration:
        pass
    kinds = [step.statement for step in steps]
    assert kinds == [
        s.stage_blob, s.append_blob, s.append_blob, s.append_blob,
        s.put_staged_blob, s.drop_staged_blob, s.put_checkpoint,
    ]  # fmt: skip
    chunks = [params(st)[LO_CHUNK] for st in steps[:4]]
    assert b"".join(chunks) == big
    assert [params(st)[LO_OFFSET] for st in steps[1:4]] == [4, 8, 12]
    assert {params(st)[LO_ID] for st in steps[1:6]} == {42}
    assert params(steps[4])["channel"] == "big"
    assert params(steps[6])[B_CHANNEL] == ["small"]


def test_small_blobs_are_not_staged() -> None:
    """Blobs at or under `large_blob` stay in the one-statement `put_checkpoint`.
    Mutation: `len(data) > self.large_blob` -> `len(data) >= 0` in `Planner._is_large`
    -> fails."""
    p = planner("postgresql")
    checkpoint: Any = empty_checkpoint()
    checkpoint["channel_values"] = {"doc": b"x" * 100}
    checkpoint["channel_versions"] = {"doc": "1"}
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    plan, _ = p.put(config, checkpoint, {}, {"doc": "1"})
    step = next(plan.steps)
    assert step.statement is p.statements.put_checkpoint
    assert not plan.atomic


def test_large_write_is_staged_in_chunks() -> None:
    """`put_writes` with a value over `large_blob`: staged like a blob, stored from the
    large object by `put_staged_write` (its keys, idx included), the object dropped,
    the small writes in one `put_writes` after; atomic.
    Mutation: `return Plan(self._put_writes_staged(rows), atomic=True)` -> `atomic=False`
    in `Planner.put_writes` -> fails."""
    p = planner("postgresql")
    p.large_blob, p.blob_chunk = 10, 4
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c"}}
    big = b"y" * 11
    plan = p.put_writes(config, [("a", "small"), ("b", big)], "task", "")
    assert plan.atomic
    s = p.statements
    steps, rows = [], None
    try:
        while True:
            step = plan.steps.send(rows)
            steps.append(step)
            rows = [{LO_ID: 7}] if step.fetch else None
    except StopIteration:
        pass
    assert [step.statement for step in steps] == [
        s.stage_blob, s.append_blob, s.append_blob,
        s.put_staged_write, s.drop_staged_blob, s.put_writes,
    ]  # fmt: skip
    stored = params(steps[3])
    assert (stored[LO_ID], stored["channel"], stored["idx"], stored["task_id"]) == (
        7,
        "b",
        1,
        "task",
    )
    assert params(steps[5])["w_channel"] == ["a"]
