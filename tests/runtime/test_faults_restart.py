"""Lost connections ride through (issue 16, items 1, 2 and 9): a server restarted mid-run,
every backend terminated over and over, idle pooled connections killed. Each runs on a
PostgreSQL of the test's own (`tests/private_pg.py`), never the shared one.

A "turn" is what a graph step asks of the saver: `aput` (a transaction: the checkpoint
and its blobs), `aput_writes`, `aget_tuple`. Each turn is asserted to be in flight when
the server stops; afterwards every acknowledged checkpoint is read back whole."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver, Retry, SQLAlchemySaver
from checkpointer.migrations import upgrade
from checkpointer.schema import checkpoints

from ..private_pg import PrivatePostgres
from .test_fastpath import checkpoint, config

DRIVERS = ["asyncpg", "psycopg"]
THREADS, TURNS, CONCURRENCY = 12, 8, 8


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_db(private_pg: PrivatePostgres) -> str:
    name = private_pg.create_database(f"cp_{uuid.uuid4().hex[:12]}")
    engine = create_engine(private_pg.database_url(name, "psycopg"))
    with engine.connect() as conn:
        upgrade(conn)
    engine.dispose()
    return name


class Workload:
    """Threads of turns at a bounded concurrency, counting failures, the slowest call
    and how many turns are in flight."""

    def __init__(self, saver: AsyncSQLAlchemySaver, run: str, turns: int = TURNS) -> None:
        self.saver = saver
        self.turns = turns
        self.run = run
        self.failures: list[BaseException] = []
        self.acknowledged: dict[str, str] = {}
        self.in_flight = 0
        self.slowest = 0.0

    async def _timed(self, call: Any) -> Any:
        started = time.monotonic()
        try:
            return await call
        finally:
            self.slowest = max(self.slowest, time.monotonic() - started)

    async def thread(self, n: int, gate: asyncio.Semaphore) -> None:
        saver, thread = self.saver, f"{self.run}-{n}"
        parent, versions = config(thread), {}
        for step in range(self.turns):
            async with gate:
                self.in_flight += 1
                try:
                    new = {
                        ch: saver.get_next_version(versions.get(ch))
                        for ch in ("messages", "n", "blob", "text")
                    }
                    versions.update(new)
                    made = checkpoint(step, versions)
                    parent = await self._timed(
                        saver.aput(parent, made, {"step": step}, new)  # type: ignore[typeddict-item]
                    )
                    self.acknowledged[thread] = made["id"]
                    await self._timed(saver.aput_writes(parent, [("a", step)], f"task-{step}"))
                    got = await self._timed(saver.aget_tuple(config(thread)))
                    assert got is not None
                    assert got.checkpoint["id"] == made["id"]
                except Exception as error:
                    self.failures.append(error)
                finally:
                    self.in_flight -= 1
                await asyncio.sleep(0.05)

    async def main(self) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)
        await asyncio.gather(*(self.thread(n, gate) for n in range(THREADS)))

    async def lost(self) -> list[str]:
        """Acknowledged checkpoints that do not read back whole."""
        missing = []
        for thread, checkpoint_id in self.acknowledged.items():
            got = await self.saver.aget_tuple(config(thread, checkpoint_id))
            if got is None or got.checkpoint["channel_values"].get("blob") != b"\x00\xffbytes":
                missing.append(thread)
        return missing


async def _when_in_flight(work: Workload, task: asyncio.Future[None] | None = None) -> None:
    while work.in_flight == 0:
        assert task is None or not task.done(), "the workload ended before the fault"
        await asyncio.sleep(0.005)


def _fault_summary(work: Workload) -> str:
    kinds = sorted({f"{type(e).__name__}: {e}"[:160] for e in work.failures})
    return f"{len(work.failures)} failed: {kinds}"


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_restart_mid_run_fails_no_call_and_loses_nothing(
    private_pg: PrivatePostgres,
    private_db: str,
    driver: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three runs, each with turns in flight when the server stops for 2 s (the
    default policy rides up to ~12 s): 0 failed, 0 lost, WARNINGs name the cause."""
    engine = create_async_engine(private_pg.database_url(private_db, driver), pool_size=8)
    saver = AsyncSQLAlchemySaver(engine)
    try:
        for run in range(3):
            work = Workload(saver, f"restart-{run}-{uuid.uuid4().hex[:6]}")
            with caplog.at_level(logging.WARNING, logger="checkpointer"):
                task = asyncio.ensure_future(work.main())
                await asyncio.sleep(0.2)
                await _when_in_flight(work, task)
                restart = asyncio.ensure_future(asyncio.to_thread(private_pg.restart, 2.0))
                assert work.in_flight > 0
                await restart
                await task
            assert work.failures == [], _fault_summary(work)
            assert await work.lost() == []
            assert len(work.acknowledged) == THREADS
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings
        assert all("connection lost" in w for w in warnings)
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


