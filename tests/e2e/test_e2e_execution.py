"""End to end, how graphs execute: `Send` fan-out, a failing parallel node and the retry
that must not re-run its sibling, each durability mode, `DeltaChannel` snapshots, and the
functional API. Every scenario runs on our saver and on `InMemorySaver`, sync and async,
on PostgreSQL and SQLite."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.types import Command

from ..e2e_graphs import (
    DELTA_SNAPSHOT_EVERY,
    delta_graph,
    fanout_graph,
    functional_workflow,
    pipeline_graph,
    split_graph,
)
from ..harness import MODES, Backend, Mode, Recorder, compare, module_database

pytestmark = pytest.mark.parametrize("mode", MODES)
db_url = module_database()

FAN_OUT = 12


async def fan_out(backend: Backend, record: Recorder) -> None:
    config = {"configurable": {"thread_id": backend.thread("fan")}}
    builder = fanout_graph()
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        done = record("done", await session.invoke(graph, {"n": FAN_OUT}, config))
        assert sorted(done["results"]) == [i * i for i in range(FAN_OUT)]
        assert done["total"] == sum(i * i for i in range(FAN_OUT))
        history = record("history", await session.history(graph, config))
        sends = next(s for s in history if s.next and s.next[0] == "work")
        assert [t.name for t in sends.tasks] == ["work"] * FAN_OUT
        assert sorted(t.result["results"][0] for t in sends.tasks) == [
            i * i for i in range(FAN_OUT)
        ]
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        record("reopened", await session.get_state(graph, config))
        # Replaying the fan-out step from its checkpoint runs all branches again.
        replayed = record("replayed", await session.invoke(graph, None, sends.config))
        assert replayed["total"] == done["total"]


async def failing_sibling(backend: Backend, record: Recorder) -> None:
    config = {"configurable": {"thread_id": backend.thread("split")}}
    calls: Counter[str] = Counter()
    broken = {"flaky": True}
    async with backend.open() as session:
        graph = split_graph(calls, broken, session.saver).compile(checkpointer=session.saver)
        with pytest.raises(RuntimeError, match="flaky is broken"):
            await session.invoke(graph, {"seed": 7}, config)
        failed = record("failed state", await session.get_state(graph, config))
        assert failed.next == ("flaky",)  # `steady` finished: its writes are saved
        by_name = {t.name: t for t in failed.tasks}
        assert by_name["steady"].result == {"parts": ["steady"]}
        assert by_name["flaky"].error is not None
        assert by_name["flaky"].result is None
    broken["flaky"] = False
    async with backend.open() as session:
        graph = split_graph(calls, broken).compile(checkpointer=session.saver)
        fixed = record("fixed", await session.invoke(graph, None, config))
        assert fixed["joined"] == "flaky+start7+steady"
        # The sibling's writes were saved with the failed superstep: it did not run again.
        assert calls == Counter(start=1, steady=1, flaky=2, join=1)
        record("calls", dict(calls))
        record("history", await session.history(graph, config))


async def durability(backend: Backend, record: Recorder) -> None:
    builder = pipeline_graph()
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        for mode in ("sync", "async", "exit"):
            config = {"configurable": {"thread_id": backend.thread(f"durability-{mode}")}}
            first = await session.invoke(graph, {"x": 2}, config, durability=mode)
            second = await session.invoke(graph, {"x": 1}, config, durability=mode)
            record(f"{mode}: runs", [first, second])
            assert second == {"x": 17, "trail": ["a", "b", "c", "a", "b", "c"]}
            history = record(f"{mode}: history", await session.history(graph, config))
            # "exit" saves only each run's final checkpoint; the others every step.
            assert len(history) == (2 if mode == "exit" else 10)
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        for mode in ("sync", "async", "exit"):
            config = {"configurable": {"thread_id": backend.thread(f"durability-{mode}")}}
            record(f"{mode}: reopened", await session.get_state(graph, config))


async def delta_channel(backend: Backend, record: Recorder) -> None:
    config = {"configurable": {"thread_id": backend.thread("delta")}}
    builder = delta_graph()
    steps = 3 * DELTA_SNAPSHOT_EVERY + 1
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        done = record("done", await session.invoke(graph, {"until": steps, "log": []}, config))
        assert done["log"] == [f"entry{i}" for i in range(1, steps + 1)]
        record("history", await session.history(graph, config))
        stored = await session.checkpoints(config)
        snapshots = [
            t.checkpoint["channel_values"]["log"].value
            for t in stored
            if isinstance(t.checkpoint["channel_values"].get("log"), _DeltaSnapshot)
        ]
        assert len(snapshots) >= 3, "DeltaChannel wrote no snapshots"
        record("snapshots", snapshots)
    async with backend.open() as session:
        # Reconstructed from the last snapshot plus the writes after it.
        graph = builder.compile(checkpointer=session.saver)
        reopened = record("reopened", await session.get_state(graph, config))
        assert reopened.values["log"] == done["log"]
        more = record("more", await session.invoke(graph, {"until": steps + 3}, config))
        assert more["log"][-3:] == [f"entry{i}" for i in range(steps + 1, steps + 4)]
        record("state", await session.get_state(graph, config))


async def functional(backend: Backend, record: Recorder) -> None:
    config = {"configurable": {"thread_id": backend.thread("functional")}}
    calls: Counter[str] = Counter()
    async with backend.open() as session:
        is_async = session.mode == "async"
        flow: Any = functional_workflow(session.saver, calls, is_async=is_async)
        paused = record("paused", await session.invoke(flow, 21, config))
        assert paused["__interrupt__"][0].value == {"doubled": 42}
        state = record("paused state", await session.get_state(flow, config))
        assert state.next == ("aflow" if is_async else "flow",)
    async with backend.open() as session:
        flow = functional_workflow(session.saver, calls, is_async=session.mode == "async")
        done = record("done", await session.invoke(flow, Command(resume="answer"), config))
        assert done == {"doubled": 42, "answer": "answer", "labelled": "answer=42"}
        # The task that ran before the interrupt was not run again on resume.
        assert calls == Counter(double=1, label=1)
        record("final", await session.get_state(flow, config))
        record("history", await session.history(flow, config))


async def test_send_fan_out(mode: Mode, db_url: str) -> None:
    await compare(fan_out, mode, db_url)


async def test_failed_sibling_is_not_rerun(mode: Mode, db_url: str) -> None:
    await compare(failing_sibling, mode, db_url)


async def test_durability_modes(mode: Mode, db_url: str) -> None:
    await compare(durability, mode, db_url)


async def test_delta_channel_snapshots(mode: Mode, db_url: str) -> None:
    await compare(delta_channel, mode, db_url)


async def test_functional_api_interrupt_and_resume(mode: Mode, db_url: str) -> None:
    await compare(functional, mode, db_url)
