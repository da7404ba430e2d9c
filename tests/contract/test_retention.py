"""Retention on PostgreSQL and SQLite: `aprune(keep_last=N)`, `asweep` (dry run,
report, keep filter, limit, batches, concurrent sweepers, a writer racing a sweep),
and `astats`. Real graphs are resumed after pruning and compared with InMemorySaver."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, Stats, SweepReport, schema
from checkpointer.ids import id_floor

from ..graphs import interrupting_graph, loop_graph
from ..ops_support import blob_report, row_counts

cp = schema.checkpoints


def _config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}, "recursion_limit": 1000}


async def _ids(saver: AsyncSQLAlchemySaver, thread: str, ns: str = "") -> list[str]:
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
    return [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(config)]


async def _clean(engine: AsyncEngine, thread: str) -> None:
    assert await blob_report(engine, thread) == {"orphaned": set(), "missing": set()}


_age = 0


def _old_id(days: int) -> str:
    """A UUIDv6 id `days` ago, increasing on every call (a thread's ids are ordered)."""
    global _age
    _age += 1
    moment = datetime.now(timezone.utc) - timedelta(days=days) + timedelta(microseconds=_age)
    return id_floor(moment)[:19] + "8000-000000000001"


async def _thread(
    saver: AsyncSQLAlchemySaver, thread: str, *, days: int, n: int = 3, meta: Any = None
) -> None:
    """`n` checkpoints `days` old, each with a blob and a write."""
    parent: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    version = None
    for i in range(n):
        version = saver.get_next_version(version)
        checkpoint = Checkpoint(
            v=4, id=_old_id(days), ts="", channel_values={"b": {"i": i, "pad": "x" * 50}},
            channel_versions={"b": version}, versions_seen={}, updated_channels=None,
        )  # fmt: skip
        parent = await saver.aput(parent, checkpoint, dict(meta or {}), {"b": version})  # type: ignore[arg-type]
        await saver.aput_writes(parent, [("w", i)], "task")


# -- keep_last ------------------------------------------------------------------------


@pytest.mark.parametrize("keep_last", [1, 3, 25])
async def test_keep_last_keeps_the_newest_and_their_chains(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine, keep_last: int
) -> None:
    """A DeltaChannel loop of 40 steps, snapshot every 10: the `keep_last` newest
    checkpoints stay, each still reads the same state, the oldest kept one's chain
    back to its snapshot stays, and the thread continues like an unpruned one."""
    graph = loop_graph(saver, snapshot_frequency=10)
    thread = str(uuid4())
    await graph.ainvoke({"count": 0, "limit": 40, "items": []}, _config(thread))
    before = await _ids(saver, thread)
    states = [
        (await graph.aget_state({"configurable": {"thread_id": thread, "checkpoint_id": i}})).values
        for i in before[:keep_last]
    ]
    await saver.aprune([thread], keep_last=keep_last)
    kept = await _ids(saver, thread)
    assert kept[:keep_last] == before[:keep_last]
    assert len(kept) < len(before)
    assert len(kept) <= keep_last + 10  # back to the snapshot below the oldest kept one
    for checkpoint_id, values in zip(before[:keep_last], states, strict=True):
        config = {"configurable": {"thread_id": thread, "checkpoint_id": checkpoint_id}}
        assert (await graph.aget_state(config)).values == values  # type: ignore[arg-type]
    await _clean(engine, thread)
    await saver.aprune([thread], keep_last=keep_last)
    assert await _ids(saver, thread) == kept

    reference = loop_graph(InMemorySaver(), snapshot_frequency=10)
    reference.invoke({"count": 0, "limit": 40, "items": []}, _config("ref"))
    reference.invoke({"limit": 50}, _config("ref"))
    await graph.ainvoke({"limit": 50}, _config(thread))
    assert (await graph.aget_state(_config(thread))).values == reference.get_state(
        _config("ref")
    ).values


async def test_keep_last_on_an_interrupted_subgraph_resumes(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    """An interrupted thread pruned with keep_last=1 and 2 resumes as InMemorySaver's."""
    graph = interrupting_graph(saver)
    reference = interrupting_graph(InMemorySaver())
    thread = str(uuid4())
    for round_, keep_last in enumerate((1, 2, 1)):
        first = {"items": [f"start{round_}"]}
        await graph.ainvoke(first, _config(thread))
        reference.invoke(first, _config("ref"))
        before = await graph.aget_state(_config(thread), subgraphs=True)
        await saver.aprune([thread], keep_last=keep_last)
        after = await graph.aget_state(_config(thread), subgraphs=True)
        assert (after.values, after.next, after.interrupts) == (
            before.values, before.next, before.interrupts,
        )  # fmt: skip
        await graph.ainvoke(Command(resume=f"a{round_}"), _config(thread))
        reference.invoke(Command(resume=f"a{round_}"), _config("ref"))
        assert (await graph.aget_state(_config(thread))).values == reference.get_state(
            _config("ref")
        ).values
        await _clean(engine, thread)


async def test_keep_last_bad_values(saver: AsyncSQLAlchemySaver) -> None:
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="keep_last must be"):
            await saver.aprune(["t"], keep_last=bad)  # type: ignore[arg-type]


# -- sweep ----------------------------------------------------------------------------


async def test_sweep_delete_dry_run_report_and_keep(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checkpointer import plans

    monkeypatch.setattr(plans, "SWEEP_BATCH", 4)
    idle = [str(uuid4()) for _ in range(9)]
    pinned, active = str(uuid4()), str(uuid4())
    for thread in idle:
        await _thread(saver, thread, days=40)
    await _thread(saver, pinned, days=40, meta={"pinned": True, "user": "x"})
    await _thread(saver, active, days=1)
    totals = {t: await row_counts(engine, t) for t in idle}

    dry = await saver.asweep(idle_for=timedelta(days=30), keep={"pinned": True}, dry_run=True)
    assert isinstance(dry, SweepReport)
    assert (dry.threads, dry.checkpoints, dry.writes, dry.blobs) == (9, 27, 27, 27)
    assert dry.bytes > 27 * 50
    assert dry.batches == 3
    assert dry.dry_run
    assert {t: await row_counts(engine, t) for t in idle} == totals  # nothing changed

    report = await saver.asweep(idle_for=timedelta(days=30), keep={"pinned": True})
    assert report.as_dict() == {**dry.as_dict(), "dry_run": False}
    for thread in idle:
        assert await row_counts(engine, thread) == {
            "checkpoints": 0, "checkpoint_writes": 0, "checkpoint_blobs": 0,
        }  # fmt: skip
    assert len(await _ids(saver, pinned)) == 3
    assert len(await _ids(saver, active)) == 3
    again = await saver.asweep(idle_for=timedelta(days=30), keep={"pinned": True})
    assert again.threads == 0
    assert again.checkpoints == 0
    unpinned = await saver.asweep(idle_for=timedelta(days=30))
    assert unpinned.threads == 1


async def test_sweep_limit_and_keep_latest(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    threads = [str(uuid4()) for _ in range(5)]
    for thread in threads:
        await _thread(saver, thread, days=10, n=4)
    first = await saver.asweep(idle_for=timedelta(days=5), strategy="keep_latest", limit=2)
    assert (first.threads, first.checkpoints, first.writes) == (2, 6, 6)
    rest = await saver.asweep(idle_for=timedelta(days=5), strategy="keep_latest")
    assert rest.threads == 5  # pruned threads stay idle: swept again, nothing removed
    assert rest.checkpoints == 9
    for thread in threads:
        assert await row_counts(engine, thread) == {
            "checkpoints": 1, "checkpoint_writes": 1, "checkpoint_blobs": 1,
        }  # fmt: skip
        latest = await saver.aget_tuple({"configurable": {"thread_id": thread}})
        assert latest is not None
        assert latest.checkpoint["channel_values"]["b"]["i"] == 3
        assert latest.pending_writes == [("task", "w", 3)]
    with pytest.raises(ValueError, match="unknown sweep strategy"):
        await saver.asweep(idle_for=timedelta(days=1), strategy="drop")
    with pytest.raises(ValueError, match="idle_for"):
        await saver.asweep(idle_for=30)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keep must be a mapping"):
        await saver.asweep(idle_for=timedelta(days=1), keep="x")  # type: ignore[arg-type]


async def test_two_sweepers_at_once(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sweepers (their own engines, as two replicas) sweep 60 idle threads at
    once in batches of 5: together they remove each exactly once, no deadlock."""
    from checkpointer import plans

    monkeypatch.setattr(plans, "SWEEP_BATCH", 5)
    engines = [create_async_engine(db_url) for _ in range(2)]
    try:
        savers = [AsyncSQLAlchemySaver(e) for e in engines]
        threads = [str(uuid4()) for _ in range(60)]
        for thread in threads:
            await _thread(savers[0], thread, days=3, n=2)
        reports = await asyncio.wait_for(
            asyncio.gather(*(s.asweep(idle_for=timedelta(days=1)) for s in savers)), 60
        )
        assert sum(r.threads for r in reports) == 60
        assert sum(r.checkpoints for r in reports) == 120
        async with engines[0].connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(cp)) == 0
    finally:
        for e in engines:
            await e.dispose()


async def test_a_checkpoint_written_during_a_sweep_stays(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    """A graph resumes an idle thread while sweeps run again and again: the run's new
    checkpoints are never removed, the thread ends as an unswept one would."""
    graph = loop_graph(saver, snapshot_frequency=5)
    thread = str(uuid4())
    await graph.ainvoke({"count": 0, "limit": 3, "items": []}, _config(thread))
    await asyncio.sleep(0.05)
    run = asyncio.create_task(graph.ainvoke({"limit": 60}, _config(thread)))
    sweeps = 0
    while not run.done():
        # "idle for 0s": everything written before this instant counts as idle
        await saver.asweep(idle_for=timedelta(0), strategy="keep_latest")
        sweeps += 1
        await asyncio.sleep(0.003)
    await run
    assert sweeps >= 3
    reference = loop_graph(InMemorySaver(), snapshot_frequency=5)
    reference.invoke({"count": 0, "limit": 3, "items": []}, _config("ref"))
    reference.invoke({"limit": 60}, _config("ref"))
    assert (await graph.aget_state(_config(thread))).values == reference.get_state(
        _config("ref")
    ).values
    await _clean(engine, thread)


# -- stats ----------------------------------------------------------------------------


async def test_stats(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    small, big = str(uuid4()), str(uuid4())
    await _thread(saver, small, days=3, n=1)
    await _thread(saver, big, days=1, n=5)
    stats = await saver.astats(top=1)
    assert isinstance(stats, Stats)
    by_name = {t.table: t for t in stats.tables}
    assert {n: t.rows for n, t in by_name.items()} == {
        "checkpoints": 6, "checkpoint_blobs": 6, "checkpoint_writes": 6,
    }  # fmt: skip
    assert all(t.bytes > 0 for t in stats.tables)
    pg = engine.dialect.name == "postgresql"
    assert all((t.dead_rows is not None) == pg for t in stats.tables)
    assert (stats.database_bytes is not None) == (engine.dialect.name == "sqlite")
    assert (stats.threads, stats.checkpoints) == (2, 6)
    assert stats.oldest is not None
    assert stats.newest is not None
    assert timedelta(days=1.9) < stats.newest - stats.oldest < timedelta(days=2.1)
    assert [t.thread_id for t in stats.largest_threads] == [big]
    assert set(stats.as_dict()) == {
        "tables", "threads", "checkpoints", "oldest", "newest", "largest_threads",
        "database_bytes", "free_bytes",
    }  # fmt: skip
    empty_top = await saver.astats(top=0)
    assert empty_top.largest_threads == []
