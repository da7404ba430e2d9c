"""Adopting a database langgraph-checkpoint-postgres set up, and the way back: real
graph threads (an interrupt, pending writes of a finished sibling task) written by one
saver are read, listed and resumed by the other, `alembic upgrade head`, `setup()` and
the official `setup()` lose nothing, and `alembic check` stays clean."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.types import Command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alembic import command
from checkpointer import AsyncSQLAlchemySaver
from checkpointer.migrations import alembic_config, head

from ..deploy_support import build_graph, run_alembic, sync_pg_url, versions, with_conn
from ..pg_server import database_url

START = {"log": ["start"], "answer": ""}


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def conninfo(name: str) -> str:
    return database_url(name, "psycopg").set(drivername="postgresql").render_as_string(False)


@pytest.fixture
async def ours(fresh_pg: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url(fresh_pg, "asyncpg"))
    yield engine
    assert engine.pool.checkedout() == 0
    await engine.dispose()


def reference_final() -> dict[str, Any]:
    """What the graph ends with when nothing is persisted but memory."""
    graph = build_graph(InMemorySaver())
    graph.invoke(START, config("ref"))
    return graph.invoke(Command(resume="yes"), config("ref"))  # type: ignore[no-any-return]


async def view(graph: Any, thread: str) -> dict[str, Any]:
    """Everything a user sees of a thread: state, pending tasks, interrupts, history."""
    state = await graph.aget_state(config(thread))
    history = [s async for s in graph.aget_state_history(config(thread))]
    return {
        "values": state.values,
        "next": state.next,
        "tasks": [(t.name, t.result, [i.value for i in t.interrupts]) for t in state.tasks],
        "interrupts": [i.value for i in state.interrupts],
        "checkpoint_id": state.config["configurable"]["checkpoint_id"],
        "history": [
            (s.config["configurable"]["checkpoint_id"], s.metadata["step"], s.next, s.values)
            for s in history
        ],
    }


def rows(conn: Connection) -> dict[str, set[str]]:
    """Every row of the three tables (as its text form), for a before/after comparison."""
    return {
        table: set(conn.scalars(text(f"SELECT CAST({table} AS TEXT) FROM {table}")))
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
    }


def check_no_drift(url: str) -> None:
    with with_conn(url) as conn:
        command.check(alembic_config(conn))


async def test_adopt_a_database_the_official_saver_set_up(fresh_pg: str, ours: AsyncEngine) -> None:
    url = sync_pg_url(fresh_pg)
    async with AsyncPostgresSaver.from_conn_string(conninfo(fresh_pg)) as official:
        await official.setup()
        graph = build_graph(official)
        await graph.ainvoke(START, config("paused"))  # interrupt + a finished sibling
        await graph.ainvoke(START, config("done"))
        await graph.ainvoke(Command(resume="yes"), config("done"))
        before = {t: await view(graph, t) for t in ("paused", "done")}
        official_listed = len([c async for c in official.alist(None)])
    assert before["paused"]["interrupts"] == [{"question": "proceed?", "seen": 1}]
    assert before["paused"]["tasks"][0][1] == {"log": ["worked"]}  # pending write
    with with_conn(url) as conn:
        rows_before = rows(conn)

    run_alembic("upgrade", "head", url=url)  # the deploy step
    saver = AsyncSQLAlchemySaver(ours)
    assert await saver.setup() == []  # already at head: nothing to run
    with with_conn(url) as conn:
        assert rows(conn) == rows_before, "adopting changed or lost rows"
        assert versions(conn) == [head()]
        assert {"checkpoint_migrations", "checkpoints_thread_id_idx"} <= set(
            inspect(conn).get_table_names()
        ) | {ix["name"] for ix in inspect(conn).get_indexes("checkpoints")}
    check_no_drift(url)

    graph = build_graph(saver)
    for thread in ("paused", "done"):
        assert await view(graph, thread) == before[thread]
    assert len([c async for c in saver.alist(None)]) == official_listed
    final = await graph.ainvoke(Command(resume="yes"), config("paused"))
    assert final == reference_final()

    # The official saver still reads what we wrote, and writes beside us.
    ours_view = await view(graph, "paused")
    async with AsyncPostgresSaver.from_conn_string(conninfo(fresh_pg)) as official:
        await official.setup()  # harmless on a database we migrated
        official_graph = build_graph(official)
        assert await view(official_graph, "paused") == ours_view
        await official_graph.ainvoke(START, config("after"))
    assert (await view(graph, "after"))["interrupts"] == [{"question": "proceed?", "seen": 1}]
    check_no_drift(url)


async def test_official_saver_on_a_database_we_migrated(fresh_pg: str, ours: AsyncEngine) -> None:
    url = sync_pg_url(fresh_pg)
    saver = AsyncSQLAlchemySaver(ours)
    assert await saver.setup() == ["0001", "0002", "0003", "0004", "0005", "0006"]
    graph = build_graph(saver)
    await graph.ainvoke(START, config("paused"))
    await graph.ainvoke(START, config("done"))
    await graph.ainvoke(Command(resume="yes"), config("done"))
    ours_before = {t: await view(graph, t) for t in ("paused", "done")}
    with with_conn(url) as conn:
        rows_before = rows(conn)

    async with AsyncPostgresSaver.from_conn_string(conninfo(fresh_pg)) as official:
        await official.setup()  # its own migrations, on our tables: harmless
        with with_conn(url) as conn:
            assert rows(conn) == rows_before
            assert versions(conn) == [head()]
        official_graph = build_graph(official)
        for thread in ("paused", "done"):
            assert await view(official_graph, thread) == ours_before[thread]
        listed = len([c async for c in official.alist(None)])
        assert listed == len([c async for c in saver.alist(None)])
        final = await official_graph.ainvoke(Command(resume="yes"), config("paused"))
        assert final == reference_final()
        await official_graph.ainvoke(START, config("theirs"))
        theirs = await view(official_graph, "theirs")
        resumed = await view(official_graph, "paused")

    check_no_drift(url)  # its thread_id indexes and checkpoint_migrations are not drift
    fresh_saver = AsyncSQLAlchemySaver(ours)  # passes the fail-closed check
    graph = build_graph(fresh_saver)
    assert await view(graph, "theirs") == theirs
    assert await view(graph, "paused") == resumed
    final = await graph.ainvoke(Command(resume="yes"), config("theirs"))
    assert final == reference_final()


def test_adopting_an_older_official_layout(fresh_pg: str) -> None:
    """Tables from before the official saver's later migrations (blob NOT NULL, no
    task_path) are brought to the layout both savers use."""
    url = sync_pg_url(fresh_pg)
    with with_conn(url) as conn:
        for statement in (
            "CREATE TABLE checkpoint_blobs (thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL"
            " DEFAULT '', channel TEXT NOT NULL, version TEXT NOT NULL, type TEXT NOT NULL,"
            " blob BYTEA NOT NULL, PRIMARY KEY (thread_id, checkpoint_ns, channel, version))",
            "CREATE TABLE checkpoint_writes (thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL"
            " DEFAULT '', checkpoint_id TEXT NOT NULL, task_id TEXT NOT NULL, idx INTEGER NOT"
            " NULL, channel TEXT NOT NULL, type TEXT, blob BYTEA NOT NULL,"
            " PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx))",
            "INSERT INTO checkpoint_writes VALUES ('t', '', 'c', 'task', 0, 'ch', 'json', 'x')",
        ):
            conn.execute(text(statement))
        conn.commit()
        from checkpointer.migrations import upgrade

        assert upgrade(conn) == ["0001", "0002", "0003", "0004", "0005", "0006"]
        columns = {c["name"]: c for c in inspect(conn).get_columns("checkpoint_blobs")}
        assert columns["blob"]["nullable"] is True
        task_paths = list(conn.scalars(text("SELECT task_path FROM checkpoint_writes")))
        assert task_paths == [""]
    check_no_drift(url)
