"""`Planner.stats`: a few reading statements, no transaction; figures from their rows."""

from __future__ import annotations

from typing import Any

import pytest

from ..replay import DIALECTS, ids, recording, recordings, replay

STATS = recordings("stats")


@pytest.mark.parametrize("rec", STATS, ids=ids(STATS))
def test_stats_plans_yield_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """The statements as recorded; `top=0` asks for no largest threads.
    Mutation: `if top:` -> `if True:` in `Planner._stats` -> fails (no_top runs one
    statement more)."""
    (trace,) = replay(rec)
    assert all(s.fetch for s in trace.steps)
    assert rec["plans"][0]["atomic"] is False


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sqlite_reports_the_file_and_postgresql_dead_rows(dialect: str) -> None:
    """SQLite: the file's bytes and free bytes; PostgreSQL: dead rows per table."""
    (trace,) = replay(recording("stats", "top_2", dialect))
    stats = trace.returned
    assert len(stats.largest_threads) == 2
    assert {t.table for t in stats.tables} == {
        "checkpoints", "checkpoint_blobs", "checkpoint_writes",
    }  # fmt: skip
    if dialect == "sqlite":
        assert stats.database_bytes > 0
        assert all(t.dead_rows is None for t in stats.tables)
    else:
        assert stats.database_bytes is None
        assert all(t.dead_rows is not None for t in stats.tables)
