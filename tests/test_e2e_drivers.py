"""End to end across savers and drivers: a thread written by the sync saver continues on
the async one and back (same database, same tables), and the async saver on psycopg 3's
async driver. Compared with `InMemorySaver` like the rest of the suite."""

from __future__ import annotations

import pytest

from .harness import MODES, Mode, Scenario, compare, module_database
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
