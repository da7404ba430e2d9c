"""The recordings cover every plan: each `Planner` method, on both dialects, and
through them every statement a dialect has."""

from __future__ import annotations

from functools import cached_property

import pytest

from checkpointer.plans import Planner
from checkpointer.statements import Statements, for_dialect

from ..replay import DIALECTS, METHODS, recordings

NOT_RUN = {
    ("postgresql", "put_blobs"),
    *(
        ("postgresql", name)
        for name in (
            "stage_blob",
            "append_blob",
            "put_staged_blob",
            "put_staged_write",
            "drop_staged_blob",
        )
    ),
}
"""PostgreSQL writes blobs inside `put_checkpoint` (`cte_dml`). Blobs and write values
over 16 MB are staged in chunks (`Planner._stage`): too big to record; driven with small
thresholds in plans/test_put_staged.py, run for real in tests/runtime/test_memory.py."""

ENCODING = {"record_encoding", "decode_blobs"}
ENCODING_STATEMENTS = {
    "get_setting",
    "put_setting",
    "delete_setting",
    "blobs_by_version",
    "plain_blob",
    "_encoded_first",
    "_encoded_after",
}
"""The incremental blob encoding's plans and statements: a recorded saver has the option
off, so they are driven with fake rows in plans/test_incremental.py and run for real in
tests/contract/test_incremental.py."""


def test_every_planner_method_is_recorded() -> None:
    """Every public method of `Planner` but `decode` makes plans and has recordings on
    both dialects.
    Mutation: drop "prune" from `METHODS` in tests/unit/replay.py -> fails."""
    public = {n for n, v in vars(Planner).items() if callable(v) and not n.startswith("_")}
    assert public - {"decode"} - ENCODING == set(METHODS)
    for method in METHODS:
        assert {r["dialect"] for r in recordings(method)} == set(DIALECTS), method


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_statement_is_run_by_a_recorded_plan(dialect: str) -> None:
    """Each statement the dialect has is some recorded step's.
    Mutation: drop "copy_thread" from `METHODS` in tests/unit/replay.py -> fails."""
    st = for_dialect(dialect)
    have = {
        n
        for n in dir(Statements)
        if isinstance(getattr(Statements, n, None), cached_property) and getattr(st, n) is not None
    } | {"keep_chain", "delta_history", "list_page"}
    used = {
        ref.get("attr") or ref["call"]
        for method in METHODS
        for rec in recordings(method)
        if rec["dialect"] == dialect
        for plan in rec["plans"]
        for event in plan["events"]
        if "step" in event
        for ref in [event["step"]["statement"]]
    }
    assert have - used - ENCODING_STATEMENTS == {n for d, n in NOT_RUN if d == dialect}
