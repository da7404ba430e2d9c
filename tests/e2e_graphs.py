"""Small deterministic LangGraph graphs (no LLM) for the end-to-end tests.

Each builder returns an uncompiled `StateGraph` (or, for the functional API, a factory
taking the checkpointer), so a scenario compiles it against whichever saver it runs on.
Message ids are explicit: `add_messages` would otherwise assign random ones.
"""

from __future__ import annotations

import operator
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Send, interrupt
from typing_extensions import TypedDict

from .interrupts import ask, in_run

# -- multi-turn chat -------------------------------------------------------------------


class ChatState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: int


def chat_graph() -> StateGraph[Any]:
    def bot(state: ChatState) -> dict[str, Any]:
        turn = state.get("turns", 0) + 1
        asked = [m for m in state["messages"] if m.type == "human"]
        last, seen = asked[-1], len(asked)
        reply = AIMessage(content=f"turn {turn}: {last.content} ({seen} asked)", id=f"ai-{turn}")
        return {"messages": [reply], "turns": turn}

    builder = StateGraph(ChatState)
    builder.add_node("bot", bot)
    builder.add_edge(START, "bot")
    builder.add_edge("bot", END)
    return builder


# -- human in the loop -----------------------------------------------------------------


class ReviewState(TypedDict, total=False):
    topic: str
    draft: str
    verdict: str
    note: str
    published: str


def review_graph() -> StateGraph[Any]:
    def draft(state: ReviewState) -> dict[str, Any]:
        return {"draft": f"draft about {state['topic']}"}

    def review(state: ReviewState, config: RunnableConfig) -> dict[str, Any]:
        verdict = ask({"question": "approve?", "draft": state["draft"]}, config)
        note = ask({"question": "note?"}, config)
        return {"verdict": verdict, "note": note}

    def publish(state: ReviewState) -> dict[str, Any]:
        return {"published": f"{state['draft']} [{state['verdict']}: {state['note']}]"}

    builder = StateGraph(ReviewState)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_node("publish", publish)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", "publish")
    builder.add_edge("publish", END)
    return builder


# -- a linear pipeline (time travel, durability) ----------------------------------------


class PipeState(TypedDict, total=False):
    x: int
    trail: Annotated[list[str], operator.add]


def pipeline_graph(calls: Counter[str] | None = None) -> StateGraph[Any]:
    calls = Counter() if calls is None else calls

    def node(name: str, op: Callable[[int], int]) -> Callable[[PipeState], dict[str, Any]]:
        def run(state: PipeState) -> dict[str, Any]:
            calls[name] += 1
            return {"x": op(state.get("x", 0)), "trail": [name]}

        return run

    builder = StateGraph(PipeState)
    builder.add_node("a", node("a", lambda x: x + 1))
    builder.add_node("b", node("b", lambda x: x * 10))
    builder.add_node("c", node("c", lambda x: x - 3))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder


# -- subgraph with an interrupt inside -------------------------------------------------


class NestedState(TypedDict, total=False):
    items: Annotated[list[str], operator.add]
    inner: Annotated[list[str], operator.add]
    answer: str


class InnerState(TypedDict, total=False):
    """The subgraph's own keys: its output does not repeat the parent's `items`."""

    inner: Annotated[list[str], operator.add]
    answer: str


def nested_graph() -> StateGraph[Any]:
    def s1(state: InnerState) -> dict[str, Any]:
        return {"inner": ["s1"]}

    def ask_node(state: InnerState, config: RunnableConfig) -> dict[str, Any]:
        answer = ask({"ask": "which colour?", "seen": list(state["inner"])}, config)
        return {"answer": answer, "inner": [f"ask:{answer}"]}

    def s2(state: InnerState) -> dict[str, Any]:
        return {"inner": ["s2"]}

    sub = StateGraph(InnerState)
    sub.add_node("s1", s1)
    sub.add_node("ask", ask_node)
    sub.add_node("s2", s2)
    sub.add_edge(START, "s1")
    sub.add_edge("s1", "ask")
    sub.add_edge("ask", "s2")
    sub.add_edge("s2", END)

    def prep(state: NestedState) -> dict[str, Any]:
        return {"items": ["prep"]}

    def finish(state: NestedState) -> dict[str, Any]:
        return {"items": [f"finish({len(state['items'])}+{len(state['inner'])})"]}

    parent = StateGraph(NestedState)
    parent.add_node("prep", prep)
    parent.add_node("sub", sub.compile())  # inherits the parent's checkpointer
    parent.add_node("finish", finish)
    parent.add_edge(START, "prep")
    parent.add_edge("prep", "sub")
    parent.add_edge("sub", "finish")
    parent.add_edge("finish", END)
    return parent


# -- Send fan-out ----------------------------------------------------------------------


class FanState(TypedDict, total=False):
    n: int
    results: Annotated[list[int], operator.add]
    total: int


class WorkItem(TypedDict):
    i: int


