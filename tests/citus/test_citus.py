"""The saver on Citus (CHECKPOINTER_TEST_CITUS): the conformance suite, real graphs,
the operations, delta history and migrations on tables distributed by `thread_id`,
and the router rule: every per-thread statement runs as one task on one shard."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.citus import DistributionError, distribute
from checkpointer.migrations import downgrade, upgrade

from ..cli.test_commands import cli, ok, one_line_error
from ..e2e.test_e2e_execution import delta_channel, fan_out, functional
from ..e2e.test_e2e_state import chat, review, subgraph, time_travel
from ..graphs import interrupting_graph, loop_graph
from ..harness import MODES, Mode, Scenario, compare
from .conftest import citus_database

ASYNC_DRIVERS = ["asyncpg", "psycopg"]


def _async(url: URL, driver: str = "asyncpg") -> str:
    return url.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


def _distributed(url: URL) -> dict[str, tuple[str, int]]:
    """Table -> (distribution column, colocation id) of our distributed tables."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name::text, distribution_column, colocation_id FROM citus_tables "
                "WHERE citus_table_type = 'distributed'"
            )
        ).all()
    engine.dispose()
    return {str(r[0]).split(".")[-1]: (str(r[1]), int(r[2])) for r in rows}


# -- the contract ----------------------------------------------------------------------


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_conformance(driver: str, citus_url: URL) -> None:
    engine = create_async_engine(_async(citus_url, driver))

    @checkpointer_test(name=f"AsyncSQLAlchemySaver[citus, {driver}]")
    async def factory() -> AsyncIterator[AsyncSQLAlchemySaver]:
        yield AsyncSQLAlchemySaver(engine)

    try:
        report = await validate(factory, progress=ProgressCallbacks.verbose())
    finally:
        await engine.dispose()
    report.print_report()
    for capability in ALL_CAPABILITIES:
        result = report.results[capability.value]
        assert result.detected, f"{capability.value} not detected"
        assert result.passed, f"{capability.value} failed: {result.failures}"
    assert report.conformance_level() == "FULL"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "scenario",
    [chat, review, time_travel, subgraph, fan_out, delta_channel, functional],
    ids=["chat", "interrupts", "time-travel", "subgraph", "fan-out", "delta", "functional"],
)
async def test_real_graphs_match_the_in_memory_saver(
    scenario: Scenario, mode: Mode, citus_url: URL
) -> None:
    await compare(scenario, mode, _async(citus_url))


@pytest.mark.parametrize("scenario", [chat, review], ids=["chat", "interrupts"])
async def test_real_graphs_on_async_psycopg(scenario: Scenario, citus_url: URL) -> None:
    await compare(scenario, "async", _async(citus_url), async_pg="psycopg")


# -- delta history and the operations --------------------------------------------------


