"""The Citus statement shapes (`Dialect.citus`), without a database: every table a
per-thread statement reads is filtered on the bound `thread_id` itself (the router
rule), writes are `INSERT ... VALUES`, and plain PostgreSQL keeps its own shapes.
tests/citus runs them on a cluster and checks the coordinator's plans."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql

from checkpointer.dialects import for_name
from checkpointer.statements import PageShape, for_dialect

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def _sql(statement: Any) -> str:
    return str(statement.compile(dialect=postgresql.psycopg.dialect()))


def _unrouted(sql: str) -> list[str]:
    """The table references of `sql` with no `<alias>.thread_id = %(thread_id)s`."""
    found = re.findall(r"(?:FROM|JOIN) (" + "|".join(TABLES) + r")(?: AS (\w+))?", sql)
    assert found, sql
    return [
        alias or table
        for table, alias in found
        if f"{alias or table}.thread_id = %(thread_id)s" not in sql
    ]


def _per_thread(citus: bool) -> dict[str, Any]:
    s = for_dialect("postgresql", citus=citus)
    return {
        "get_latest": s.get_latest,
        "get_by_id": s.get_by_id,
        "list thread": s.list_page(PageShape(thread=True, chunk=True), None)[0],
        "list before": s.list_page(
            PageShape(thread=True, namespace=True, before=True, limit=True), None
        )[0],
        "list filter": s.list_page(PageShape(thread=True, chunk=True), {"step": 1})[0],
        "delta history": s.delta_history(2),
        "keep chain": s.keep_chain(2),
        "prune newest": s.prune_newest,
    }


@pytest.mark.parametrize("name", list(_per_thread(True)))
def test_per_thread_reads_filter_every_table_on_the_bound_thread(name: str) -> None:
    """Mutation: `routed = d.citus and thread` -> `routed = False` in `Reads.read` -> fails."""
    assert _unrouted(_sql(_per_thread(True)[name])) == []


def test_plain_postgresql_reads_keep_their_joins() -> None:
    """Without Citus the blobs of a page are probed by the page's own thread column."""
    assert _unrouted(_sql(_per_thread(False)["get_latest"]))


def test_citus_writes_are_insert_values() -> None:
    s = for_dialect("postgresql", citus=True)
    for statement in (s.put_blob_values(3), s.put_checkpoint_values, s.put_writes_values(2)):
        sql = _sql(statement)
        assert "VALUES" in sql
        assert "SELECT" not in sql, sql
    writes = _sql(s.put_writes_values(2))
    assert writes.count("%(thread_id)s") == 2  # every row on the bound thread
    assert "excluded.idx < 0" in writes  # a constant: a bound one reaches the worker untyped
    assert for_dialect("postgresql").put_checkpoint_values is None


def test_the_capability_is_separate_per_engine_kind() -> None:
    plain, citus = for_name("postgresql"), for_name("postgresql", citus=True)
    assert not plain.citus
    assert citus.citus
    assert plain.skip_locked
    assert not citus.skip_locked  # Citus locks rows only in single-shard queries
    assert not for_name("sqlite").citus
