"""Round trips per call, counted with SQLAlchemy cursor events (which see every
statement sent, not transaction control): on PostgreSQL `aput`, `aput_writes` and
`aget_tuple` are one statement each; a page of `alist` costs a bounded number of
statements whatever its size."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpointer import AsyncSQLAlchemySaver


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[list[str]]:
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


def _checkpoint(step: int, versions: dict[str, Any]) -> Checkpoint:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=step))
    checkpoint["channel_values"] = {"messages": [f"m{step}", {"k": step}], "n": step}
    checkpoint["channel_versions"] = dict(versions)
    return checkpoint


async def _thread(saver: AsyncSQLAlchemySaver, steps: int) -> RunnableConfig:
    config: RunnableConfig = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex}"}}
    versions: dict[str, Any] = {}
    for step in range(steps):
        new = {ch: saver.get_next_version(versions.get(ch), None) for ch in ("messages", "n")}
        versions.update(new)
        config = await saver.aput(config, _checkpoint(step, versions), {"step": step}, new)
        await saver.aput_writes(config, [("messages", [step]), ("n", step)], f"task-{step}")
    return config


async def test_one_statement_per_call(engine: AsyncEngine, saver: AsyncSQLAlchemySaver) -> None:
    config = await _thread(saver, 2)
    postgres = engine.dialect.name == "postgresql"
    with counting(engine) as sent:
        latest = await saver.aget_tuple(
            {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
        )
    assert latest is not None
    assert len(latest.pending_writes) == 2
    assert len(sent) == 1, sent

    with counting(engine) as sent:
        assert await saver.aget_tuple(latest.config) is not None
    assert len(sent) == 1, sent

    versions = dict(latest.checkpoint["channel_versions"])
    new = {"messages": saver.get_next_version(versions["messages"], None)}
    versions.update(new)
    with counting(engine) as sent:
        config = await saver.aput(latest.config, _checkpoint(9, versions), {"step": 9}, new)
    # SQLite has no data-modifying CTE: the blobs are a second statement (one transaction).
    assert len(sent) == (1 if postgres else 2), sent

    writes = [("messages", [1]), ("n", 2), ("other", {"x": 3})]
    with counting(engine) as sent:
        await saver.aput_writes(config, writes, "task-x")
    # SQLite sends the batch as one executemany (one cursor event) in a transaction.
    assert len(sent) == 1, sent


async def test_list_page_costs_bounded_statements(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    small = await _thread(saver, 3)
    large = await _thread(saver, 30)
    counts = []
    for config, expected in ((small, 3), (large, 30)):
        thread = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
        with counting(engine) as sent:
            found = [t async for t in saver.alist(thread, limit=50)]
        assert len(found) == expected
        assert all(len(t.pending_writes) == 2 for t in found)
        counts.append(len(sent))
    assert counts == [1, 1], counts
    with counting(engine) as sent:
        found = [t async for t in saver.alist(None, filter={"step": 2})]
    assert len(found) == 2
    assert len(sent) == 1, sent
