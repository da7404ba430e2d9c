"""The async saver's sync methods: from another thread they run on the saver's loop;
on the loop's own thread (where waiting would deadlock) they raise at once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from checkpointer import AsyncSQLAlchemySaver


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _sync_calls(saver: AsyncSQLAlchemySaver) -> dict[str, Any]:
    """Every sync method through the bridge, run from a worker thread; returns what
    each gave back."""
    assert threading.current_thread() is not threading.main_thread()
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"items": ["a", "b"]}
    checkpoint["channel_versions"] = {"items": "1"}
    stored = saver.put(_config("bridged"), checkpoint, {"by": "thread"}, {"items": "1"})
    saver.put_writes(stored, [("items", "c")], "task")
    second = saver.put(_config("bridged"), empty_checkpoint(), {"by": "second"}, {})
    out = {
        "stored": stored,
        "second": second,
        "got": saver.get_tuple(stored),
        "listed": list(saver.list(_config("bridged"))),
        "limited": list(saver.list(_config("bridged"), limit=1)),
    }
    saver.delete_thread("bridged")
    out["after_delete"] = saver.get_tuple(_config("bridged"))
    return out


@pytest.mark.timeout(60)
async def test_sync_methods_from_another_thread(saver: AsyncSQLAlchemySaver) -> None:
    out = await asyncio.wait_for(asyncio.to_thread(_sync_calls, saver), timeout=30)
    got = out["got"]
    assert got is not None
    assert got.checkpoint["channel_values"] == {"items": ["a", "b"]}
    assert got.metadata["by"] == "thread"
    assert got.pending_writes == [("task", "items", "c")]
    assert [t.config for t in out["listed"]] == [out["second"], out["stored"]]
    assert [t.config for t in out["limited"]] == [out["second"]]
    assert out["after_delete"] is None
    assert await saver.aget_tuple(_config("bridged")) is None


@pytest.mark.timeout(60)
async def test_sync_methods_on_the_loop_thread_raise(saver: AsyncSQLAlchemySaver) -> None:
    """Each raises `InvalidStateError` naming the async method to await instead, without
    blocking the loop (a deadlock would trip the test's timeout)."""
    stored = await saver.aput(_config("t"), empty_checkpoint(), {}, {})
    calls = {
        "aput": lambda: saver.put(_config("t"), empty_checkpoint(), {}, {}),
        "aput_writes": lambda: saver.put_writes(stored, [("a", 1)], "task"),
        "aget_tuple": lambda: saver.get_tuple(stored),
        "alist": lambda: list(saver.list(_config("t"))),
        "adelete_thread": lambda: saver.delete_thread("t"),
    }
    for method, call in calls.items():
        with pytest.raises(asyncio.InvalidStateError, match=f"await saver.{method}") as error:
            call()
        assert "event loop" in str(error.value)
    # Nothing was half-done: the thread is intact and has no writes.
    got = await saver.aget_tuple(_config("t"))
    assert got is not None
    assert got.config == stored
    assert got.pending_writes == []
    assert len([t async for t in saver.alist(_config("t"))]) == 1


@pytest.mark.timeout(60)
def test_saver_made_outside_a_loop_says_so(db_url: str) -> None:
    """A saver created with no running loop, used only through sync methods, explains
    that it needs its loop (or the sync saver)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    saver = AsyncSQLAlchemySaver(create_async_engine(db_url))
    with pytest.raises(asyncio.InvalidStateError, match="SQLAlchemySaver"):
        saver.get_tuple(_config("t"))


class State(TypedDict):
    count: int


def _increment(state: State) -> State:
    return {"count": state["count"] + 1}


@pytest.mark.timeout(120)
async def test_sync_graph_invoke_on_async_saver_from_a_thread(
    saver: AsyncSQLAlchemySaver,
) -> None:
    """`graph.invoke` (sync) with the async saver works from a worker thread, and the
    state it leaves is what `ainvoke` then continues."""
    builder = StateGraph(State)
    builder.add_node("increment", _increment)
    builder.add_edge(START, "increment")
    builder.add_edge("increment", END)
    graph = builder.compile(checkpointer=saver)
    config = _config("graph")
    result = await asyncio.wait_for(
        asyncio.to_thread(graph.invoke, {"count": 1}, config), timeout=60
    )
    assert result == {"count": 2}
    state = await asyncio.to_thread(graph.get_state, config)
    assert state.values == {"count": 2}
    assert await graph.ainvoke({"count": 10}, config) == {"count": 11}
    history = [s async for s in graph.aget_state_history(config)]
    assert [s.values.get("count") for s in history][:2] == [11, 10]
