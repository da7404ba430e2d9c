"""`Planner.put`: the checkpoint row and its blob rows, as one statement where the
dialect writes both at once (PostgreSQL) or as blobs then checkpoint in a transaction."""

from __future__ import annotations

from typing import Any

import pytest

from checkpointer.codec import EMPTY
from checkpointer.rows import B_BLOB, B_CHANNEL, B_TYPE, CHECKPOINT

from ..replay import ids, make_plans, planner, recording, recordings, replay
from ..tagged import encode

PUTS = recordings("put")


@pytest.mark.parametrize("rec", PUTS, ids=ids(PUTS))
def test_put_yields_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """Same statements, params and transaction flag as the recorded run, and the config
    of the stored checkpoint returned.
    Mutation: `atomic=bool(blobs)` -> `atomic=False` in `Planner.put` -> fails
    (sqlite with_blobs/delta_snapshot: atomic)."""
    replay(rec)
    _, next_config = make_plans(planner(rec["dialect"]), rec)
    assert encode(next_config) == rec["result"]


def test_put_on_postgresql_is_one_statement_with_blob_arrays() -> None:
    """PostgreSQL: one step writes the checkpoint and its blobs (arrays, one element per
    new version that is not inline; a version with no value is an "empty" blob).
    Mutation: `if self.statements.dialect.cte_dml:` -> `if False:` -> fails (two steps)."""
    rec = recording("put", "with_blobs", "postgresql")
    (trace,) = replay(rec)
    (step,) = trace.steps
    assert step.statement is planner("postgresql").statements.put_checkpoint
    params: Any = step.params
    assert params[B_CHANNEL] == ["doc", "raw", "idle"]
    assert (params[B_TYPE][2], params[B_BLOB][2]) == (EMPTY, None)
    assert params[CHECKPOINT]["channel_values"] == {"count": 1}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_delta_snapshot_is_a_blob_marked_inline(dialect: str) -> None:
    """A `_DeltaSnapshot` is stored as a blob and marked `True` in the inline values,
    which tells readers (and the chain walk) this checkpoint stores the channel.
    Mutation: drop `inline[channel] = True` in `codec.encode_checkpoint` -> fails."""
    (trace,) = replay(recording("put", "delta_snapshot", dialect))
    document = [s.params for s in trace.steps if isinstance(s.params, dict)][-1]
    assert document[CHECKPOINT]["channel_values"] == {"count": 3, "log": True}
