"""The thread list and count (`alist_threads`, `acount_threads`) on PostgreSQL and
SQLite: summaries, order, keyset paging while threads are written, filters with
`alist`'s semantics, time bounds from the UUIDv6 ids."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpointer import AsyncSQLAlchemySaver, ThreadPage

from ..graphs import interrupting_graph


async def _put(
    saver: AsyncSQLAlchemySaver,
    thread: str,
    metadata: dict[str, Any],
    ns: str = "",
    checkpoint_id: str | None = None,
) -> RunnableConfig:
    checkpoint = Checkpoint(
        v=4,
        id=checkpoint_id or str(uuid6()),
        ts=datetime.now(timezone.utc).isoformat(),
        channel_values={"n": 1},
        channel_versions={},
        versions_seen={},
        updated_channels=None,
    )
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
    return await saver.aput(config, checkpoint, metadata, {})  # type: ignore[arg-type]


async def _all(saver: AsyncSQLAlchemySaver, **kwargs: Any) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        page = await saver.alist_threads(cursor=cursor, **kwargs)
        out += [t.thread_id for t in page.threads]
        if page.cursor is None:
            return out
        cursor = page.cursor


async def test_summaries_order_and_pages(saver: AsyncSQLAlchemySaver) -> None:
    """Most recently updated first; times from the first and latest root ids; the
    count over every namespace; the latest root metadata; pages by cursor."""
    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    threads = [f"t{i}-{uuid4()}" for i in range(7)]
    for i, thread in enumerate(threads):
        await _put(saver, thread, {"user": "a" if i % 2 else "b", "step": 0})
        await _put(saver, thread, {"user": "a" if i % 2 else "b", "step": 1})
    await _put(saver, threads[0], {"user": "b", "step": 2, "tags": ["x", "y"]})
    await _put(saver, threads[0], {"ignored": True}, ns="sub:1")
    page = await saver.alist_threads(limit=3)
    assert isinstance(page, ThreadPage)
    assert [t.thread_id for t in page.threads] == [threads[0], threads[6], threads[5]]
    top = page.threads[0]
    assert top.checkpoint_count == 4
    assert top.metadata["step"] == 2
    assert top.metadata["tags"] == ["x", "y"]
    assert top.created_at is not None
    assert top.updated_at is not None
    assert started < top.created_at < top.updated_at <= datetime.now(timezone.utc)
    assert page.threads[1].checkpoint_count == 2
    assert page.cursor is not None
    assert await _all(saver, limit=3) == [threads[0], *reversed(threads[1:])]
    assert await _all(saver, limit=50) == [threads[0], *reversed(threads[1:])]
    assert await saver.acount_threads() == 7
    # as_dict is the CLI's JSON shape
    shape = top.as_dict()
    assert set(shape) == {
        "thread_id", "created_at", "updated_at", "checkpoint_count", "checkpoint_id", "metadata"
    }  # fmt: skip
    assert shape["updated_at"] == top.updated_at.isoformat()


async def test_filter_has_alist_semantics(saver: AsyncSQLAlchemySaver) -> None:
    """`filter` is containment on the latest root checkpoint's metadata, as `alist`'s:
    an older checkpoint's metadata does not match; nested objects and arrays are
    contained."""
    a, b, c = (str(uuid4()) for _ in range(3))
    await _put(saver, a, {"user": "u1", "labels": {"team": "x", "env": "prod"}, "n": [1, 2]})
    await _put(saver, b, {"user": "u1"})
    await _put(saver, b, {"user": "u2"})
    await _put(saver, c, {"user": "u2", "n": 1.0})
    assert await _all(saver, filter={"user": "u1"}) == [a]
    assert await _all(saver, filter={"user": "u2"}) == [c, b]
    assert await _all(saver, filter={"labels": {"team": "x"}}) == [a]
    assert await _all(saver, filter={"n": [2]}) == [a]
    assert await _all(saver, filter={"n": 1}) == [c]
    assert await _all(saver, filter={"user": "nobody"}) == []
    assert await saver.acount_threads(filter={"user": "u2"}) == 2
    assert await saver.acount_threads(filter={"labels": {"env": "prod"}}) == 1
    # The same threads as alist's latest root checkpoints with the same filter.
    latest = {
        t.config["configurable"]["thread_id"]
        async for t in saver.alist(None, filter={"user": "u2"})
        if t.config["configurable"]["checkpoint_ns"] == ""
    }
    assert latest >= set(await _all(saver, filter={"user": "u2"}))
    with pytest.raises(TypeError, match="filter must be a mapping"):
        await saver.alist_threads(filter="user=u1")  # type: ignore[arg-type]


async def test_time_bounds(saver: AsyncSQLAlchemySaver) -> None:
    """`updated_before` / `updated_after` compare the latest root checkpoint's time,
    read from its UUIDv6 id."""
    old, new = str(uuid4()), str(uuid4())
    ago = datetime.now(timezone.utc) - timedelta(days=40)
    await _put(saver, old, {}, checkpoint_id=_id_at(ago))
    await _put(saver, new, {})
    month = datetime.now(timezone.utc) - timedelta(days=30)
    assert await _all(saver, updated_before=month) == [old]
    assert await _all(saver, updated_after=month) == [new]
    assert await saver.acount_threads(updated_before=month) == 1
    page = await saver.alist_threads(updated_before=month)
    assert page.threads[0].updated_at is not None
    assert abs(page.threads[0].updated_at - ago) < timedelta(milliseconds=1)


def _id_at(moment: datetime) -> str:
    """A UUIDv6 id of `moment` (as LangGraph's would have been then)."""
    from checkpointer.ids import id_floor

    return id_floor(moment)[:19] + "8abc-123456789abc"


async def test_pages_while_threads_are_written(saver: AsyncSQLAlchemySaver) -> None:
    """A thread not written while pages are read appears exactly once; a thread
    written meanwhile moves to the top and may appear again."""
    threads = [str(uuid4()) for _ in range(12)]
    for thread in threads:
        await _put(saver, thread, {})
    seen: list[str] = []
    page = await saver.alist_threads(limit=4)
    seen += [t.thread_id for t in page.threads]
    await _put(saver, threads[0], {})  # not read yet: moves to the top, before the cursor
    await _put(saver, threads[-1], {})  # already read
    fresh = str(uuid4())
    await _put(saver, fresh, {})
    while page.cursor is not None:
        page = await saver.alist_threads(limit=4, cursor=page.cursor)
        seen += [t.thread_id for t in page.threads]
    untouched = threads[1:-1]
    for thread in untouched:
        assert seen.count(thread) == 1
    assert fresh not in seen
    assert await saver.acount_threads() == 13


async def test_graph_threads_and_bad_input(saver: AsyncSQLAlchemySaver) -> None:
    graph = interrupting_graph(saver)
    thread = str(uuid4())
    await graph.ainvoke({"items": ["a"]}, {"configurable": {"thread_id": thread}})
    page = await saver.alist_threads()
    (summary,) = page.threads
    assert summary.thread_id == thread
    state = await graph.aget_state({"configurable": {"thread_id": thread}})
    assert summary.checkpoint_id == state.config["configurable"]["checkpoint_id"]
    assert summary.metadata["step"] == state.metadata["step"]  # type: ignore[index]
    assert summary.checkpoint_count > len([t async for t in saver.alist(
        {"configurable": {"thread_id": thread, "checkpoint_ns": ""}})])  # fmt: skip
    assert page.cursor is None
    with pytest.raises(ValueError, match="not a thread list cursor"):
        await saver.alist_threads(cursor="garbage!")
    with pytest.raises(ValueError, match="limit must be a positive"):
        await saver.alist_threads(limit=0)


def test_sync_saver_threads(tmp_path: Any) -> None:
    from checkpointer import SQLAlchemySaver

    with SQLAlchemySaver.from_conn_string(f"sqlite:///{tmp_path}/s.db") as saver:
        saver.setup()
        for i in range(3):
            checkpoint = Checkpoint(
                v=4, id=str(uuid6()), ts="", channel_values={}, channel_versions={},
                versions_seen={}, updated_channels=None,
            )  # fmt: skip
            saver.put({"configurable": {"thread_id": f"s{i}", "checkpoint_ns": ""}},
                      checkpoint, {"i": i}, {})  # type: ignore[typeddict-unknown-key]  # fmt: skip
        page = saver.list_threads(limit=2)
        assert [t.thread_id for t in page.threads] == ["s2", "s1"]
        assert saver.count_threads(filter={"i": 0}) == 1
        second = saver.list_threads(limit=2, cursor=page.cursor)
        assert [t.thread_id for t in second.threads] == ["s0"]
        assert second.cursor is None


def test_thread_page_is_served_by_the_index(pg_url: str) -> None:
    """On PostgreSQL the thread page and a sweep batch walk root checkpoints through
    the 0004 partial index: the real statements, under EXPLAIN. (Fails without the
    index: `upgrade(conn, "0003")` in the template instead of head.)"""
    from sqlalchemy import create_engine, event, make_url

    from checkpointer import schema
    from checkpointer.statements import ThreadShape, for_dialect

    engine = create_engine(make_url(pg_url).set(drivername="postgresql+psycopg"))
    statements = for_dialect("postgresql")

    def explain(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> Any:
        return "EXPLAIN " + statement, params

    try:
        with engine.connect() as conn:
            rows = [
                {"thread_id": f"t{i % 600}", "checkpoint_ns": "" if i % 3 else "sub",
                 "checkpoint_id": f"{i:08}", "checkpoint": {}, "metadata": {}}
                for i in range(6000)
            ]  # fmt: skip
            conn.execute(schema.checkpoints.insert(), rows)
            conn.exec_driver_sql("ANALYZE checkpoints")
            event.listen(engine, "before_cursor_execute", explain, retval=True)
            page, _ = statements.thread_page(ThreadShape(after_key=True), None)
            plan = conn.execute(page, {"after_id": "00003000", "after_thread": "t0", "limit": 50})
            assert "checkpoints_root_id_idx" in "\n".join(r[0] for r in plan)
            batch, _ = statements.sweep_batch(False, None)
            plan = conn.execute(batch, {"cutoff": "00005000", "limit": 100})
            assert "checkpoints_root_id_idx" in "\n".join(r[0] for r in plan)
    finally:
        engine.dispose()
