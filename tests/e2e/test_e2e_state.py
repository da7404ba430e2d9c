"""End to end, state over time: multi-turn chat across reopened savers, interrupts and
resume, time travel and forks, subgraphs. Every scenario runs on our saver and on
`InMemorySaver`, sync (`invoke`) and async (`ainvoke`), on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langgraph.types import Command

from ..e2e_graphs import chat_graph, nested_graph, pipeline_graph, review_graph
from ..harness import MODES, Backend, Mode, Recorder, compare, module_database

pytestmark = pytest.mark.parametrize("mode", MODES)
db_url = module_database()


async def chat(backend: Backend, record: Recorder) -> None:
    config = {"configurable": {"thread_id": backend.thread("chat")}}
    other = {"configurable": {"thread_id": backend.thread("chat-other")}}
    builder = chat_graph()
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        first = await session.invoke(graph, {"messages": [HumanMessage("hello", id="h1")]}, config)
        record("turn 1", first)
        await session.invoke(graph, {"messages": [HumanMessage("elsewhere", id="o1")]}, other)
    # Closing the saver (and its engine) loses nothing.
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        record("reopened", await session.get_state(graph, config))
        second = await session.invoke(
            graph, {"messages": [HumanMessage("how are you?", id="h2")]}, config
        )
        record("turn 2", second)
        # add_messages replaces a message with the same id.
        third = await session.invoke(
            graph, {"messages": [HumanMessage("hello again", id="h1")]}, config
        )
        record("turn 3", third)
        assert [m.id for m in third["messages"]] == ["h1", "ai-1", "h2", "ai-2", "ai-3"]
        assert third["messages"][0].content == "hello again"
        assert third["messages"][-1].content == "turn 3: how are you? (2 asked)"
        record("state", await session.get_state(graph, config))
        history = await session.history(graph, config)
        assert len(history) == 9  # input + loop step for each of 3 turns, plus 3 inputs
        record("history", history)
        record("other", await session.get_state(graph, other))
        record("limited", await session.history(graph, config, limit=2))
        record("filtered", await session.history(graph, config, filter={"source": "input"}))


async def review(backend: Backend, record: Recorder) -> None:
    config = {"configurable": {"thread_id": backend.thread("review")}}
    builder = review_graph()
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        paused = await session.invoke(graph, {"topic": "otters"}, config)
        record("paused", paused)
        assert paused["__interrupt__"][0].value == {
            "question": "approve?",
            "draft": "draft about otters",
        }
        state = record("paused state", await session.get_state(graph, config))
        assert state.next == ("review",)
        assert [i.value["question"] for i in state.interrupts] == ["approve?"]
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        again = await session.invoke(graph, Command(resume="yes"), config)
        record("second question", again)
        assert again["__interrupt__"][0].value == {"question": "note?"}
        record("second state", await session.get_state(graph, config))
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        done = await session.invoke(graph, Command(resume="ship it"), config)
        record("done", done)
        assert done["published"] == "draft about otters [yes: ship it]"
        final = record("final", await session.get_state(graph, config))
        assert final.next == ()
        assert final.interrupts == ()
        record("history", await session.history(graph, config))


async def time_travel(backend: Backend, record: Recorder) -> None:
    config = {"configurable": {"thread_id": backend.thread("travel")}}
    builder = pipeline_graph()
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        record("run", await session.invoke(graph, {"x": 1}, config))
        history = record("history", await session.history(graph, config))
        before_b = next(s for s in history if s.next == ("b",))
        record("old state", await session.get_state(graph, before_b.config))
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        # Replay from the checkpoint before `b`: b and c run again on a new branch.
        replayed = await session.invoke(graph, None, before_b.config)
        record("replayed", replayed)
        assert replayed["x"] == 17
        assert replayed["trail"] == ["a", "b", "c"]
        # Fork: pretend `b` produced x=5, then continue from the fork.
        forked = await session.update_state(graph, before_b.config, {"x": 5}, as_node="b")
        record("fork config", forked)
        fork_state = record("fork state", await session.get_state(graph, forked))
        assert fork_state.next == ("c",)
        assert fork_state.metadata is not None
        assert fork_state.metadata["source"] == "update"
        finished = await session.invoke(graph, None, forked)
        record("fork finished", finished)
        assert finished == {"x": 2, "trail": ["a", "c"]}
        record("latest", await session.get_state(graph, config))
        full = record("history after fork", await session.history(graph, config))
        assert len(full) == len(history) + 5  # replay: fork + b + c; update; c
        record("fork history", await session.history(graph, forked))
        record("before fork", await session.history(graph, config, before=forked))


async def subgraph(backend: Backend, record: Recorder) -> None:
    config = {"configurable": {"thread_id": backend.thread("nested")}}
    builder = nested_graph()
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        paused = record("paused", await session.invoke(graph, {"items": ["in"]}, config))
        assert paused["__interrupt__"][0].value == {
            "ask": "which colour?",
            "seen": ["s1"],
        }
        state = record("state", await session.get_state(graph, config, subgraphs=True))
        assert state.next == ("sub",)
        inner = state.tasks[0].state
        assert inner is not None
        assert not isinstance(inner, dict)
        assert inner.next == ("ask",)
        inner_ns = inner.config["configurable"]["checkpoint_ns"]
        assert inner_ns.startswith("sub:")
        record("inner history", await session.history(graph, inner.config))
        record("shallow", await session.get_state(graph, config))
    async with backend.open() as session:
        graph = builder.compile(checkpointer=session.saver)
        record("reopened", await session.get_state(graph, config, subgraphs=True))
        done = record("done", await session.invoke(graph, Command(resume="teal"), config))
        assert done["answer"] == "teal"
        assert done["items"] == ["in", "prep", "finish(2+3)"]
        assert done["inner"] == ["s1", "ask:teal", "s2"]
        record("final", await session.get_state(graph, config, subgraphs=True))
        record("history", await session.history(graph, config))
        inner_config = {
            "configurable": {"thread_id": backend.thread("nested"), "checkpoint_ns": inner_ns}
        }
        record("inner history after", await session.history(graph, inner_config))


async def test_multi_turn_chat_survives_reopen(mode: Mode, db_url: str) -> None:
    await compare(chat, mode, db_url)


async def test_interrupt_and_resume_from_reopened_saver(mode: Mode, db_url: str) -> None:
    await compare(review, mode, db_url)


async def test_time_travel_replay_and_fork(mode: Mode, db_url: str) -> None:
    await compare(time_travel, mode, db_url)


async def test_subgraph_interrupt_and_nested_state(mode: Mode, db_url: str) -> None:
    await compare(subgraph, mode, db_url)
