"""`list` without a limit reads in chunks of `LIST_CHUNK` checkpoints (keyset pages, the
chunk size a constant in the SQL): every checkpoint comes back once, newest first,
across chunk boundaries, with and without a metadata filter."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpointer import AsyncSQLAlchemySaver
from checkpointer.statements import LIST_CHUNK

TOTAL = 2 * LIST_CHUNK + 37


async def test_unlimited_list_crosses_chunks(saver: AsyncSQLAlchemySaver) -> None:
    written: list[str] = []
    for thread in ("a", "b"):
        parent: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        for step in range(TOTAL // 2 + (1 if thread == "a" else 0)):
            checkpoint = empty_checkpoint()
            checkpoint["id"] = str(uuid6(clock_seq=step))
            checkpoint["channel_values"] = {"n": step}
            checkpoint["channel_versions"] = {"n": saver.get_next_version(None)}
            metadata: Any = {"step": step, "parity": step % 2, "thread": thread}
            parent = await saver.aput(parent, checkpoint, metadata, {})
            written.append(checkpoint["id"])
    assert len(written) == TOTAL

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
