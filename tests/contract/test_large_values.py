"""Large channel values round-trip intact, and reads fetch blobs as rows of their own
(never aggregated into one value, which PostgreSQL caps at 1 GB and which would copy
every blob of a checkpoint into one buffer)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpointer import AsyncSQLAlchemySaver
from checkpointer.errors import ValueTooLargeError
from checkpointer.schema import checkpoint_blobs
from checkpointer.statements import for_dialect

MB = 2**20


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


@pytest.mark.slow
async def test_100_mb_channel_value_round_trips(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    """A 100 MB bytes value (incompressible) is stored by `aput` and read back byte for
    byte by `aget_tuple`, next to a small value, on each dialect."""
    big = random.Random(7).randbytes(100 * MB)
    digest = hashlib.sha256(big).hexdigest()
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"big": big, "small": ["x"]}
    checkpoint["channel_versions"] = {"big": "1", "small": "1"}
    if engine.dialect.name in ("mysql", "mariadb"):
        # Over the test server's max_allowed_packet (64 MB): refused, naming the setting,
        # before anything is sent (tests/contract/test_mysql.py has the 20 MB round trip).
        with pytest.raises(ValueTooLargeError, match="max_allowed_packet"):
            await saver.aput(_config("big"), checkpoint, {}, {"big": "1", "small": "1"})
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(checkpoint_blobs)) == 0
        return
    stored = await saver.aput(_config("big"), checkpoint, {}, {"big": "1", "small": "1"})
    del checkpoint
    async with engine.connect() as conn:
        size = await conn.scalar(
            select(func.length(checkpoint_blobs.c.blob)).where(checkpoint_blobs.c.channel == "big")
        )
    assert size is not None
    assert size >= 100 * MB
    got = await saver.aget_tuple(stored)
    assert got is not None
    value = got.checkpoint["channel_values"]["big"]
    assert isinstance(value, bytes)
    assert len(value) == 100 * MB
    assert hashlib.sha256(value).hexdigest() == digest
    assert got.checkpoint["channel_values"]["small"] == ["x"]
    listed = [t async for t in saver.alist(_config("big"))]
    assert len(listed) == 1
    assert hashlib.sha256(listed[0].checkpoint["channel_values"]["big"]).hexdigest() == digest


async def test_large_pending_write_round_trips(saver: AsyncSQLAlchemySaver) -> None:
    """A 20 MB pending write (the same path as a node returning a big value)."""
    big = random.Random(8).randbytes(20 * MB)
    stored = await saver.aput(_config("w"), empty_checkpoint(), {}, {})
    await saver.aput_writes(stored, [("big", big), ("small", 1)], "task")
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert [(t, c) for t, c, _ in got.pending_writes] == [("task", "big"), ("task", "small")]
    assert got.pending_writes[0][2] == big


async def test_many_blobs_come_back_as_rows(saver: AsyncSQLAlchemySaver) -> None:
    """Forty 1 MB channels of one checkpoint: all read back, each its own value."""
    values = {f"c{i}": bytes([i]) * MB for i in range(40)}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = dict.fromkeys(values, "1")
    stored = await saver.aput(_config("many"), checkpoint, {}, dict.fromkeys(values, "1"))
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert got.checkpoint["channel_values"] == values


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite", "mysql"])
def test_reads_select_blobs_as_rows_not_aggregates(dialect: str) -> None:
    """The read statements return one row per blob (a `UNION ALL` of tagged rows), and
    no aggregate folds blobs into one value."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    statements = for_dialect(dialect)
    compile_for = {"postgresql": postgresql, "sqlite": sqlite, "mysql": mysql}[dialect].dialect()
    for statement in (statements.get_latest, statements.get_by_id):
        sql = str(statement.compile(dialect=compile_for)).lower()
        assert "union all" in sql
        for aggregate in ("array_agg", "json_agg", "jsonb_agg", "string_agg", "group_concat"):
            assert aggregate not in sql, f"{aggregate} in a read statement"
