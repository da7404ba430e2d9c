"""delete_for_runs, copy_thread and prune, on PostgreSQL and SQLite, checked against
real graphs (state read before and after, resumed runs compared with InMemorySaver)
and against the storage invariants (no orphaned blob, no missing one)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, StateSnapshot
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpointer import AsyncSQLAlchemySaver, ThreadNotEmptyError, schema

from ..graphs import interrupting_graph, loop_graph
from ..ops_support import blob_report, count_statements, row_counts

cp = schema.checkpoints


def _config(thread: str, **extra: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}, "recursion_limit": 1000, **extra}  # type: ignore[typeddict-item]


@contextmanager
def count_transactions(engine: AsyncEngine) -> Iterator[list[Any]]:
    seen: list[Any] = []

    def record(conn: Any) -> None:
        seen.append(conn)

    event.listen(engine.sync_engine, "begin", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "begin", record)


def _comparable(state: StateSnapshot) -> tuple[Any, ...]:
    """A state as read, without `parent_config` (pruning detaches the oldest kept
    checkpoint from the deleted ones) and creation time."""
    return (state.values, state.next, state.config, state.metadata, state.tasks, state.interrupts)


async def _clean(engine: AsyncEngine, thread: str) -> None:
    report = await blob_report(engine, thread)
    assert report == {"orphaned": set(), "missing": set()}


async def _checkpoint_ids(
    saver: AsyncSQLAlchemySaver, thread: str, ns: str | None = None
) -> list[str]:
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    if ns is not None:
        config["configurable"]["checkpoint_ns"] = ns
    return [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(config)]


async def _put(
    saver: AsyncSQLAlchemySaver,
    thread: str,
    parent: RunnableConfig | None,
    values: dict[str, Any],
    versions: dict[str, str],
    new: dict[str, str],
    metadata: dict[str, Any],
    ns: str = "",
) -> RunnableConfig:
    checkpoint = Checkpoint(
        v=4,
        id=str(uuid6()),
        ts=datetime.now(timezone.utc).isoformat(),
        channel_values=values,
        channel_versions=dict(versions),
        versions_seen={},
        updated_channels=None,
    )
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
    if parent is not None:
        config["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
    return await saver.aput(config, checkpoint, metadata, new)  # type: ignore[arg-type]


# -- delete_for_runs -----------------------------------------------------------------


async def test_delete_for_runs(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    thread, other = str(uuid4()), str(uuid4())
    r1, r2, r3 = (str(uuid4()) for _ in range(3))
    v = {"shared": saver.get_next_version(None), "own": saver.get_next_version(None)}
    # r1 writes the "shared" blob once; r2's checkpoints keep referencing it.
    c1 = await _put(saver, thread, None, {"shared": {"s": 1}}, v, dict(v), {"run_id": r1})
    await saver.aput_writes(c1, [("x", {"w": 1})], "t1")
    v2 = {**v, "own": saver.get_next_version(v["own"])}
    c2 = await _put(saver, thread, c1, {"own": [2]}, v2, {"own": v2["own"]}, {"run_id": r2})
    await saver.aput_writes(c2, [("x", {"w": 2})], "t2")
    v3 = {**v2, "own": saver.get_next_version(v2["own"])}
    c3 = await _put(saver, thread, c2, {"own": [3]}, v3, {"own": v3["own"]}, {"run_id": r3})
    o1 = await _put(saver, other, None, {"shared": [9]}, v, dict(v), {"run_id": r1})
    await _put(saver, other, o1, {}, v, {}, {"run_id": r2})

    await saver.adelete_for_runs([r1])
    tuples = [t async for t in saver.alist({"configurable": {"thread_id": thread}})]
    assert [t.metadata["run_id"] for t in tuples] == [r3, r2]
    # The shared blob survives (r2 and r3 reference it); r2's writes are untouched.
    assert tuples[1].checkpoint["channel_values"] == {"shared": {"s": 1}, "own": [2]}
    assert tuples[1].pending_writes == [("t2", "x", {"w": 2})]
    assert tuples[1].parent_config == {  # other runs are untouched: the parent stays named
        "configurable": {
            "thread_id": thread,
            "checkpoint_ns": "",
            "checkpoint_id": c1["configurable"]["checkpoint_id"],
        }
    }
    assert await saver.aget_tuple(c1) is None
    assert [
        t.metadata["run_id"] async for t in saver.alist({"configurable": {"thread_id": other}})
    ] == [r2]
    await _clean(engine, thread)
    await _clean(engine, other)
    counts = await row_counts(engine, thread)
    assert counts == {"checkpoints": 2, "checkpoint_writes": 1, "checkpoint_blobs": 3}

    await saver.adelete_for_runs([r2, r3, str(uuid4())])
    assert await row_counts(engine, thread) == {
        "checkpoints": 0,
        "checkpoint_writes": 0,
        "checkpoint_blobs": 0,
    }
    assert await row_counts(engine, other) == {
        "checkpoints": 0,
        "checkpoint_writes": 0,
        "checkpoint_blobs": 0,
    }
    await saver.adelete_for_runs([])
    with pytest.raises(TypeError, match="not the string"):
        await saver.adelete_for_runs(r1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty strings"):
        await saver.adelete_for_runs([None])  # type: ignore[list-item]
    c3_gone = await saver.aget_tuple(c3)
    assert c3_gone is None


async def test_delete_for_runs_of_a_graph(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    """Roll back the last run of a DeltaChannel graph: the state is the first run's."""
    graph = loop_graph(saver)
    thread = str(uuid4())
    first, second = str(uuid4()), str(uuid4())
    await graph.ainvoke(
        {"count": 0, "limit": 15, "items": []}, _config(thread, metadata={"run_id": first})
    )
    before = await graph.aget_state(_config(thread))
    await graph.ainvoke({"limit": 30}, _config(thread, metadata={"run_id": second}))
    assert (await graph.aget_state(_config(thread))).values["count"] == 30
    await saver.adelete_for_runs([second])
    after = await graph.aget_state(_config(thread))
    assert _comparable(after) == _comparable(before)
    await _clean(engine, thread)


