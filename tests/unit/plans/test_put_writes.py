"""`Planner.put_writes`: one task's writes in one statement (arrays on PostgreSQL,
executemany on SQLite), special channels at their fixed negative index."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.base import WRITES_IDX_MAP

from checkpointer.rows import CHANNEL, IDX, W_CHANNEL, W_IDX

from ..replay import DIALECTS, ids, recording, recordings, replay

WRITES = recordings("put_writes")


@pytest.mark.parametrize("rec", WRITES, ids=ids(WRITES))
def test_put_writes_yields_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """Same statement and params as the recorded run.
    Mutation: `_last_per_key` returns `rows` unchanged -> fails (special: the first
    `__error__` write is kept beside the second)."""
    replay(rec)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_special_channels_use_their_fixed_index(dialect: str) -> None:
    """`__error__` and `__interrupt__` go to WRITES_IDX_MAP's negative idx (so a retry
    replaces them), and of two writes to one special channel the last one stands.
    Mutation: `idx=WRITES_IDX_MAP.get(channel, idx)` -> `idx=idx` in
    `codec.encode_writes` -> fails."""
    (trace,) = replay(recording("put_writes", "special", dialect))
    (step,) = trace.steps
    params: Any = step.params
    if dialect == "postgresql":
        pairs = list(zip(params[W_CHANNEL], params[W_IDX], strict=True))
    else:
        pairs = [(row[CHANNEL], row[IDX]) for row in params]
    assert pairs == [(c, WRITES_IDX_MAP[c]) for c in ("__error__", "__interrupt__")]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_writes_no_statement(dialect: str) -> None:
    """An empty batch sends nothing.
    Mutation: drop `if not rows: return Plan(_none())` in `Planner.put_writes` -> fails
    (an IndexError on PostgreSQL, an executemany of nothing on SQLite)."""
    rec = recording("put_writes", "empty", dialect)
    try:
        (trace,) = replay(rec)
    except IndexError as error:
        pytest.fail(f"planning an empty batch raised {error!r}")
    assert trace.yielded == []
