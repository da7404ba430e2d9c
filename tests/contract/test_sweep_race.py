"""A sweep racing writers (issue 19): a thread that gets a checkpoint while a batch
sweeps it keeps that checkpoint and everything it references; a writer that comes
while the batch holds the thread waits for its commit and writes into the emptied
thread; two sweepers never do one thread twice nor wait for each other.

Each idle thread has one old checkpoint C1 (a blob `b`, a write); its writer adds C2,
which references C1's blob `b` (unchanged) and stores a new blob `c`, as a graph step
does. PostgreSQL, SQLite and MySQL/MariaDB; on PostgreSQL also a writer that takes no lock (the
official saver), whose checkpoint the batch's own statements must see."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.base.id import uuid6
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, codec
from checkpointer.errors import ConnectionLostError
from checkpointer.ids import id_floor
from checkpointer.plans import Step
from checkpointer.schema import checkpoints

from .. import mysql_server
from ..ops_support import blob_report, row_counts

IDLE_FOR = timedelta(days=30)


def _config(thread: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable = {"thread_id": thread, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _checkpoint(checkpoint_id: str, versions: dict[str, str], values: dict[str, Any]) -> Any:
    return Checkpoint(
        v=4, id=checkpoint_id, ts="", channel_values=values, channel_versions=versions,
        versions_seen={}, updated_channels=None,
    )  # fmt: skip


async def _idle_thread(saver: AsyncSQLAlchemySaver, thread: str) -> dict[str, str]:
    """C1, 40 days old, with blob `b` and one write; returns its versions."""
    moment = datetime.now(timezone.utc) - timedelta(days=40)
    old = id_floor(moment)[:19] + "8000-" + uuid4().hex[:12]
    versions = {"b": saver.get_next_version(None)}
    stored = await saver.aput(
        _config(thread), _checkpoint(old, versions, {"b": {"old": thread}}), {}, versions
    )
    await saver.aput_writes(stored, [("w", 1)], "task")
    return versions


async def _write_c2(saver: AsyncSQLAlchemySaver, thread: str, versions: dict[str, str]) -> str:
    """C2 (a new id): `b` unchanged (C1's blob), `c` new."""
    c2 = str(uuid6(clock_seq=random.getrandbits(14)))
    new = {"c": saver.get_next_version(None)}
    document = _checkpoint(c2, {**versions, **new}, {"b": {"old": thread}, "c": [c2]})
    await saver.aput(_config(thread), document, {"step": 2}, new)
    return c2


async def _whole(saver: AsyncSQLAlchemySaver, thread: str, checkpoint_id: str) -> bool:
    got = await saver.aget_tuple(_config(thread, checkpoint_id))
    return got is not None and set(got.checkpoint["channel_values"]) >= {"b"}


async def _drive(
    engine: AsyncEngine, plan: Any, pause_at: int, pause: Any
) -> tuple[int, list[Any]]:
    """Run one batch's steps in a transaction, calling `pause()` before step
    `pause_at` (or before the commit when there are no more steps)."""
    returned: list[Any] = []
    n = 0
    async with engine.connect() as conn:
        await conn.begin()
        rows: Any = None
        try:
            while True:
                step = plan.steps.send(rows)
                assert isinstance(step, Step)
                if n == pause_at:
                    await pause()
                result = await conn.execute(step.statement, step.params)
                rows = result.mappings().all() if step.fetch else None
                returned.append(rows)
                n += 1
        except StopIteration:
            pass
        if pause_at >= n:
            await pause()
        await conn.commit()
    return n, returned


TAKEN = {"mysql": 3}
"""The step of a batch after which it holds its threads (the writer waits): on MySQL
after `SET TRANSACTION`, the candidates and the lock of checkpoint_blobs (a writer's
first insert); elsewhere after the first statement."""


@pytest.mark.parametrize("pause_at", range(9))
async def test_a_writer_in_every_gap_of_a_batch(
    db_url: str, engine: AsyncEngine, pause_at: int
) -> None:
    """The writer starts in the gap before step `pause_at` of the batch (or before
    its commit). If its checkpoint was acknowledged before the batch committed, the
    thread is untouched: C1 and C2 read whole. Otherwise it waited for the batch:
    the thread was swept whole (C1, its write and blob `b` gone) and C2 came after.
    (MySQL's batch has 8 steps: `SET TRANSACTION`, the candidates, three locking
    reads, three deletes.)"""
    acknowledged, steps = await _writer_in_gap(db_url, engine, pause_at)
    if pause_at >= TAKEN.get(engine.dialect.name, 1) and pause_at < steps:
        # a writer that came after the batch took the thread waited for it
        assert not acknowledged


@pytest.mark.parametrize("pause_at", [3, 5, 7])
async def test_a_batch_locks_gaps_on_an_engine_at_read_committed(
    mysql_url: str, pause_at: int
) -> None:
    """MySQL: at READ COMMITTED InnoDB locks no gaps, so a batch that ran at the
    engine's level would let C2 in between its locking reads and its deletes, and
    delete it. The batch makes its own transaction REPEATABLE READ: the writer waits
    (before the checkpoints' lock, after it, before the last delete)."""
    engine = create_async_engine(mysql_url, isolation_level="READ COMMITTED")
    try:
        acknowledged, steps = await _writer_in_gap(mysql_url, engine, pause_at)
        assert steps == 8
        assert not acknowledged
    finally:
        await engine.dispose()


async def _writer_in_gap(db_url: str, engine: AsyncEngine, pause_at: int) -> tuple[bool, int]:
    """One idle thread, one batch driven with a writer adding C2 before step
    `pause_at`; checks the thread ended whole or swept whole; returns whether the
    writer was acknowledged before the batch committed, and the batch's steps."""
    sweeper = AsyncSQLAlchemySaver(engine)
    writer_engine = create_async_engine(db_url)
    writer = AsyncSQLAlchemySaver(writer_engine)
    try:
        thread = str(uuid4())
        versions = await _idle_thread(writer, thread)
        plan = next(iter(sweeper.plans.sweep(idle_for=IDLE_FOR, limit=1)))
        write: asyncio.Task[str] | None = None
        acknowledged_before_commit = False

        async def pause() -> None:
            nonlocal write
            write = asyncio.create_task(_write_c2(writer, thread, versions))
            done, _ = await asyncio.wait({write}, timeout=0.4)
            nonlocal acknowledged_before_commit
            acknowledged_before_commit = bool(done)

        steps, _ = await _drive(engine, plan, pause_at, pause)
        assert write is not None
        acknowledged_before_commit = acknowledged_before_commit and write.done()
        c2 = await asyncio.wait_for(write, 30)
        counts = await row_counts(engine, thread)
        if acknowledged_before_commit:
            assert counts["checkpoints"] == 2, (pause_at, steps, counts)
            assert await _whole(writer, thread, c2)
            assert await blob_report(engine, thread) == {"orphaned": set(), "missing": set()}
            assert counts["checkpoint_writes"] == 1
        else:
            # serialized after the batch: the batch removed the whole idle thread
            assert counts == {"checkpoints": 1, "checkpoint_writes": 0, "checkpoint_blobs": 1}
        return acknowledged_before_commit, steps
    finally:
        await writer_engine.dispose()


async def test_a_writer_without_the_lock_is_seen_by_the_delete(pg_url: str) -> None:
    """PostgreSQL: the official saver takes no thread lock, so its checkpoint may
    commit after the batch chose the thread; the delete statement checks idleness
    again and leaves the thread whole."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    engine = create_async_engine(pg_url)
    dsn = pg_url.replace("postgresql+asyncpg", "postgresql")
    try:
        ours = AsyncSQLAlchemySaver(engine)
        thread = str(uuid4())
        versions = await _idle_thread(ours, thread)
        plan = next(iter(ours.plans.sweep(idle_for=IDLE_FOR, limit=1)))
        async with AsyncPostgresSaver.from_conn_string(dsn) as official:
            official.serde = ours.serde

            async def pause() -> None:
                c2 = str(uuid6(clock_seq=1))
                new = {"c": ours.get_next_version(None)}
                document = _checkpoint(c2, {**versions, **new}, {"b": {"o": 1}, "c": [c2]})
                await official.aput(_config(thread), document, {}, new)

            _, returned = await _drive(engine, plan, 1, pause)
        assert returned[0]
        assert returned[0][0]["locked"] is True  # the batch chose it
        assert returned[1][0]["threads"] == 0  # and left it: no longer idle
        assert (await row_counts(engine, thread))["checkpoints"] == 2
        assert await blob_report(engine, thread) == {"orphaned": set(), "missing": set()}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("rounds", [5])
async def test_writers_racing_two_sweepers(db_url: str, rounds: int) -> None:
    """Many times over: 40 idle threads, 8 writers adding C2 to random ones at random
    moments while two sweepers (two engines, batches of 7) run. Every thread ends
    either untouched (C1 and C2 whole, nothing missing) or swept whole before its C2
    (C1 with its write and blob gone, C2 alone); the reports count each swept thread
    exactly once; nobody waits past the deadline."""
    from checkpointer import plans

    engines = [create_async_engine(db_url) for _ in range(3)]
    sweepers = [AsyncSQLAlchemySaver(e) for e in engines[:2]]
    writer = AsyncSQLAlchemySaver(engines[2])
    original = plans.SWEEP_BATCH
    plans.SWEEP_BATCH = 7
    rng = random.Random(19)
    try:
        for _ in range(rounds):
            threads = [str(uuid4()) for _ in range(40)]
            versions = {t: await _idle_thread(writer, t) for t in threads}
            targets = rng.sample(threads, 24)

            async def write(chunk: list[str], versions: dict[str, Any]) -> dict[str, str]:
                out = {}
                for thread in chunk:
                    await asyncio.sleep(rng.random() * 0.02)
                    out[thread] = await _write_c2(writer, thread, versions[thread])
                return out

            async def sweep(saver: AsyncSQLAlchemySaver) -> int:
                await asyncio.sleep(rng.random() * 0.03)
                return (await saver.asweep(idle_for=IDLE_FOR)).threads

            results = await asyncio.wait_for(
                asyncio.gather(
                    *(write(targets[i::8], versions) for i in range(8)),
                    *(sweep(s) for s in sweepers),
                ),
                60,
            )
            written: dict[str, str] = {}
            for part in results[:8]:
                written.update(part)
            swept_by_reports = sum(results[8:])
            swept = 0
            for thread in threads:
                counts = await row_counts(engines[0], thread)
                if thread not in written:
                    assert counts["checkpoints"] == 0, counts  # idle all along: swept
                    swept += 1
                elif counts["checkpoints"] == 2:
                    assert await _whole(writer, thread, written[thread])
                    report = await blob_report(engines[0], thread)
                    assert report == {"orphaned": set(), "missing": set()}
                else:
                    assert counts == {
                        "checkpoints": 1, "checkpoint_writes": 0, "checkpoint_blobs": 1,
                    }, counts  # fmt: skip
                    swept += 1
            assert swept_by_reports == swept
    finally:
        plans.SWEEP_BATCH = original
        for e in engines:
            await e.dispose()


@pytest.mark.parametrize("writer_commits", [False, True])
async def test_a_replayed_mysql_batch_stays_correct(
    mysql_url: str, writer_commits: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """MySQL: a batch waiting in its locking read for a writer's uncommitted C2 loses
    its connection (KILL, as a failover would; a deadlock's victim is replayed the
    same way). The batch is replayed whole on a fresh connection (at once), reads the
    same candidates and waits for the writer again: if the writer rolls back, the
    replay sweeps the thread; if it commits, the replay's locking read sees C2 and
    leaves the thread whole (or, had the replay started after that commit, its
    candidates differ and the sweep fails with the lost connection's error: the
    thread is whole either way)."""
    engine = create_async_engine(mysql_url)
    writer_engine = create_async_engine(mysql_url)
    try:
        saver = AsyncSQLAlchemySaver(engine)
        thread = str(uuid4())
        versions = await _idle_thread(saver, thread)
        c2 = str(uuid6(clock_seq=3))
        document = _checkpoint(c2, versions, {"b": {"old": thread}})
        async with writer_engine.connect() as writer:
            await writer.begin()
            row, _ = codec.encode_checkpoint(saver.serde, _config(thread), document, {}, {})
            # C2, uncommitted: the batch's locking read of checkpoints waits for it
            await writer.execute(checkpoints.insert().values(**row, type=None))
            sweep = asyncio.create_task(saver.asweep(idle_for=IDLE_FOR))
            admin = mysql_server._admin()
            waiting = None
            for _ in range(100):
                await asyncio.sleep(0.05)
                with admin.connect() as conn:
                    waiting = conn.scalar(
                        text(
                            "SELECT id FROM information_schema.processlist "
                            "WHERE db = :db AND info LIKE 'SELECT checkpoints.thread_id%FOR UPDATE'"
                        ),
                        {"db": mysql_url.rsplit("/", 1)[1]},
                    )
                if waiting is not None:
                    break
            assert waiting is not None, "the batch never waited for the writer"
            with admin.connect() as conn:
                conn.execute(text(f"KILL CONNECTION {int(waiting)}"))
            await asyncio.sleep(0.1)
            if writer_commits:
                await writer.commit()
            else:
                await writer.rollback()
        if writer_commits:
            try:
                report = await asyncio.wait_for(sweep, 30)
                assert report.threads == 0
            except ConnectionLostError:
                pass  # the replay came after the commit: its candidates differed
            counts = await row_counts(engine, thread)
            assert counts == {"checkpoints": 2, "checkpoint_writes": 1, "checkpoint_blobs": 1}
            assert await _whole(saver, thread, c2)
        else:
            report = await asyncio.wait_for(sweep, 30)
            assert (report.threads, report.checkpoints, report.writes) == (1, 1, 1)
            counts = await row_counts(engine, thread)
            assert counts == {"checkpoints": 0, "checkpoint_writes": 0, "checkpoint_blobs": 0}
        assert "connection lost" in caplog.text  # the batch was replayed
    finally:
        await writer_engine.dispose()
        await engine.dispose()