def test_run_lookup_is_served_by_the_index(pg_url: str) -> None:
    """On PostgreSQL `delete_for_runs` finds checkpoints by run id through the 0002
    expression index: on an analyzed table of 3,000 checkpoints, the plan of each of
    its statements uses it (it could not if the statement's expression differed from
    the index's). The real statements run, rewritten to EXPLAIN at the cursor."""
    from sqlalchemy import create_engine, make_url

    from checkpointer.statements import for_dialect

    url = make_url(pg_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    statements = for_dialect("postgresql")
    plans: dict[str, str] = {}

    def explain(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> Any:
        return "EXPLAIN " + statement, params

    try:
        with engine.connect() as conn:
            rows = [
                {"thread_id": f"t{i % 50}", "checkpoint_ns": "", "checkpoint_id": f"{i:08}",
                 "checkpoint": {}, "metadata": {"run_id": f"run-{i // 10}"}}
                for i in range(3000)
            ]  # fmt: skip
            conn.execute(cp.insert(), rows)
            conn.exec_driver_sql("ANALYZE checkpoints")
            event.listen(engine, "before_cursor_execute", explain, retval=True)
            for name in ("run_threads", "delete_run_writes", "delete_run_checkpoints"):
                result = conn.execute(getattr(statements, name), {"run_ids": ["run-7", "run-8"]})
                plans[name] = "\n".join(r[0] for r in result)
            event.remove(engine, "before_cursor_execute", explain)
            conn.rollback()
    finally:
        engine.dispose()
    assert set(plans) == {"run_threads", "delete_run_writes", "delete_run_checkpoints"}
    for name, plan in plans.items():
        assert "checkpoints_run_id_idx" in plan, f"{name}:\n{plan}"


# -- copy_thread ------------------------------------------------------------------


async def test_copy_thread_of_a_graph(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    graph = loop_graph(saver, snapshot_frequency=7)
    src, dst = str(uuid4()), str(uuid4())
    await graph.ainvoke({"count": 0, "limit": 40, "items": []}, _config(src))
    await saver.acopy_thread(src, dst)

    def strip(state: StateSnapshot) -> tuple[Any, ...]:
        return (state.values, state.next, state.metadata, state.tasks,
                state.config["configurable"]["checkpoint_id"])  # fmt: skip

    source_history = [strip(s) async for s in graph.aget_state_history(_config(src))]
    target_history = [strip(s) async for s in graph.aget_state_history(_config(dst))]
    assert len(source_history) == 42
    assert target_history == source_history
    head = (await saver.aget_tuple(_config(dst))).config  # type: ignore[union-attr]
    src_head = {"configurable": {**head["configurable"], "thread_id": src}}
    assert await saver.aget_delta_channel_history(config=head, channels=["items"]) == (
        await saver.aget_delta_channel_history(config=src_head, channels=["items"])
    )
    # Both continue alike.
    await graph.ainvoke({"limit": 55}, _config(src))
    await graph.ainvoke({"limit": 55}, _config(dst))
    assert (await graph.aget_state(_config(dst))).values == (
        await graph.aget_state(_config(src))
    ).values
    assert len((await graph.aget_state(_config(dst))).values["items"]) == 55
    await _clean(engine, dst)


async def test_copy_thread_outcomes(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    graph = loop_graph(saver)
    src, busy, empty = str(uuid4()), str(uuid4()), str(uuid4())
    await graph.ainvoke({"count": 0, "limit": 5, "items": []}, _config(src))
    await graph.ainvoke({"count": 0, "limit": 2, "items": []}, _config(busy))
    busy_rows = await row_counts(engine, busy)

    # Onto a thread that has checkpoints: a clear error, nothing copied or changed.
    with pytest.raises(ThreadNotEmptyError, match=busy):
        await saver.acopy_thread(src, busy)
    assert await row_counts(engine, busy) == busy_rows
    # From a thread that has none: nothing to copy, not an error.
    await saver.acopy_thread(str(uuid4()), empty)
    assert await row_counts(engine, empty) == {
        "checkpoints": 0,
        "checkpoint_writes": 0,
        "checkpoint_blobs": 0,
    }
    with pytest.raises(ValueError, match="same thread"):
        await saver.acopy_thread(src, src)
    with pytest.raises(TypeError, match="target_thread_id"):
        await saver.acopy_thread(src, "")  # type: ignore[arg-type]

    # One transaction: a failure on the last table copies nothing.
    def fail_on_writes(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if (
            statement.lstrip().upper().startswith("INSERT INTO CHECKPOINT_WRITES")
            and "SELECT" in statement.upper()
        ):
            raise RuntimeError("injected failure")

    event.listen(engine.sync_engine, "before_cursor_execute", fail_on_writes)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            await saver.acopy_thread(src, empty)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", fail_on_writes)
    assert await row_counts(engine, empty) == {
        "checkpoints": 0,
        "checkpoint_writes": 0,
        "checkpoint_blobs": 0,
    }
    await saver.acopy_thread(src, empty)
    assert await row_counts(engine, empty) == await row_counts(engine, src)


# -- prune ------------------------------------------------------------------------


@pytest.mark.parametrize("frequency", [10, 1000])
async def test_prune_keep_latest_keeps_delta_state(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine, frequency: int
) -> None:
    """120 steps of a graph with a DeltaChannel: the state read after pruning equals the
    state read before, and the pruned thread continues exactly like an unpruned one."""
    graph = loop_graph(saver, snapshot_frequency=frequency)
    thread = str(uuid4())
    await graph.ainvoke({"count": 0, "limit": 120, "items": []}, _config(thread))
    before = await graph.aget_state(_config(thread))
    assert len(await _checkpoint_ids(saver, thread)) == 122

    await saver.aprune([thread], strategy="keep_latest")
    after = await graph.aget_state(_config(thread))
    assert _comparable(after) == _comparable(before)
    assert after.values["items"] == [f"i{n}" for n in range(120)]
    kept = await _checkpoint_ids(saver, thread)
    assert kept[0] == before.config["configurable"]["checkpoint_id"]
    if frequency == 10:
        assert len(kept) <= 11  # back to the last snapshot only
    else:
        assert len(kept) > 100  # never snapshotted: the whole chain is needed
    await _clean(engine, thread)
    # Pruning again changes nothing.
    await saver.aprune([thread])
    assert await _checkpoint_ids(saver, thread) == kept

    memory = InMemorySaver()
    reference = loop_graph(memory, snapshot_frequency=frequency)
    reference.invoke({"count": 0, "limit": 120, "items": []}, _config("ref"))
    reference.invoke({"limit": 130}, _config("ref"))
    await graph.ainvoke({"limit": 130}, _config(thread))
    assert (await graph.aget_state(_config(thread))).values == reference.get_state(
        _config("ref")
    ).values
    await _clean(engine, thread)


async def test_prune_subgraph_interrupted(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    """A run waiting inside a subgraph: pruning keeps what resuming it needs."""
    graph = interrupting_graph(saver)
    reference = interrupting_graph(InMemorySaver())
    thread = str(uuid4())
    for round_ in range(3):
        first = {"items": [f"start{round_}"]}
        await graph.ainvoke(first, _config(thread))
        reference.invoke(first, _config("ref"))
        before = await graph.aget_state(_config(thread), subgraphs=True)
        assert before.next == ("sub",)
        await saver.aprune([thread])
        after = await graph.aget_state(_config(thread), subgraphs=True)
        assert _comparable(after) == _comparable(before)
        namespaces = {
            t.config["configurable"]["checkpoint_ns"]
            async for t in saver.alist({"configurable": {"thread_id": thread}})
        }
        assert any(ns.startswith("sub:") for ns in namespaces)
        await graph.ainvoke(Command(resume=f"a{round_}"), _config(thread))
        reference.invoke(Command(resume=f"a{round_}"), _config("ref"))
        assert (await graph.aget_state(_config(thread))).values == reference.get_state(
            _config("ref")
        ).values
        await _clean(engine, thread)
    assert (await graph.aget_state(_config(thread))).values["items"][-1] == "done"


async def test_prune_blob_shared_with_a_kept_checkpoint_survives(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    thread = str(uuid4())
    x1 = saver.get_next_version(None)
    c1 = await _put(saver, thread, None, {"x": {"v": 1}}, {"x": x1}, {"x": x1}, {})
    x2 = saver.get_next_version(x1)
    y1 = saver.get_next_version(None)
    c2 = await _put(
        saver, thread, c1, {"x": {"v": 2}, "y": [1]}, {"x": x2, "y": y1}, {"x": x2, "y": y1}, {}
    )
    await saver.aput_writes(c2, [("y", [5])], "task")
    y2 = saver.get_next_version(y1)
    c3 = await _put(saver, thread, c2, {"y": [2]}, {"x": x2, "y": y2}, {"y": y2}, {})
    await saver.aput_writes(c3, [("y", [6])], "task")
    await saver.aprune([thread], strategy="keep_latest")
    async with engine.connect() as conn:
        kept = set((await conn.execute(
            select(schema.checkpoint_blobs.c.channel, schema.checkpoint_blobs.c.version)
            .where(schema.checkpoint_blobs.c.thread_id == thread)
        )).all())  # fmt: skip
    # x at x2 was written by c2 (deleted) and is read by c3 (kept): it stays.
    assert kept == {("x", x2), ("y", y2)}
    latest = await saver.aget_tuple({"configurable": {"thread_id": thread}})
    assert latest is not None
    assert latest.checkpoint["channel_values"] == {"x": {"v": 2}, "y": [2]}
    assert latest.pending_writes == [("task", "y", [6])]
    assert latest.parent_config is None
    assert await row_counts(engine, thread) == {
        "checkpoints": 1,
        "checkpoint_writes": 1,
        "checkpoint_blobs": 2,
    }
    assert c3["configurable"]["checkpoint_id"] == latest.config["configurable"]["checkpoint_id"]


async def test_prune_delete_in_batches_and_bad_arguments(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checkpointer import plans

    monkeypatch.setattr(plans, "PRUNE_BATCH", 10)  # batches of 10 instead of 100
    threads = [str(uuid4()) for _ in range(21)]
    keep = str(uuid4())
    v = saver.get_next_version(None)
    for thread in [*threads, keep]:
        c = await _put(saver, thread, None, {"b": {"t": thread}}, {"b": v}, {"b": v}, {})
        await saver.aput_writes(c, [("w", 1)], "task")
    with count_transactions(engine) as transactions:
        await saver.aprune(threads, strategy="delete")
    assert len(transactions) == 3  # 10 + 10 + 1
    async with engine.connect() as conn:
        for table in (cp, schema.checkpoint_writes, schema.checkpoint_blobs):
            left = await conn.scalar(select(func.count()).select_from(table))
            assert left == 1
    assert await row_counts(engine, keep) == {
        "checkpoints": 1,
        "checkpoint_writes": 1,
        "checkpoint_blobs": 1,
    }

    with pytest.raises(TypeError, match="not the string"):
        await saver.aprune(keep)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown prune strategy 'latest'"):
        await saver.aprune([keep], strategy="latest")
    with pytest.raises(TypeError, match="non-empty strings"):
        await saver.aprune([keep, 3])  # type: ignore[list-item]
    assert await row_counts(engine, keep) == {
        "checkpoints": 1,
        "checkpoint_writes": 1,
        "checkpoint_blobs": 1,
    }
    await saver.aprune([])


async def test_prune_keep_latest_one_transaction_per_thread(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    graph = loop_graph(saver)
    threads = [str(uuid4()) for _ in range(4)]
    for thread in threads:
        await graph.ainvoke({"count": 0, "limit": 12, "items": []}, _config(thread))
    with count_transactions(engine) as transactions, count_statements(engine.sync_engine) as seen:
        await saver.aprune(threads)
    assert len(transactions) == 4
    assert len(seen) <= 4 * 7
    for thread in threads:
        await _clean(engine, thread)
        assert (await graph.aget_state(_config(thread))).values["count"] == 12


async def test_prune_while_a_run_writes(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    """A run saving checkpoints while its thread is pruned again and again loses
    nothing: its final state equals an unpruned run's, and it can continue."""
    graph = loop_graph(saver, snapshot_frequency=5)
    thread = str(uuid4())
    await graph.ainvoke({"count": 0, "limit": 3, "items": []}, _config(thread))
    run = asyncio.create_task(graph.ainvoke({"limit": 90}, _config(thread)))
    prunes = 0
    while not run.done():
        await saver.aprune([thread])
        prunes += 1
        await asyncio.sleep(0.005)
    await run
    assert prunes >= 3
    reference = loop_graph(InMemorySaver(), snapshot_frequency=5)
    reference.invoke({"count": 0, "limit": 3, "items": []}, _config("ref"))
    reference.invoke({"limit": 90}, _config("ref"))
    state = await graph.aget_state(_config(thread))
    assert state.values == reference.get_state(_config("ref")).values
    await _clean(engine, thread)
    await saver.aprune([thread])
    assert (await graph.aget_state(_config(thread))).values == state.values
    await graph.ainvoke({"limit": 160}, _config(thread))
    assert (await graph.aget_state(_config(thread))).values["items"] == [
        f"i{n}" for n in range(160)
    ]
    await _clean(engine, thread)


async def test_sync_bridges(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    graph = loop_graph(saver)
    src, dst = str(uuid4()), str(uuid4())
    run = str(uuid4())
    await graph.ainvoke(
        {"count": 0, "limit": 12, "items": []}, _config(src, metadata={"run_id": run})
    )
    before = await graph.aget_state(_config(src))
    await asyncio.to_thread(saver.copy_thread, src, dst)
    await asyncio.to_thread(saver.prune, [src])
    assert _comparable(await graph.aget_state(_config(src))) == _comparable(before)
    await asyncio.to_thread(saver.delete_for_runs, [run])
    assert await row_counts(engine, src) == {
        "checkpoints": 0,
        "checkpoint_writes": 0,
        "checkpoint_blobs": 0,
    }
    await asyncio.to_thread(saver.prune, [dst], strategy="delete")
    assert await row_counts(engine, dst) == {
        "checkpoints": 0,
        "checkpoint_writes": 0,
        "checkpoint_blobs": 0,
    }
    with pytest.raises(asyncio.InvalidStateError):
        saver.prune([src])


# -- the sync saver ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "psycopg"])
def sync_url(request: pytest.FixtureRequest) -> str:
    from sqlalchemy import make_url

    if request.param == "sqlite":
        url = make_url(str(request.getfixturevalue("sqlite_url")))
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    url = make_url(str(request.getfixturevalue("pg_url")))
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def test_sync_saver_operations(sync_url: str) -> None:
    from sqlalchemy import create_engine

    from checkpointer import SQLAlchemySaver

    from ..ops_support import sync_blob_report

    engine = create_engine(sync_url)
    try:
        saver = SQLAlchemySaver(engine)
        graph = loop_graph(saver, snapshot_frequency=4)
        src, dst = str(uuid4()), str(uuid4())
        first, second = str(uuid4()), str(uuid4())
        graph.invoke(
            {"count": 0, "limit": 20, "items": []}, _config(src, metadata={"run_id": first})
        )
        graph.invoke({"limit": 30}, _config(src, metadata={"run_id": second}))
        head = graph.get_state(_config(src)).config
        assert saver.get_delta_channel_history(config=head, channels=["items", "blob"]) == (
            BaseCheckpointSaver.get_delta_channel_history(
                saver, config=head, channels=["items", "blob"]
            )
        )
        saver.copy_thread(src, dst)
        with pytest.raises(ThreadNotEmptyError):
            saver.copy_thread(src, dst)
        before = graph.get_state(_config(src))
        saver.prune([src, dst])
        for thread in (src, dst):
            assert graph.get_state(_config(thread)).values == before.values
            assert sync_blob_report(engine, thread) == {"orphaned": set(), "missing": set()}
        graph.invoke({"limit": 35}, _config(dst))
        assert graph.get_state(_config(dst)).values["items"] == [f"i{n}" for n in range(35)]
        saver.delete_for_runs([second])
        assert sync_blob_report(engine, src) == {"orphaned": set(), "missing": set()}
        saver.prune([src, dst], strategy="delete")
        assert list(saver.list({"configurable": {"thread_id": dst}})) == []
        with pytest.raises(TypeError):
            saver.prune(src)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown prune strategy"):
            saver.prune([src], strategy="all")
    finally:
        engine.dispose()
