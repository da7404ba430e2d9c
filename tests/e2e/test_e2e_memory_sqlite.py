"""The sync saver on in-memory SQLite, as in notebooks: LangGraph writes checkpoints from
worker threads, so every thread must see the same database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from checkpointer import SQLAlchemySaver

from ..e2e_graphs import fanout_graph

FAN = 12
TOTAL = sum(i * i for i in range(FAN))


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_from_conn_string_in_memory_shares_one_database(url: str) -> None:
    with SQLAlchemySaver.from_conn_string(url) as saver:
        saver.setup()
        graph = fanout_graph().compile(checkpointer=saver)

        def run(i: int) -> Any:
            return graph.invoke({"n": FAN}, {"configurable": {"thread_id": f"t{i}"}})

        # Graphs side by side, each fanning out to 12 nodes on worker threads.
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(run, range(8)))
        history = list(graph.get_state_history({"configurable": {"thread_id": "t5"}}))
    assert [r["total"] for r in results] == [TOTAL] * 8
    assert [s.next for s in history] == [
        (),
        ("collect",),
        ("work",) * FAN,
        ("plan",),
        ("__start__",),
    ]


def test_per_thread_memory_engine_is_refused() -> None:
    engine = create_engine("sqlite://")  # SingletonThreadPool: one database per thread
    try:
        with pytest.raises(ValueError, match="StaticPool"):
            SQLAlchemySaver(engine)
    finally:
        engine.dispose()


def test_static_pool_engine_of_the_caller() -> None:
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    try:
        saver = SQLAlchemySaver(engine)
        saver.setup()
        graph = fanout_graph().compile(checkpointer=saver)
        result = graph.invoke({"n": FAN}, {"configurable": {"thread_id": "t"}})
    finally:
        engine.dispose()
    assert result["total"] == TOTAL
