"""A real LangGraph graph survives closing the saver: a new saver over the same database
continues the thread with its state, history and pending interrupt intact, and ends
where the same turns end on `InMemorySaver`."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command
from typing_extensions import TypedDict

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver

from ..interrupts import ask


class Chat(TypedDict):
    count: int
    messages: Annotated[list[AnyMessage], add_messages]


def _count(state: Chat) -> dict[str, Any]:
    return {"count": state.get("count", 0) + 1}


def _respond(state: Chat) -> dict[str, Any]:
    last = state["messages"][-1]
    return {
        "messages": [
            AIMessage(content=f"#{state['count']}: {last.content}", id=f"ai{state['count']}")
        ]
    }


def _review(state: Chat, config: RunnableConfig) -> dict[str, Any]:
    answer = ask({"question": "approve?", "count": state["count"]}, config)
    return {"messages": [AIMessage(content=f"review: {answer}", id=f"review{state['count']}")]}


def _graph(checkpointer: Any, *, review: bool = False) -> Any:
    builder = StateGraph(Chat)
    builder.add_node("count", _count)
    builder.add_node("respond", _respond)
    builder.add_edge(START, "count")
    builder.add_edge("count", "respond")
    if review:
        builder.add_node("review", _review)
        builder.add_edge("respond", "review")
        builder.add_edge("review", END)
    else:
        builder.add_edge("respond", END)
    return builder.compile(checkpointer=checkpointer)


def _turn(i: int) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=f"turn {i}", id=f"h{i}")]}


CONFIG: Any = {"configurable": {"thread_id": "chat"}}


def _sync_url(url: str) -> str:
    return (
        url.replace("+asyncpg", "+psycopg")
        .replace("+aiosqlite", "")
        .replace("+asyncmy", "+pymysql")
    )


def _summary(values: dict[str, Any]) -> tuple[int | None, list[tuple[str, str, Any]]]:
    return values.get("count"), [(m.type, m.id, m.content) for m in values["messages"]]


def _reference(turns: int) -> tuple[Any, list[Any]]:
    """The final values and the history's values after `turns` turns on InMemorySaver."""
    graph = _graph(InMemorySaver())
    for i in range(turns):
        graph.invoke(_turn(i), CONFIG)
    history = [_summary(s.values) for s in graph.get_state_history(CONFIG) if s.values]
    return _summary(graph.get_state(CONFIG).values), history


async def test_async_graph_continues_after_reopen(db_url: str) -> None:
    async with AsyncSQLAlchemySaver.from_conn_string(db_url) as saver:
        graph = _graph(saver)
        for i in range(3):
            await graph.ainvoke(_turn(i), CONFIG)
        before = await graph.aget_state(CONFIG)
        history_before = [s.config async for s in graph.aget_state_history(CONFIG)]
    assert _summary(before.values) == _reference(3)[0]

    async with AsyncSQLAlchemySaver.from_conn_string(db_url) as saver:
        graph = _graph(saver)
        reopened = await graph.aget_state(CONFIG)
        assert reopened.values == before.values
        assert reopened.config == before.config
        assert [s.config async for s in graph.aget_state_history(CONFIG)] == history_before
        for i in range(3, 5):
            await graph.ainvoke(_turn(i), CONFIG)
        final = await graph.aget_state(CONFIG)
        history = [_summary(s.values) async for s in graph.aget_state_history(CONFIG) if s.values]
    want_final, want_history = _reference(5)
    assert _summary(final.values) == want_final
    assert want_final[0] == 5
    assert len(want_final[1]) == 10
    assert history == want_history


def test_sync_graph_continues_after_reopen(db_url: str) -> None:
    url = _sync_url(db_url)
    with SQLAlchemySaver.from_conn_string(url) as saver:
        graph = _graph(saver)
        for i in range(3):
            graph.invoke(_turn(i), CONFIG)
        before = graph.get_state(CONFIG)

    with SQLAlchemySaver.from_conn_string(url) as saver:
        graph = _graph(saver)
        assert graph.get_state(CONFIG).values == before.values
        for i in range(3, 5):
            graph.invoke(_turn(i), CONFIG)
        final = graph.get_state(CONFIG)
        history = [_summary(s.values) for s in graph.get_state_history(CONFIG) if s.values]
    want_final, want_history = _reference(5)
    assert _summary(final.values) == want_final
    assert history == want_history


async def test_interrupt_resumes_after_reopen(db_url: str) -> None:
    """A run paused by `interrupt()` is resumed by a new saver (and the sync saver can
    read the async saver's state: one storage format)."""
    async with AsyncSQLAlchemySaver.from_conn_string(db_url) as saver:
        graph = _graph(saver, review=True)
        await graph.ainvoke(_turn(0), CONFIG)
        paused = await graph.aget_state(CONFIG)
    assert paused.next == ("review",)
    assert paused.interrupts[0].value == {"question": "approve?", "count": 1}

    with SQLAlchemySaver.from_conn_string(_sync_url(db_url)) as sync_saver:
        sync_state = _graph(sync_saver, review=True).get_state(CONFIG)
        assert sync_state.next == ("review",)
        assert sync_state.values == paused.values

    async with AsyncSQLAlchemySaver.from_conn_string(db_url) as saver:
        graph = _graph(saver, review=True)
        result = await graph.ainvoke(Command(resume="yes"), CONFIG)
        done = await graph.aget_state(CONFIG)
    assert done.next == ()
    assert [(m.id, m.content) for m in result["messages"]] == [
        ("h0", "turn 0"),
        ("ai1", "#1: turn 0"),
        ("review1", "review: yes"),
    ]
