"""A SQLite connection closed under the pool (issue 16): the fast path, which runs whole
plans on the raw connection, reports it as a lost connection (the pool invalidated, a
WARNING), and the call is retried on a fresh one: an autocommit plan again on the fast
path, a transaction replayed on `Connection` (`SaverBase._replay`). Before, aiosqlite's
bare `ValueError: no active connection` escaped the call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.migrations import upgrade

from .test_fastpath import checkpoint, config


def _database(tmp_path: Path) -> Path:
    path = tmp_path / "lost.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        upgrade(conn)
    engine.dispose()
    return path


def _lost(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "checkpointer" and "connection lost" in r.getMessage()
    ]


@pytest.mark.parametrize("atomic", [True, False])
def test_sync_saver_replaces_a_closed_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, atomic: bool
) -> None:
    """`put` with a blob (a transaction on SQLite) or `get_tuple` (autocommit) on a
    pooled sqlite3 connection closed while idle: it succeeds, once retried."""
    engine = create_engine(
        f"sqlite:///{_database(tmp_path)}", pool_size=1, pool_reset_on_return=None
    )
    saver = SQLAlchemySaver(engine)
    try:
        saver.put(config("t"), checkpoint(0, {"n": "1"}), {}, {"n": "1"})
        assert saver._fast is not None
        assert saver._fast.runs_plans
        raw = engine.raw_connection()
        raw.driver_connection.close()  # type: ignore[union-attr]
        raw.close()  # back to the pool as it is (no reset on return)
        with caplog.at_level(logging.WARNING, logger="checkpointer"):
            if atomic:
                versions = {"n": "2", "blob": "1"}
                saver.put(config("t"), checkpoint(1, versions), {}, versions)  # type: ignore[arg-type]
            got = saver.get_tuple(config("t"))
        assert got is not None
        assert got.checkpoint["channel_values"].get("blob") == (
            b"\x00\xffbytes" if atomic else None
        )
        assert len(_lost(caplog)) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("atomic", [True, False])
async def test_async_saver_replaces_a_closed_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, atomic: bool
) -> None:
    """The same on aiosqlite, whose closed connection raised a bare ValueError."""
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{_database(tmp_path)}", pool_size=1, pool_reset_on_return=None
    )
    saver = AsyncSQLAlchemySaver(engine)
    try:
        await saver.aput(config("t"), checkpoint(0, {"n": "1"}), {}, {"n": "1"})
        assert saver._fast is not None
        async with engine.connect() as conn:
            raw: Any = await conn.get_raw_connection()
            await raw.driver_connection.close()
        with caplog.at_level(logging.WARNING, logger="checkpointer"):
            if atomic:
                versions = {"n": "2", "blob": "1"}
                await saver.aput(config("t"), checkpoint(1, versions), {}, versions)  # type: ignore[arg-type]
            got = await saver.aget_tuple(config("t"))
        assert got is not None
        assert got.checkpoint["channel_values"].get("blob") == (
            b"\x00\xffbytes" if atomic else None
        )
        assert len(_lost(caplog)) == 1
    finally:
        await engine.dispose()
