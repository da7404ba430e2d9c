"""Small real LangGraph graphs for the operation tests (no LLMs): a loop whose state
has a `DeltaChannel` list, an inline counter and a blob-stored dict, and a graph whose
subgraph interrupts.

No `from __future__ import annotations` here: the state classes are built inside
functions and LangGraph evaluates their annotations (`DeltaChannel(...)` with a local)."""

from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel

from .interrupts import ask


def extend(state: list[Any], writes: Sequence[Any]) -> list[Any]:
    """A batching-invariant reducer, as `DeltaChannel` requires."""
    out = list(state)
    for w in writes:
        out.extend(w if isinstance(w, list) else [w])
    return out


def loop_graph(saver: BaseCheckpointSaver[Any], snapshot_frequency: int = 10) -> Pregel[Any]:
    class State(TypedDict):
        items: Annotated[list[str], DeltaChannel(extend, snapshot_frequency=snapshot_frequency)]
        count: int
        limit: int
        blob: dict[str, Any]

    def step(s: State) -> dict[str, Any]:
        n = s["count"]
        return {"items": [f"i{n}"], "count": n + 1, "blob": {"n": n, "pad": "x" * (n % 7)}}

    def route(s: State) -> str:
        return "step" if s["count"] < s["limit"] else END

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", route)
    return builder.compile(checkpointer=saver)  # type: ignore[return-value]


def interrupting_graph(saver: BaseCheckpointSaver[Any]) -> Pregel[Any]:
    """Root: prepare -> sub (a subgraph that asks a question) -> finish."""

    class State(TypedDict):
        items: Annotated[list[str], DeltaChannel(extend, snapshot_frequency=3)]
        answer: str

    def ask_node(s: State, config: RunnableConfig) -> dict[str, Any]:
        answer = ask("question?", config)
        return {"items": [f"sub:{answer}"], "answer": str(answer)}

    def sub_before(s: State) -> dict[str, Any]:
        return {"items": ["sub:before"]}

    sub = StateGraph(State)
    sub.add_node("before", sub_before)
    sub.add_node("ask", ask_node)
    sub.add_edge(START, "before")
    sub.add_edge("before", "ask")
    subgraph = sub.compile()

    def prepare(s: State) -> dict[str, Any]:
        return {"items": [f"prep{len(s['items'])}"]}

    def finish(s: State) -> dict[str, Any]:
        return {"items": ["done"]}

    root = StateGraph(State)
    root.add_node("prepare", prepare)
    root.add_node("sub", subgraph)
    root.add_node("finish", finish)
    root.add_edge(START, "prepare")
    root.add_edge("prepare", "sub")
    root.add_edge("sub", "finish")
    return root.compile(checkpointer=saver)  # type: ignore[return-value]
