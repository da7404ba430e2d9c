"""`Planner.sweep`: one plan per batch, made as the last one ran; a dry run only reads,
a sweep deletes or prunes inside the batch's transaction; the report adds up the
differences of the batch's sizes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from checkpointer.ids import id_floor
from checkpointer.plans import Step
from checkpointer.rows import AFTER_ID, CUTOFF, LIMIT

from ..replay import DIALECTS, drive, ids, params, planner, recording, recordings, replay
from ..tagged import decode, encode

SWEEPS = recordings("sweep")


@pytest.mark.parametrize("rec", SWEEPS, ids=ids(SWEEPS))
def test_sweep_plans_yield_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """Each batch's steps as recorded, and the report the saver returned.
    Mutation: `r.writes += max(0, before - after)` -> `before` in `Sweep._batch` ->
    fails (the report counts kept writes)."""
    replay(rec)
    sweep = planner(rec["dialect"]).sweep(**decode(rec["args"]))
    for plan, entry in zip(sweep, rec["plans"], strict=True):
        drive(plan, (decode(e["rows"]) for e in entry["events"] if "step" in e))
    assert encode(sweep.report) == rec["result"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_dry_run_changes_nothing(dialect: str) -> None:
    """A dry run's batch reads (`sweep_batch`, `batch_sizes`) and writes nothing,
    outside a transaction.
    Mutation: `elif self.strategy == "delete":` -> `if` in `Sweep._batch` -> fails."""
    rec = recording("sweep", "dry_run", dialect)
    traces = replay(rec)
    for trace in traces:
        assert all(isinstance(s, Step) and s.fetch for s in trace.steps)
    assert rec["plans"][0]["atomic"] is False
    assert rec["result"]["$SweepReport"]["threads"] > 0


@pytest.mark.parametrize("dialect", DIALECTS)
def test_batches_follow_the_keyset_and_stop_at_the_limit(dialect: str) -> None:
    """`limit=2` asks for two threads only; the cutoff is `now - idle_for` as an id;
    the next batch starts after the last thread of the one before.
    Mutation: `size = min(SWEEP_BATCH, ...)` -> `SWEEP_BATCH` -> fails."""
    rec = recording("sweep", "keep_latest", dialect)
    (trace,) = replay(rec)
    batch = next(params(s) for s in trace.steps if LIMIT in (s.params or {}))
    assert batch[LIMIT] == 2
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert batch[CUTOFF] == id_floor(now - timedelta(days=1))
    assert AFTER_ID not in batch


def test_bad_arguments_fail_before_any_statement() -> None:
    """A bad strategy, limit or clock raises before any plan is made.
    Mutation: drop the `now` type check in `Planner.sweep` -> fails."""
    p = planner("sqlite")
    with pytest.raises(ValueError, match="unknown sweep strategy"):
        p.sweep(idle_for=timedelta(days=1), strategy="all")
    with pytest.raises(ValueError, match="limit must be a positive"):
        p.sweep(idle_for=timedelta(days=1), limit=0)
    with pytest.raises(TypeError, match="now must be a datetime"):
        p.sweep(idle_for=timedelta(days=1), now="today")  # type: ignore[arg-type]
