"""`Planner.delta_history`: one statement; its rows grouped per channel into writes
(oldest checkpoint first, `writes_sort_key` within one) and a seed."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from ..replay import DIALECTS, drive, ids, make_plans, planner, recording, recordings, replay
from ..tagged import decode, encode

HISTORIES = recordings("delta_history")


@pytest.mark.parametrize("rec", HISTORIES, ids=ids(HISTORIES))
def test_delta_history_yields_and_returns_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """One step (the walk for that many channels, marked last) and the saver's result.
    Mutation: `(r[VALUE] or {}).get(channel)` -> `r[VALUE]` in
    `Planner._delta_history` -> fails (the inline seed of `n` is the whole object)."""
    replay(rec)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_writes_come_oldest_first_whatever_the_row_order(dialect: str) -> None:
    """A database may return the union's rows in any order: the plan orders the writes.
    Mutation: `sorted(found[channel], key=...)` -> `found[channel]` in
    `Planner._delta_history` -> fails."""
    rec = recording("delta_history", "seeds_and_writes", dialect)
    (plan,), _ = make_plans(planner(dialect), rec)
    (event,) = rec["plans"][0]["events"]
    trace = drive(plan, [list(reversed(decode(event["rows"])))])
    assert encode(trace.returned) == rec["result"]
    assert trace.returned["log"]["seed"] == _DeltaSnapshot(["s0"])


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_channels_no_statement(dialect: str) -> None:
    """No channels asked: an empty result, no statement.
    Mutation: drop `if not names: return Plan(_value({}))` -> fails."""
    (trace,) = replay(recording("delta_history", "no_channels", dialect))
    assert trace.yielded == []
    assert trace.returned == {}
