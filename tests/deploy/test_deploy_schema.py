"""The `schema` option: tables, indexes and version table in a named PostgreSQL schema,
every statement schema-qualified (proved on connections whose `search_path` names no
schema at all, and by reading every statement sent), and two savers in two schemas of
one database isolated from each other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.types import Command
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver

from ..deploy_support import OUR_NAMES, build_graph, sync_pg_url, unqualified, versions, with_conn
from ..pg_server import database_url


def record(engine: Engine) -> list[str]:
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    return statements


@pytest.fixture
async def nowhere_engine(fresh_pg: str) -> AsyncIterator[AsyncEngine]:
    """An asyncpg engine whose sessions search no schema: an unqualified name fails."""
    engine = create_async_engine(
        database_url(fresh_pg, "asyncpg"),
        connect_args={"server_settings": {"search_path": "nowhere"}},
    )
    yield engine
    assert engine.pool.checkedout() == 0
    await engine.dispose()


async def test_two_schemas_in_one_database_are_isolated(
    nowhere_engine: AsyncEngine, fresh_pg: str
) -> None:
    statements = record(nowhere_engine.sync_engine)
    a = AsyncSQLAlchemySaver(nowhere_engine, schema="tenant_a")
    b = AsyncSQLAlchemySaver(nowhere_engine, schema="tenant_b")
    assert await a.setup() == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert await b.setup() == ["0001", "0002", "0003", "0004", "0005", "0006"]
    graph_a, graph_b = build_graph(a), build_graph(b)
    config = {"configurable": {"thread_id": "same-thread"}}
    await graph_a.ainvoke({"log": ["from a"], "answer": ""}, config)
    await graph_b.ainvoke({"log": ["from b"], "answer": ""}, config)
    await graph_a.ainvoke(Command(resume="yes"), config)

    state_a, state_b = await graph_a.aget_state(config), await graph_b.aget_state(config)
    assert state_a.values["log"][0] == "from a"
    assert state_a.next == ()
    assert state_b.values["log"][0] == "from b"
    assert state_b.next == ("ask",)
    assert state_b.interrupts[0].value["question"] == "proceed?"
    assert len([c async for c in a.alist(config)]) != len([c async for c in b.alist(config)])

    await a.adelete_thread("same-thread")
    assert await a.aget_tuple(config) is None
    assert (await b.aget_tuple(config)) is not None

    named = [s for s in statements if OUR_NAMES.search(s)]
    assert len(named) > 10
    assert [s for s in named if unqualified([s], "tenant_a") and unqualified([s], "tenant_b")] == []

    with with_conn(sync_pg_url(fresh_pg)) as conn:
        inspector = inspect(conn)
        assert not set(inspector.get_table_names(schema="public")) & {"checkpoints"}
        for schema in ("tenant_a", "tenant_b"):
            assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= set(
                inspector.get_table_names(schema=schema)
            )
            assert {ix["name"] for ix in inspector.get_indexes("checkpoints", schema=schema)} >= {
                "checkpoints_metadata_idx",
                "checkpoints_run_id_idx",
            }
            assert versions(conn, schema) == ["0006"]


def test_every_statement_names_the_schema(fresh_pg: str) -> None:
    """Migrations and the sync saver on psycopg, statement by statement."""
    engine = create_engine(
        database_url(fresh_pg, "psycopg"), connect_args={"options": "-c search_path=nowhere"}
    )
    statements = record(engine)
    try:
        saver = SQLAlchemySaver(engine, schema="lg")
        saver.setup()
        migration = list(statements)
        assert any("CREATE TABLE IF NOT EXISTS lg.checkpoints" in s for s in migration)
        assert any(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_metadata_idx ON lg.checkpoints"
            in s
            for s in migration
        )
        graph = build_graph(saver)
        config = {"configurable": {"thread_id": "t"}}
        graph.invoke({"log": ["start"], "answer": ""}, config)
        graph.invoke(Command(resume="yes"), config)
        assert graph.get_state(config).values["log"][-1] == "finished"
        assert len(list(saver.list(config))) >= 3
        saver.delete_thread("t")
        assert saver.get_tuple(config) is None
        assert unqualified(statements, "lg") == []
        assert len([s for s in statements if OUR_NAMES.search(s)]) > 10
    finally:
        engine.dispose()


def test_unqualified_statement_is_caught() -> None:
    """The statement check can fail."""
    assert unqualified(["SELECT * FROM checkpoints WHERE x"], "lg")
    assert unqualified(["SELECT * FROM other.checkpoint_blobs"], "lg")
    assert not unqualified(["SELECT lg.checkpoints.thread_id FROM lg.checkpoints"], "lg")
    assert not unqualified(['SELECT 1 FROM "lg".checkpoints_metadata_idx'], "lg")
    assert not unqualified(["SELECT EXISTS (SELECT * FROM lg.checkpoints) AS checkpoints"], "lg")
    assert unqualified(["SELECT EXISTS (SELECT * FROM checkpoints) AS checkpoints"], "lg")


@pytest.mark.parametrize("schema", ["", "  ", 3])
def test_bad_schema_is_rejected(schema: Any, tmp_path: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(ValueError, match="schema must be a non-empty string"):
        SQLAlchemySaver(engine, schema=schema)


def test_schema_on_sqlite_is_rejected(tmp_path: Any) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    with pytest.raises(ValueError, match="PostgreSQL only"):
        AsyncSQLAlchemySaver(engine, schema="langgraph")
