"""Cancellation is cheap and quiet (issue 16, item 3): 500 calls cancelled at random
points keep their connections (at most 50 new ones), print nothing, leave the pool with
nothing checked out and nothing half-written. The shared server is fine here: nothing
is restarted."""

from __future__ import annotations

import asyncio
import gc
import random
import uuid
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver

from .test_fastpath import checkpoint, config

CANCELLATIONS = 500


async def test_random_cancellations_open_few_connections_and_print_nothing(
    pg_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    engine = create_async_engine(pg_url, pool_size=4, max_overflow=0)
    made: list[Any] = []
    event.listen(engine.sync_engine, "connect", lambda *_: made.append(1))
    saver = AsyncSQLAlchemySaver(engine)
    rng = random.Random(16)
    acknowledged: dict[str, str] = {}
    try:
        threads = [f"cancel-{uuid.uuid4().hex[:8]}-{n}" for n in range(4)]
        versions: dict[str, dict[str, str]] = {t: {} for t in threads}
        for thread in threads:  # every thread has a checkpoint to read and write under
            new = {"n": saver.get_next_version(None)}
            versions[thread].update(new)
            made_cp = checkpoint(0, versions[thread])
            await saver.aput(config(thread), made_cp, {"step": 0}, new)  # type: ignore[typeddict-item]
            acknowledged[thread] = made_cp["id"]
        before = len(made)
        cancelled = 0
        step = 1
        pending: tuple[str, dict[str, str]] = ("", {})
        while cancelled < CANCELLATIONS:
            thread = rng.choice(threads)
            kind = rng.choice(("aput", "aput_writes", "aget_tuple"))
            if kind == "aput":
                # with blobs (a transaction) or without (autocommit), at random
                channels = ("n", "messages") if rng.random() < 0.5 else ()
                new = {ch: saver.get_next_version(versions[thread].get(ch)) for ch in channels}
                made_cp = checkpoint(step, {**versions[thread], **new})
                pending = (thread, new)
                call: Any = saver.aput(config(thread), made_cp, {"step": step}, new)  # type: ignore[typeddict-item]
            elif kind == "aput_writes":
                writes = [("a", step)] if rng.random() < 0.5 else [("a", step), ("b", step)]
                call = saver.aput_writes(config(thread, acknowledged[thread]), writes, "t")
            else:
                call = saver.aget_tuple(config(thread))
            step += 1
            task = asyncio.ensure_future(call)
            await asyncio.sleep(rng.uniform(0, 0.004))
            if task.done():
                if kind == "aput":
                    acknowledged[thread] = made_cp["id"]
                    versions[thread].update(pending[1])
                continue
            task.cancel()
            try:
                await task
                if kind == "aput":
                    acknowledged[thread] = made_cp["id"]
                    versions[thread].update(pending[1])
            except asyncio.CancelledError:
                cancelled += 1
        new_connections = len(made) - before
        # nothing half-written: every checkpoint stored reads back whole
        for thread in threads:
            async for item in saver.alist(config(thread)):
                stored = item.checkpoint
                assert set(stored["channel_values"]) == set(stored["channel_versions"])
            assert await saver.aget_tuple(config(thread, acknowledged[thread])) is not None
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert new_connections <= CANCELLATIONS // 10, new_connections
    finally:
        await engine.dispose()
    gc.collect()
    await asyncio.sleep(0.1)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "Future exception was never retrieved" not in captured.out
    with capfd.disabled():
        print(f"\n{CANCELLATIONS} cancellations: {new_connections} new connections")