def _terminate_all(private_pg: PrivatePostgres, database: str) -> int:
    admin = create_engine(private_pg.admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
            )
    finally:
        admin.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
async def test_backends_terminated_six_times_fail_no_call_none_slow(
    private_pg: PrivatePostgres, private_db: str, driver: str
) -> None:
    engine = create_async_engine(private_pg.database_url(private_db, driver), pool_size=8)
    saver = AsyncSQLAlchemySaver(engine)
    try:
        for run in range(3):
            work = Workload(saver, f"kill-{run}-{uuid.uuid4().hex[:6]}", turns=40)
            task = asyncio.ensure_future(work.main())
            killed = 0
            for _ in range(6):
                await _when_in_flight(work, task)
                killed += await asyncio.to_thread(_terminate_all, private_pg, private_db)
                await asyncio.sleep(0.15)
            await task
            assert killed > 0
            assert work.failures == [], _fault_summary(work)
            assert work.slowest < 5.0
            assert await work.lost() == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
async def test_killed_idle_pooled_connections_fail_no_later_call(
    private_pg: PrivatePostgres, private_db: str, driver: str
) -> None:
    """5 idle pooled connections killed, then 8 calls in a row: none fails; and the
    pool is invalidated as a whole, so even with retry off only the first fails."""
    for policy, most in ((True, 0), (False, 1)):
        engine = create_async_engine(private_pg.database_url(private_db, driver), pool_size=5)
        saver = AsyncSQLAlchemySaver(engine, retry=policy)
        thread = f"idle-{uuid.uuid4().hex[:8]}"
        versions = {"n": "1"}
        try:
            await saver.aput(config(thread), checkpoint(0, versions), {}, {})  # type: ignore[typeddict-item]
            await asyncio.gather(*(saver.aget_tuple(config(thread)) for _ in range(5)))
            assert engine.sync_engine.pool.checkedin() == 5  # type: ignore[attr-defined]
            assert await asyncio.to_thread(_terminate_all, private_pg, private_db) == 5
            failed, messages = 0, []
            for _ in range(8):
                try:
                    assert await saver.aget_tuple(config(thread)) is not None
                except DBAPIError as error:
                    messages.append(str(error))
                    failed += 1
            assert failed <= most
            assert all("connection was lost" in m for m in messages)
        finally:
            await engine.dispose()


def test_the_sync_saver_rides_a_restart(private_pg: PrivatePostgres, private_db: str) -> None:
    """psycopg, sync, 4 threads writing while the server restarts: 0 failed, 0 lost."""
    engine = create_engine(private_pg.database_url(private_db, "psycopg"), pool_size=4)
    saver = SQLAlchemySaver(engine, retry=Retry(deadline=20.0))
    failures: list[BaseException] = []
    in_flight = threading.Semaphore(0)
    written: dict[str, int] = {}

    def writer(n: int) -> None:
        thread, parent, versions = f"sync-{n}-{uuid.uuid4().hex[:6]}", None, {}
        parent = config(thread)
        for step in range(25):
            in_flight.release()
            try:
                new = {"messages": saver.get_next_version(versions.get("messages"))}
                versions.update(new)
                parent = saver.put(parent, checkpoint(step, versions), {"step": step}, new)  # type: ignore[arg-type, typeddict-item]
                written[thread] = step + 1
            except Exception as error:
                failures.append(error)
            time.sleep(0.05)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    assert in_flight.acquire(timeout=10)
    private_pg.restart(2.0)
    for worker in workers:
        worker.join(60)
    try:
        assert failures == []
        with engine.connect() as conn:
            for thread, count in written.items():
                stored = conn.execute(
                    select(func.count()).where(checkpoints.c.thread_id == thread)
                ).scalar_one()
                assert stored == count
    finally:
        engine.dispose()