def fanout_graph() -> StateGraph[Any]:
    def plan(state: FanState) -> dict[str, Any]:
        return {}

    def spread(state: FanState) -> list[Send]:
        return [Send("work", {"i": i}) for i in range(state["n"])]

    def work(item: WorkItem) -> dict[str, Any]:
        return {"results": [item["i"] ** 2]}

    def collect(state: FanState) -> dict[str, Any]:
        return {"total": sum(state["results"])}

    builder = StateGraph(FanState)
    builder.add_node("plan", plan)
    builder.add_node("work", work)
    builder.add_node("collect", collect)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", spread, ["work"])
    builder.add_edge("work", "collect")
    builder.add_edge("collect", END)
    return builder


# -- a superstep where one of two parallel nodes fails ---------------------------------


class SplitState(TypedDict, total=False):
    seed: int
    parts: Annotated[list[str], operator.add]
    joined: str


def split_graph(
    calls: Counter[str], broken: dict[str, bool], saver: BaseCheckpointSaver[Any] | None = None
) -> StateGraph[Any]:
    """`start`, then `steady` and `flaky` in one superstep, then `join`.

    When a parallel task fails, LangGraph cancels (async) or abandons (sync) the siblings
    still running, and their writes are lost: which of two threads finishes first is
    scheduling luck. So a broken `flaky` first waits until `saver` holds `steady`'s writes,
    making "the sibling finished, then its neighbour failed" the case actually tested."""

    def start(state: SplitState) -> dict[str, Any]:
        calls["start"] += 1
        return {"parts": [f"start{state['seed']}"]}

    def steady(state: SplitState) -> dict[str, Any]:
        calls["steady"] += 1
        return {"parts": ["steady"]}

    def flaky(state: SplitState, config: RunnableConfig) -> dict[str, Any]:
        calls["flaky"] += 1
        if broken["flaky"]:
            if saver is not None:
                _await_saved_write(saver, config, ("parts", ["steady"]))
            raise RuntimeError("flaky is broken")
        return {"parts": ["flaky"]}

    def join(state: SplitState) -> dict[str, Any]:
        calls["join"] += 1
        return {"joined": "+".join(sorted(state["parts"]))}

    builder = StateGraph(SplitState)
    builder.add_node("start", start)
    builder.add_node("steady", steady)
    builder.add_node("flaky", flaky)
    builder.add_node("join", join)
    builder.add_edge(START, "start")
    builder.add_edge("start", "steady")
    builder.add_edge("start", "flaky")
    builder.add_edge(["steady", "flaky"], "join")
    builder.add_edge("join", END)
    return builder


def _await_saved_write(
    saver: BaseCheckpointSaver[Any],
    config: RunnableConfig,
    write: tuple[str, Any],
    timeout: float = 30.0,
) -> None:
    """Block (in a node's worker thread) until the thread's latest checkpoint has `write`
    (channel, value) among its pending writes; fail loudly if it never appears."""
    thread: RunnableConfig = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            saved = saver.get_tuple(thread)
        except RuntimeError as exc:  # InMemorySaver's dicts, read while another thread writes
            last_error = exc
        else:
            if saved is not None and any((c, v) == write for _, c, v in saved.pending_writes or []):
                return
        time.sleep(0.005)
    raise AssertionError(f"{write} was never saved (last error: {last_error!r})")


# -- DeltaChannel ----------------------------------------------------------------------


def extend(state: list[str], writes: Sequence[list[str]]) -> list[str]:
    """Batching-invariant: folding [xs] then [ys] equals folding [xs, ys]."""
    return [*state, *(item for batch in writes for item in batch)]


DELTA_SNAPSHOT_EVERY = 4


class LogState(TypedDict, total=False):
    log: Annotated[list[str], DeltaChannel(extend, snapshot_frequency=DELTA_SNAPSHOT_EVERY)]
    n: int
    until: int


def delta_graph() -> StateGraph[Any]:
    def step(state: LogState) -> dict[str, Any]:
        n = state.get("n", 0) + 1
        return {"log": [f"entry{n}"], "n": n}

    def more(state: LogState) -> str:
        return "step" if state["n"] < state["until"] else END

    builder = StateGraph(LogState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", more, ["step", END])
    return builder


# -- functional API --------------------------------------------------------------------


def functional_workflow(checkpointer: Any, calls: Counter[str], *, is_async: bool) -> Any:
    """`@entrypoint` with two `@task`s and an interrupt between them; sync or async."""
    if is_async:

        @task
        async def adouble(x: int) -> int:
            calls["double"] += 1
            return x * 2

        @task
        async def alabel(x: int, answer: str) -> str:
            calls["label"] += 1
            return f"{answer}={x}"

        @entrypoint(checkpointer=checkpointer)
        async def aflow(n: int, config: RunnableConfig) -> dict[str, Any]:
            with in_run(config):
                doubled = await adouble(n)
                answer = interrupt({"doubled": doubled})
                labelled = await alabel(doubled, answer)
            return {"doubled": doubled, "answer": answer, "labelled": labelled}

        return aflow

    @task
    def double(x: int) -> int:
        calls["double"] += 1
        return x * 2

    @task
    def label(x: int, answer: str) -> str:
        calls["label"] += 1
        return f"{answer}={x}"

    @entrypoint(checkpointer=checkpointer)
    def flow(n: int, config: RunnableConfig) -> dict[str, Any]:
        doubled = double(n).result()
        answer = ask({"doubled": doubled}, config)
        labelled = label(doubled, answer).result()
        return {"doubled": doubled, "answer": answer, "labelled": labelled}

    return flow
