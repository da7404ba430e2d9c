"""`Planner.delete_thread` and `Planner.delete_for_runs`: deletes in one transaction."""

from __future__ import annotations

from typing import Any

import pytest

from checkpointer.rows import THREAD_ID

from ..replay import DIALECTS, ids, recording, recordings, replay

DELETES = recordings("delete_thread")
RUNS = recordings("delete_for_runs")


@pytest.mark.parametrize("rec", DELETES, ids=ids(DELETES))
def test_delete_thread_yields_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """Writes, blobs, then checkpoints of the thread, in one transaction.
    Mutation: `atomic=True` -> `atomic=False` in `Planner.delete_thread` -> fails."""
    (trace,) = replay(rec)
    assert [s.params for s in trace.steps] == [{THREAD_ID: "main"}] * 3


@pytest.mark.parametrize("rec", RUNS, ids=ids(RUNS))
def test_delete_for_runs_yields_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """Find the runs' threads, delete their writes and checkpoints, then the blobs of
    those threads nothing references; a run with no checkpoints deletes nothing.
    Mutation: drop `threads |= found` in `Planner._delete_for_runs` -> fails (one_run:
    no blob clean-up step)."""
    replay(rec)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_unknown_runs_only_look(dialect: str) -> None:
    """Runs without checkpoints: one lookup (after SQLite's write lock), no delete.
    Mutation: `if not found: continue` -> `if not found: pass` in
    `Planner._delete_for_runs` -> fails."""
    (trace,) = replay(recording("delete_for_runs", "unknown_run", dialect))
    assert [s.statement.is_dml for s in trace.steps if s.fetch] == [False]
    assert all(s.fetch or s.params is None for s in trace.steps)
