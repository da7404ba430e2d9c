"""End to end across savers and drivers: a thread written by the sync saver continues on
the async one and back (same database, same tables), and the async saver on psycopg 3's
async driver. Compared with `InMemorySaver` like the rest of the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpointer import SQLAlchemySaver

from ..e2e_graphs import review_graph
from ..harness import MODES, Mode, Scenario, compare, module_database
from .test_e2e_state import chat, review, subgraph, time_travel

db_url = module_database()
pg_url = module_database(["postgresql"], name="pg_url")


@pytest.mark.parametrize("first", MODES)
@pytest.mark.parametrize("scenario", [review, subgraph], ids=["interrupts", "subgraph"])
async def test_sync_and_async_savers_take_turns(
    first: Mode, scenario: Scenario, db_url: str
) -> None:
    await compare(scenario, first, db_url, alternate=True)


@pytest.mark.parametrize(
    "scenario", [chat, review, time_travel], ids=["chat", "interrupts", "time-travel"]
)
async def test_async_saver_on_psycopg(scenario: Scenario, pg_url: str) -> None:
    await compare(scenario, "async", pg_url, async_pg="psycopg")


async def test_sync_saver_refuses_async_use_with_a_clear_error(tmp_path: Path) -> None:
    with SQLAlchemySaver.from_conn_string(f"sqlite:///{tmp_path / 's.db'}") as saver:
        saver.setup()
        graph = review_graph().compile(checkpointer=saver)
        with pytest.raises(NotImplementedError, match=r"use checkpointer\.AsyncSQLAlchemySaver"):
            await graph.ainvoke({"topic": "x"}, {"configurable": {"thread_id": "t"}})
        with pytest.raises(NotImplementedError, match="SQLAlchemySaver is synchronous"):
            [t async for t in saver.alist(None)]
