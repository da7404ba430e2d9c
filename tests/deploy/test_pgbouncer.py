"""The savers through PgBouncer in transaction mode (Debian's `pgbouncer`, started here).

In transaction mode a client connection gets a server connection only for the length of
one transaction; our savers run single statements on autocommit connections, so each
statement may land on a different server. Server-side prepared statements therefore break
(named ones live on one server), and the engine options in `ENGINE_OPTIONS` (the README's
recipe) turn them off. These tests show the options work under concurrency, including
the conformance suite, and that the drivers' defaults really do fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES, BASE_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver

from ..e2e_graphs import fanout_graph
from ..pgbouncer import ENGINE_OPTIONS, PgBouncer, running_pgbouncer

ASYNC_DRIVERS = ["asyncpg", "psycopg"]
RUNS = 12
FAN = 6
TOTAL = sum(i * i for i in range(FAN))


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    # Few server connections for many clients: statements hop between servers.
    with running_pgbouncer(pool_size=3) as running:
        yield running


def _database(pg_url: str) -> str:
    name = make_url(pg_url).database
    assert name is not None
    return name


def _transactions_seen(bouncer: PgBouncer, database: str) -> int:
    stats = bouncer.show("STATS")
    return sum(int(row["total_xact_count"]) for row in stats if row["database"] == database)


def test_pgbouncer_runs_in_transaction_mode(bouncer: PgBouncer) -> None:
    config = {row["key"]: row["value"] for row in bouncer.show("CONFIG")}
    assert config["pool_mode"] == "transaction"
    assert bouncer.process.poll() is None


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_conformance_through_pgbouncer(bouncer: PgBouncer, pg_url: str, driver: str) -> None:
    database = _database(pg_url)
    engine = create_async_engine(bouncer.url(database, driver), **ENGINE_OPTIONS[driver])
    saver = AsyncSQLAlchemySaver(engine)

    @checkpointer_test(name=f"AsyncSQLAlchemySaver[{driver} via PgBouncer]")
    async def factory() -> AsyncIterator[AsyncSQLAlchemySaver]:
        yield saver

    try:
        report = await validate(factory, progress=ProgressCallbacks.quiet())
        # The suite is sequential; graphs running side by side make statements hop
        # between PgBouncer's few server connections.
        builder = fanout_graph()
        graph = builder.compile(checkpointer=saver)
        results = await asyncio.gather(
            *(
                graph.ainvoke({"n": FAN}, {"configurable": {"thread_id": f"fan-{i}"}})
                for i in range(RUNS)
            )
        )
        state = await graph.aget_state({"configurable": {"thread_id": "fan-0"}})
    finally:
        await engine.dispose()
    report.print_report()
    for capability in BASE_CAPABILITIES:
        assert report.results[capability.value].detected, f"{capability.value} not detected"
    for capability in ALL_CAPABILITIES:
        result = report.results[capability.value]
        if result.detected:
            assert result.passed is True, f"{capability.value} failed: {result.failures}"
            assert result.tests_passed > 0
    assert [r["total"] for r in results] == [TOTAL] * RUNS
    assert state.values["total"] == TOTAL
    assert _transactions_seen(bouncer, database) > RUNS, "traffic did not go through PgBouncer"


def test_sync_saver_through_pgbouncer(bouncer: PgBouncer, pg_url: str) -> None:
    database = _database(pg_url)
    engine = create_engine(bouncer.url(database, "psycopg"), **ENGINE_OPTIONS["psycopg"])
    try:
        saver = SQLAlchemySaver(engine)
        graph = fanout_graph().compile(checkpointer=saver)

        def run(i: int) -> Any:
            return graph.invoke({"n": FAN}, {"configurable": {"thread_id": f"sync-{i}"}})

        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(run, range(RUNS)))
        history = list(graph.get_state_history({"configurable": {"thread_id": "sync-3"}}))
    finally:
        engine.dispose()
    assert [r["total"] for r in results] == [TOTAL] * RUNS
    assert [s.metadata["step"] for s in history if s.metadata] == [3, 2, 1, 0, -1]


# -- the drivers' defaults fail, deterministically -------------------------------------


def _hold_last_server(bouncer: PgBouncer, database: str) -> psycopg.Connection[Any]:
    """Open a transaction on another client: PgBouncer hands out idle servers last in,
    first out, so this pins the server our saver just used, and the saver's next
    statement runs on a different one."""
    holder = psycopg.connect(
        host="127.0.0.1",
        port=bouncer.port,
        user="postgres",
        dbname=database,
        prepare_threshold=None,
    )
    holder.execute("SELECT 1")  # BEGIN (implicit) + SELECT: the server stays pinned
    return holder


async def _run_across_servers(
    bouncer: PgBouncer, database: str, driver: str, options: dict[str, Any]
) -> None:
    """Prepare-worthy statements on one server, then the same statements on another."""
    # One client connection for the saver, so its driver-side statement state is reused.
    engine = create_async_engine(
        bouncer.url(database, driver), pool_size=1, max_overflow=0, **options
    )
    saver = AsyncSQLAlchemySaver(engine)
    graph = fanout_graph().compile(checkpointer=saver)
    config = {"configurable": {"thread_id": f"hop-{driver}"}}
    try:
        await graph.ainvoke({"n": 2}, config)
        for _ in range(6):  # psycopg prepares a statement on its 6th execution
            await graph.aget_state(config)
        holder = await asyncio.to_thread(_hold_last_server, bouncer, database)
        try:
            state = await graph.aget_state(config)
            assert state.values["total"] == 1
        finally:
            holder.close()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_recommended_options_survive_server_hops(
    bouncer: PgBouncer, pg_url: str, driver: str
) -> None:
    await _run_across_servers(bouncer, _database(pg_url), driver, ENGINE_OPTIONS[driver])


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_driver_defaults_break_on_server_hops(
    bouncer: PgBouncer, pg_url: str, driver: str
) -> None:
    with pytest.raises(DBAPIError, match=r"prepared statement \S+ does not exist"):
        await _run_across_servers(bouncer, _database(pg_url), driver, {})
