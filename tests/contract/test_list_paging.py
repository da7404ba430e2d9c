"""`list` reads in pages of at most `LIST_CHUNK` checkpoints (keyset pagination): every
checkpoint comes back once, newest first, across page boundaries, with and without a
metadata filter and a limit; on PostgreSQL no page's estimated cost reaches the JIT
threshold (a page of 1,000 did, and compiled itself for 350 ms on every call)."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver
from checkpointer.statements import LIST_CHUNK

from ..ops_support import explain, statements_sent

TOTAL = 2 * LIST_CHUNK + 37


async def write_two_threads(saver: AsyncSQLAlchemySaver) -> list[str]:
    written: list[str] = []
    for thread in ("a", "b"):
        parent: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        for step in range(TOTAL // 2 + (1 if thread == "a" else 0)):
            checkpoint = empty_checkpoint()
            checkpoint["id"] = str(uuid6(clock_seq=step))
            versions = {ch: saver.get_next_version(None) for ch in ("n", "messages")}
            checkpoint["channel_values"] = {"n": step, "messages": [f"m{step}", {"k": step}]}
            checkpoint["channel_versions"] = versions
            metadata: Any = {"step": step, "parity": step % 2, "thread": thread}
            parent = await saver.aput(parent, checkpoint, metadata, versions)
            await saver.aput_writes(parent, [("a", step), ("b", [step]), ("c", None)], "t")
            written.append(checkpoint["id"])
    assert len(written) == TOTAL
    return written


async def test_unlimited_list_crosses_chunks(saver: AsyncSQLAlchemySaver) -> None:
    written = await write_two_threads(saver)

    everything = [c.checkpoint["id"] async for c in saver.alist(None)]
    assert everything == sorted(written, reverse=True)

    odd = [c async for c in saver.alist(None, filter={"parity": 1})]
    assert len(odd) == sum(1 for _ in range(TOTAL // 2 + 1) if _ % 2) + sum(
        1 for _ in range(TOTAL // 2) if _ % 2
    )
    assert [c.checkpoint["id"] for c in odd] == sorted(
        (c.checkpoint["id"] for c in odd), reverse=True
    )
    assert {c.metadata["parity"] for c in odd} == {1}  # type: ignore[typeddict-item]

    one_thread = [c async for c in saver.alist({"configurable": {"thread_id": "a"}})]
    assert len(one_thread) == TOTAL // 2 + 1
    assert len({c.checkpoint["id"] for c in one_thread}) == len(one_thread)


async def test_limits_across_pages(saver: AsyncSQLAlchemySaver) -> None:
    newest_first = sorted(await write_two_threads(saver), reverse=True)
    sizes = [1, LIST_CHUNK - 1, LIST_CHUNK, LIST_CHUNK + 1, 2 * LIST_CHUNK, TOTAL, TOTAL + 9]
    for limit in sizes:
        got = [c.checkpoint["id"] async for c in saver.alist(None, limit=limit)]
        assert got == newest_first[:limit], limit
        writes = [len(c.pending_writes or ()) async for c in saver.alist(None, limit=limit)]
        assert set(writes) == {3}, limit
    odd = [c.checkpoint["id"] async for c in saver.alist(None, filter={"parity": 1})]
    for limit in (LIST_CHUNK - 1, LIST_CHUNK + 1, len(odd)):
        limited = [
            c.checkpoint["id"] async for c in saver.alist(None, filter={"parity": 1}, limit=limit)
        ]
        assert limited == odd[:limit], limit


async def test_no_page_is_costed_above_the_jit_threshold(pg_url: str) -> None:
    """Every statement `list` sends, explained with its parameters after ANALYZE, is
    estimated below PostgreSQL's default `jit_above_cost` (100,000)."""
    engine = create_async_engine(pg_url)
    try:
        saver = AsyncSQLAlchemySaver(engine)
        await write_two_threads(saver)
        async with engine.connect() as conn:
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
                await conn.exec_driver_sql(f"ANALYZE {table}")
        with statements_sent(engine.sync_engine) as sent:
            calls = [
                saver.alist(None),
                saver.alist({"configurable": {"thread_id": "a"}}),
                saver.alist(None, limit=TOTAL),
                saver.alist(None, filter={"parity": 1}),
            ]
            for call in calls:
                assert [c async for c in call]
        assert len(sent) >= 10
        for statement, params in sent:
            cost = (await explain(engine, statement, params))["Total Cost"]
            assert cost < 100_000, (cost, statement[:200])
    finally:
        await engine.dispose()
