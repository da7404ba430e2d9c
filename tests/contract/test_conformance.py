"""The official conformance suite (`langgraph-checkpoint-conformance`) for every async
driver: all eight capabilities must be detected and pass."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES, Capability
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver

DRIVERS = {
    "asyncpg": ("pg_url", "postgresql+asyncpg"),
    "psycopg": ("pg_url", "postgresql+psycopg"),
    "aiosqlite": ("sqlite_url", "sqlite+aiosqlite"),
    "asyncmy": ("mysql_url", "mysql+asyncmy"),
}


def test_all_capabilities_are_the_eight() -> None:
    assert {c.value for c in ALL_CAPABILITIES} == {
        "put", "put_writes", "get_tuple", "list", "delete_thread",
        "delete_for_runs", "copy_thread", "prune",
    }  # fmt: skip


@pytest.mark.parametrize("driver", list(DRIVERS))
async def test_conformance(driver: str, request: pytest.FixtureRequest) -> None:
    fixture, drivername = DRIVERS[driver]
    url = make_url(str(request.getfixturevalue(fixture))).set(drivername=drivername)
    engine = create_async_engine(url)

    @checkpointer_test(name=f"AsyncSQLAlchemySaver[{driver}]")
    async def factory() -> AsyncIterator[AsyncSQLAlchemySaver]:
        yield AsyncSQLAlchemySaver(engine)

    try:
        report = await validate(factory, progress=ProgressCallbacks.verbose())
    finally:
        await engine.dispose()
    report.print_report()
    assert set(report.results) == {c.value for c in Capability}
    for capability in ALL_CAPABILITIES:
        result = report.results[capability.value]
        assert result.detected, f"{capability.value} not detected"
        assert result.passed, f"{capability.value} failed: {result.failures}"
    assert report.passed_all()
    assert report.conformance_level() == "FULL"