async def _same_history(saver: AsyncSQLAlchemySaver, config: Any, channels: list[str]) -> Any:
    ours = await saver.aget_delta_channel_history(config=config, channels=channels)
    default = await BaseCheckpointSaver.aget_delta_channel_history(
        saver, config=config, channels=channels
    )
    assert dict(ours) == dict(default)
    return ours


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_delta_history_matches_the_default(driver: str, citus_url: URL) -> None:
    engine = create_async_engine(_async(citus_url, driver))
    saver = AsyncSQLAlchemySaver(engine)
    graph = loop_graph(saver, snapshot_frequency=4)
    thread = str(uuid.uuid4())
    config: Any = {"configurable": {"thread_id": thread}}
    await graph.ainvoke({"items": [], "count": 0, "limit": 15, "blob": {}}, config)
    history = [c.config async for c in saver.alist(config)]
    assert len(history) > 15
    for target in (history[0], history[3], history[len(history) // 2], history[-1]):
        await _same_history(saver, target, ["items", "count", "blob"])
    latest = await _same_history(saver, config, ["items"])
    assert latest["items"]["writes"]
    state = await graph.aget_state(config)
    assert state.values["items"] == [f"i{n}" for n in range(15)]
    await engine.dispose()


def test_sync_saver_and_history(citus_url: URL) -> None:
    engine = create_engine(citus_url)
    saver = SQLAlchemySaver(engine)
    graph = loop_graph(saver, snapshot_frequency=3)
    config: Any = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"items": [], "count": 0, "limit": 8, "blob": {}}, config)
    assert graph.get_state(config).values["items"] == [f"i{n}" for n in range(8)]
    ours = saver.get_delta_channel_history(config=config, channels=["items"])
    assert ours == BaseCheckpointSaver.get_delta_channel_history(
        saver, config=config, channels=["items"]
    )
    assert len(list(saver.list(config))) > 8
    engine.dispose()


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_operations(driver: str, citus_url: URL) -> None:
    """delete_for_runs, copy_thread, prune (keep_latest, delete), the thread list and
    count, a sweep and stats, across shards."""
    engine = create_async_engine(_async(citus_url, driver))
    saver = AsyncSQLAlchemySaver(engine)
    graph = loop_graph(saver, snapshot_frequency=3)
    tag = uuid.uuid4().hex
    threads = [f"{tag}-{i}" for i in range(6)]
    runs: dict[str, str] = {}
    for thread in threads:
        run = str(uuid.uuid4())
        runs[thread] = run
        config: Any = {"configurable": {"thread_id": thread}, "metadata": {"run_id": run}}
        await graph.ainvoke({"items": [], "count": 0, "limit": 6, "blob": {}}, config)

    def cfg(thread: str) -> Any:
        return {"configurable": {"thread_id": thread}}

    async def count(thread: str) -> int:
        return len([c async for c in saver.alist(cfg(thread))])

    assert all([await count(t) > 6 for t in threads])

    # delete_for_runs: only that run's checkpoints go, on whichever shard
    await saver.adelete_for_runs([runs[threads[0]], runs[threads[1]]])
    assert await count(threads[0]) == 0
    assert await count(threads[1]) == 0
    assert await count(threads[2]) > 6

    # copy_thread: to a thread on (most likely) another shard
    copy = f"{tag}-copy"
    await saver.acopy_thread(threads[2], copy)
    assert await count(copy) == await count(threads[2])
    original = await graph.aget_state(cfg(threads[2]))
    copied = await graph.aget_state(cfg(copy))
    assert copied.values == original.values

    # prune keep_latest: the latest state still reads back (delta chain kept)
    await saver.aprune([threads[3]], strategy="keep_latest")
    kept = await count(threads[3])
    assert 1 <= kept < 6
    state = await graph.aget_state(cfg(threads[3]))
    assert state.values["items"] == [f"i{n}" for n in range(6)]
    await saver.aprune([threads[4]], strategy="delete")
    assert await count(threads[4]) == 0

    # thread list and count (fan-out over the shards), filter search
    page = await saver.alist_threads(limit=100)
    listed = {t.thread_id for t in page.threads}
    assert {threads[2], threads[3], threads[5], copy} <= listed
    assert await saver.acount_threads() >= 4
    found = [
        c
        async for c in saver.alist(None, filter={"source": "loop", "step": 2})
        if c.config["configurable"]["thread_id"].startswith(tag)
    ]
    assert {c.config["configurable"]["thread_id"] for c in found} == {
        threads[2],
        threads[5],
        copy,
    }

    # stats, and a sweep of everything idle (dry run, then for real)
    stats = await saver.astats(top=3)
    assert {t.table for t in stats.tables} == {
        "checkpoints",
        "checkpoint_blobs",
        "checkpoint_writes",
    }
    assert all(t.rows > 0 and t.bytes > 0 for t in stats.tables)
    dry = await saver.asweep(idle_for=timedelta(0), dry_run=True, limit=10_000)
    assert dry.threads >= 4
    report = await saver.asweep(idle_for=timedelta(0), limit=10_000)
    assert report.threads == dry.threads
    assert await count(threads[5]) == 0
    await engine.dispose()


