"""Helpers shared by the operation tests: storage invariants read straight from the
tables (Core selects), and a statement counter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpointer import schema

cp, blobs, writes = schema.checkpoints, schema.checkpoint_blobs, schema.checkpoint_writes


def _doc(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def _invariants(cp_rows: Any, blob_rows: Any) -> dict[str, set[tuple[str, ...]]]:
    referenced: set[tuple[str, ...]] = set()
    needed: set[tuple[str, ...]] = set()
    for r in cp_rows:
        document = _doc(r.checkpoint)
        inline = document.get("channel_values") or {}
        for channel, version in (document.get("channel_versions") or {}).items():
            key = (r.thread_id, r.checkpoint_ns, channel, str(version))
            referenced.add(key)
            if channel not in inline or inline[channel] is True:
                needed.add(key)
    stored = {(b.thread_id, b.checkpoint_ns, b.channel, b.version) for b in blob_rows}
    return {"orphaned": stored - referenced, "missing": needed - stored}


async def blob_report(engine: AsyncEngine, thread_id: str) -> dict[str, set[tuple[str, ...]]]:
    """Blobs of the thread no checkpoint references (`orphaned`), and versions a
    checkpoint references without a value inline that have no blob (`missing`)."""
    async with engine.connect() as conn:
        cps = (await conn.execute(select(cp).where(cp.c.thread_id == thread_id))).all()
        bs = (await conn.execute(select(blobs).where(blobs.c.thread_id == thread_id))).all()
    return _invariants(cps, bs)


def sync_blob_report(engine: Engine, thread_id: str) -> dict[str, set[tuple[str, ...]]]:
    with engine.connect() as conn:
        cps = conn.execute(select(cp).where(cp.c.thread_id == thread_id)).all()
        bs = conn.execute(select(blobs).where(blobs.c.thread_id == thread_id)).all()
    return _invariants(cps, bs)


async def row_counts(engine: AsyncEngine, thread_id: str) -> dict[str, int]:
    out = {}
    async with engine.connect() as conn:
        for t in (cp, writes, blobs):
            rows = await conn.execute(select(t.c.thread_id).where(t.c.thread_id == thread_id))
            out[t.name] = len(rows.all())
    return out


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent to the database while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement sent to the database while the block runs, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        sent.append((statement, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def explain(
    engine: AsyncEngine, statement: str, params: Any, *, analyze: bool = False
) -> dict[str, Any]:
    """PostgreSQL's plan (the top node, as JSON) of a statement as asyncpg sent it."""
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
        plan = await driver.fetchval(f"EXPLAIN ({options}) {statement}", *params)
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return plan[0]["Plan"]  # type: ignore[no-any-return]
