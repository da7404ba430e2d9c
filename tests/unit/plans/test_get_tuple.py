"""`Planner.get_tuple`: one read (latest or by id) whose tagged rows decode to the
checkpoint tuple, released before decoding (`last`)."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.serde.types import TASKS

from ..replay import DIALECTS, ids, recording, recordings, replay
from ..tagged import encode

READS = recordings("get_tuple")


@pytest.mark.parametrize("rec", READS, ids=ids(READS))
def test_get_tuple_yields_and_returns_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """One step (the latest or by-id read, marked last) and the tuple the saver returned.
    Mutation: drop `last=True` from the get_latest step in `Planner.get_tuple` -> fails
    (latest: fetch/last)."""
    (trace,) = replay(rec)
    assert encode(trace.returned) == rec["result"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_format_1_checkpoint_reads_its_parents_sends(dialect: str) -> None:
    """A checkpoint older than format 4 gets its parent's TASKS writes as pending
    sends, in write order, with a channel version for them.
    Mutation: `document.get("v", 0) < 4` -> `< 1` in `codec.decode_tuple` -> fails."""
    (trace,) = replay(recording("get_tuple", "old_format_sends", dialect))
    checkpoint = trace.returned.checkpoint
    assert checkpoint["channel_values"][TASKS] == ["send-1", "send-2"]
    assert TASKS in checkpoint["channel_versions"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_blobs_and_writes_join_their_checkpoint(dialect: str) -> None:
    """The by-id read's blob rows become channel values (an "empty" one none) and its
    write rows pending writes, in `writes_sort_key` order.
    Mutation: `if blob[TYPE] != EMPTY:` -> `if True:` in `codec.decode_tuple` -> fails."""
    (trace,) = replay(recording("get_tuple", "by_id", dialect))
    result = trace.returned
    assert result.checkpoint["channel_values"] == {
        "count": 2,
        "doc": {"a": [1, 2]},
        "raw": b"\x00\x01",
    }
    assert result.pending_writes == [("task-a", "doc", {"x": 1}), ("task-a", "count", 5)]
