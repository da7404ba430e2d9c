"""`Planner.copy_thread`: refuse a target that has rows, else copy every row."""

from __future__ import annotations

from typing import Any

import pytest

from checkpointer.errors import ThreadNotEmptyError

from ..replay import DIALECTS, ids, planner, recording, recordings, replay

COPIES = recordings("copy_thread")


@pytest.mark.parametrize("rec", COPIES, ids=ids(COPIES))
def test_copy_thread_yields_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """Check the target, then copy checkpoints, blobs and writes; a target with rows
    stops the plan with ThreadNotEmptyError before any copy.
    Mutation: `if any(state.values()):` -> `if False:` in `Planner._copy_thread` ->
    fails (target_not_empty yields the copies instead of raising)."""
    replay(rec)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_not_empty_target_says_what_it_has(dialect: str) -> None:
    """The error names the kinds of rows the target holds.
    Mutation: `kinds = ", ".join(k for k, v in state.items() if v)` -> `if not v` ->
    fails."""
    (trace,) = replay(recording("copy_thread", "target_not_empty", dialect))
    assert isinstance(trace.raised, ThreadNotEmptyError)
    assert "(checkpoints, checkpoint_writes, checkpoint_blobs)" in str(trace.raised)


def test_sqlite_takes_the_write_lock_before_reading() -> None:
    """On SQLite the transaction starts with a write, so the emptiness check and the
    copy run under one write lock.
    Mutation: drop `yield from self._lock()` in `Planner._copy_thread` -> fails."""
    (trace,) = replay(recording("copy_thread", "empty_target", "sqlite"))
    assert trace.steps[0].statement is planner("sqlite").statements.write_lock
