"""A small deterministic LangGraph agent (no LLM) whose state survives restarts.

It persists to a SQLite file by default (`demo-state/checkpoints.db`), or to the database
named by `CHECKPOINTER_DATABASE_URL` (for example `postgresql://postgres@127.0.0.1/test`).
Each run of the demo "restarts" once: it closes the saver, opens a new one over the same
database and continues the thread. Run it twice and the second run picks up where the first
one stopped.
"""

from __future__ import annotations

import asyncio
import operator
import os
import re
from pathlib import Path
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from sqlalchemy.engine import make_url
from typing_extensions import TypedDict

from checkpointer import AsyncSQLAlchemySaver
from checkpointer.migrations import URL_ENV

THREAD: RunnableConfig = {"configurable": {"thread_id": "demo-customer-42"}}
ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    topics: Annotated[list[str], operator.add]
    turns: int


def classify(state: State) -> dict[str, Any]:
    """Pick the topic of the last message by keyword: deterministic, no model."""
    text = str(state["messages"][-1].content).lower()
    for topic, words in (("billing", "invoice|refund|price"), ("shipping", "parcel|deliver")):
        if re.search(words, text):
            return {"topics": [topic]}
    return {"topics": ["other"]}


def answer(state: State) -> dict[str, Any]:
    topic = state["topics"][-1]
    turns = state.get("turns", 0) + 1
    reply = f"[turn {turns}] Routing your {topic} question; topics so far: {state['topics']}"
    return {"messages": [AIMessage(reply)], "turns": turns}


def build() -> StateGraph[State]:
    builder = StateGraph(State)
    builder.add_node("classify", classify)
    builder.add_node("answer", answer)
    builder.add_edge(START, "classify")
    builder.add_edge("classify", "answer")
    builder.add_edge("answer", END)
    return builder


def database_url() -> str:
    """The async URL of the demo database: the environment's, else a local SQLite file."""
    raw = os.environ.get(URL_ENV)
    if not raw:
        path = Path("demo-state") / "checkpoints.db"
        path.parent.mkdir(exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"
    url = make_url(raw)
    backend = url.get_backend_name()
    if url.drivername == backend and backend in ASYNC_DRIVERS:
        url = url.set(drivername=ASYNC_DRIVERS[backend])
    return url.render_as_string(hide_password=False)


async def run_turns(url: str, questions: list[str]) -> dict[str, Any]:
    async with AsyncSQLAlchemySaver.from_conn_string(url) as saver:
        await saver.setup()  # idempotent: migrates to head on first use only
        graph = build().compile(checkpointer=saver)
        held = (await graph.aget_state(THREAD)).values.get("messages", [])
        print(f"  opened the saver: the thread holds {len(held)} messages")
        for question in questions:
            turn: Any = {"messages": [HumanMessage(question)]}
            await graph.ainvoke(turn, THREAD)
            print(f"  you: {question}")
            print(f"  bot: {(await graph.aget_state(THREAD)).values['messages'][-1].content}")
        return dict((await graph.aget_state(THREAD)).values)


async def main() -> None:
    url = database_url()
    print(f"database: {make_url(url).render_as_string(hide_password=True)}")
    print("first process:")
    first = await run_turns(url, ["Where is my parcel?", "I need a refund for invoice 7"])
    print("restart: the saver and its engine are closed; a new one opens the same database")
    print("second process:")
    second = await run_turns(url, ["Hello again"])
    assert second["turns"] == first["turns"] + 1, "the thread did not survive the restart"
    assert second["messages"][: len(first["messages"])] == first["messages"]
    print(f"state survived the restart: {second['turns']} turns, topics {second['topics']}")


if __name__ == "__main__":
    asyncio.run(main())
