"""Each saver refuses the other kind of engine (or no engine) when it is constructed,
with a message naming what to use. Engines are created, never connected."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver


def test_async_saver_refuses_a_sync_engine() -> None:
    engine = create_engine("sqlite://")
    with pytest.raises(TypeError, match="create_async_engine") as caught:
        AsyncSQLAlchemySaver(engine)  # type: ignore[arg-type]
    assert "SQLAlchemySaver" in str(caught.value).replace("AsyncSQLAlchemySaver", "")
    engine.dispose()


async def test_sync_saver_refuses_an_async_engine() -> None:
    engine = create_async_engine("sqlite+aiosqlite://")
    with pytest.raises(TypeError, match="AsyncSQLAlchemySaver") as caught:
        SQLAlchemySaver(engine)  # type: ignore[arg-type]
    assert "create_engine" in str(caught.value)
    await engine.dispose()


@pytest.mark.parametrize(
    "make",
    [
        lambda: create_async_engine("postgresql+asyncpg://nobody@nowhere/none").sync_engine,
        lambda: create_engine("postgresql+asyncpg://nobody@nowhere/none"),
        lambda: create_engine("sqlite+aiosqlite://"),
    ],
    ids=["sync_engine-of-async", "create_engine-asyncpg", "create_engine-aiosqlite"],
)
def test_sync_saver_refuses_an_engine_on_an_async_driver(make: Any) -> None:
    """It would fail on first use with MissingGreenlet, far from the mistake."""
    with pytest.raises(TypeError, match="async") as caught:
        SQLAlchemySaver(make())
    assert "AsyncSQLAlchemySaver" in str(caught.value)
    assert "create_async_engine" in str(caught.value)


@pytest.mark.parametrize("given", ["sqlite:///state.db", None, object()])
def test_no_engine_at_all(given: object) -> None:
    with pytest.raises(TypeError, match=r"AsyncSQLAlchemySaver\.from_conn_string"):
        AsyncSQLAlchemySaver(given)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"SQLAlchemySaver\.from_conn_string"):
        SQLAlchemySaver(given)  # type: ignore[arg-type]


async def test_the_right_engines_are_accepted() -> None:
    """The checks refuse only what is wrong (nothing is connected here)."""
    async_engine = create_async_engine("sqlite+aiosqlite:///unused.db")
    sync_engine = create_engine("sqlite:///unused.db")
    assert AsyncSQLAlchemySaver(async_engine).engine is async_engine
    assert SQLAlchemySaver(sync_engine).engine is sync_engine
    await async_engine.dispose()
    sync_engine.dispose()