def test_sync_operations(citus_url: URL) -> None:
    engine = create_engine(citus_url)
    saver = SQLAlchemySaver(engine)
    graph = interrupting_graph(saver)
    thread = str(uuid.uuid4())
    config: Any = {"configurable": {"thread_id": thread}}
    graph.invoke({"items": [], "answer": ""}, config)
    saver.copy_thread(thread, thread + "-copy")
    saver.prune([thread], strategy="keep_latest")
    assert (
        graph.get_state(config).next
        == graph.get_state({"configurable": {"thread_id": thread + "-copy"}}).next
    )
    saver.delete_thread(thread)
    assert saver.get_tuple(config) is None
    assert saver.count_threads() >= 1
    engine.dispose()


# -- the router rule -------------------------------------------------------------------


def _dollar(statement: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """A psycopg statement (`%(name)s`) as a `PREPARE` body (`$n`) and its values."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return re.sub(r"%\((\w+)\)s", number, statement), [params[n] for n in order]


def _task_counts(conn: psycopg.Connection[Any], name: str, values: list[Any]) -> list[int]:
    cur = psycopg.ClientCursor(conn)
    args = f"({', '.join(['%s'] * len(values))})" if values else ""
    cur.execute(f"EXPLAIN EXECUTE {name}{args}", values)
    plan = "\n".join(str(r[0]) for r in cur.fetchall())
    return [int(n) for n in re.findall(r"Task Count: (\d+)", plan)]


@pytest.fixture
def recorded(citus_url: URL) -> Iterator[tuple[SQLAlchemySaver, list[tuple[str, Any]]]]:
    """A sync saver whose statements are recorded (a listener: no fast path)."""
    engine = create_engine(citus_url)
    seen: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    saver = SQLAlchemySaver(engine)
    saver.count_threads()  # the first use's catalog checks, not recorded below
    yield saver, seen
    engine.dispose()


def test_per_thread_statements_run_as_one_task(
    recorded: tuple[SQLAlchemySaver, list[tuple[str, Any]]],
) -> None:
    """`EXPLAIN` on the coordinator: one task for each statement of `put` (blobs, then
    the checkpoint), `put_writes`, `get_tuple` (latest and by id), `list` of a thread
    (with and without `before` and a filter) and delta history. Each is checked as a
    custom plan and again after six executions of the prepared statement (when
    PostgreSQL weighs a generic plan); the inserts, single-table, also under
    `plan_cache_mode = force_generic_plan` (Citus prunes them at execution)."""
    saver, seen = recorded
    thread = str(uuid.uuid4())
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"a": {"x": 1}, "b": [1, 2], "n": 3}
    checkpoint["channel_versions"] = {"a": "1", "b": "1", "n": "1"}
    operations: dict[str, Any] = {}

    def op(name: str, call: Any) -> Any:
        seen.clear()
        out = call()
        operations[name] = list(seen)
        return out

    first = op("put", lambda: saver.put(config, checkpoint, {"step": 1}, {"a": "1", "b": "1"}))
    second = saver.put(first, checkpoint, {"step": 2}, {})
    op("put_writes", lambda: saver.put_writes(second, [("a", {"y": 2}), ("b", 3)], "task"))
    op("get_tuple latest", lambda: saver.get_tuple(config))
    op("get_tuple by id", lambda: saver.get_tuple(first))
    op("list thread", lambda: list(saver.list(config)))
    op("list before", lambda: list(saver.list(config, before=second, limit=5)))
    op("list filter", lambda: list(saver.list(config, filter={"step": 1})))
    op(
        "delta history",
        lambda: saver.get_delta_channel_history(config=second, channels=["a", "b"]),
    )
    assert len(operations["put"]) == 2  # the blobs, then the checkpoint

    raw = saver.engine.raw_connection()
    conn = raw.driver_connection
    assert isinstance(conn, psycopg.Connection)
    conn.autocommit = True
    checked = 0
    try:
        for name, statements in operations.items():
            assert statements, f"{name} ran no statement"
            for i, (statement, params) in enumerate(statements):
                body, values = _dollar(statement, params)
                prepared = f"router_{checked}"
                conn.execute(f"PREPARE {prepared} AS {body}")
                assert _task_counts(conn, prepared, values) == [1], f"{name} #{i}"
                for _ in range(6):
                    assert _task_counts(conn, prepared, values) == [1], f"{name} #{i}, 7th"
                if body.lstrip().upper().startswith("INSERT"):
                    conn.execute("SET plan_cache_mode = force_generic_plan")
                    assert _task_counts(conn, prepared, values) == [1], f"{name} #{i} generic"
                    conn.execute("RESET plan_cache_mode")
                conn.execute(f"DEALLOCATE {prepared}")
                checked += 1
    finally:
        raw.close()
    assert checked == 9


# -- distribution and migrations -------------------------------------------------------


def test_distribute_is_idempotent_and_colocated(citus_url: URL) -> None:
    engine = create_engine(citus_url)
    with engine.connect() as conn:
        assert distribute(conn) == []  # the fixture distributed them already
    saver = SQLAlchemySaver(engine)
    assert saver.distribute() == []
    assert saver.setup(distribute=True) == []
    engine.dispose()
    tables = _distributed(citus_url)
    ours = {name: tables[name] for name in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")}
    assert {column for column, _ in ours.values()} == {"thread_id"}
    assert len({group for _, group in ours.values()}) == 1


async def test_setup_distributes_and_migrations_go_down_and_up() -> None:
    with citus_database(migrated=False) as url:
        engine = create_async_engine(_async(url))
        saver = AsyncSQLAlchemySaver(engine)
        assert await saver.setup(distribute=True)
        assert set(_distributed(url)) >= {"checkpoints", "checkpoint_blobs", "checkpoint_writes"}
        assert await saver.distribute() == []
        graph = loop_graph(saver)
        config: Any = {"configurable": {"thread_id": "t"}}
        await graph.ainvoke({"items": [], "count": 0, "limit": 3, "blob": {}}, config)
        await engine.dispose()

        sync_engine = create_engine(url)
        with sync_engine.connect() as conn:
            downgrade(conn, "base")
        assert not _distributed(url)
        with sync_engine.connect() as conn:
            upgrade(conn)
            assert sorted(distribute(conn)) == [
                "checkpoint_blobs",
                "checkpoint_writes",
                "checkpoints",
            ]
        sync = SQLAlchemySaver(sync_engine)
        graph = loop_graph(sync)
        sync_graph_state = graph.invoke({"items": [], "count": 0, "limit": 3, "blob": {}}, config)
        assert sync_graph_state["items"] == ["i0", "i1", "i2"]
        sync_engine.dispose()


def test_existing_rows_move_into_the_shards() -> None:
    """A database used before it was distributed (ours, or the official saver's
    layout): its rows are copied into the shards and read back."""
    with citus_database(migrated=False) as url:
        engine = create_engine(url)
        saver = SQLAlchemySaver(engine)
        saver.setup()
        graph = loop_graph(saver)
        config: Any = {"configurable": {"thread_id": "before"}}
        graph.invoke({"items": [], "count": 0, "limit": 4, "blob": {}}, config)
        before = [c.checkpoint["id"] for c in saver.list(config)]
        assert sorted(saver.distribute()) == [
            "checkpoint_blobs",
            "checkpoint_writes",
            "checkpoints",
        ]
        after = SQLAlchemySaver(engine)
        assert [c.checkpoint["id"] for c in after.list(config)] == before
        assert loop_graph(after).get_state(config).values["items"] == ["i0", "i1", "i2", "i3"]
        engine.dispose()


def test_the_distribute_command() -> None:
    with citus_database(migrated=False) as url:
        engine = create_engine(url)
        with engine.connect() as conn:
            upgrade(conn)
        engine.dispose()
        target = url.render_as_string(hide_password=False)
        assert ok("distribute", url=target) == {
            "distributed": ["checkpoints", "checkpoint_blobs", "checkpoint_writes"]
        }
        assert ok("distribute", url=target) == {"distributed": []}


def test_a_cluster_without_workers_is_a_clear_error() -> None:
    with citus_database(with_workers=False, migrated=False) as url:
        engine = create_engine(url)
        saver = SQLAlchemySaver(engine)
        with pytest.raises(DistributionError, match=r"no active worker nodes.*citus_add_node"):
            saver.setup(distribute=True)
        assert not _distributed(url)
        error = one_line_error(cli("distribute", url=url.render_as_string(hide_password=False)))
        assert "no active worker nodes" in error
        engine.dispose()
