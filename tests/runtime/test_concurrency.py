"""Many threads at once on one saver: every write lands; no instance-wide lock
serializes the calls (on SQLite, which has one writer per file, only writes take turns,
and reads pass a waiting write); values are serialized before a connection is taken
from the pool (so a slow serializer never holds a connection)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver, codec
from checkpointer.schema import checkpoint_blobs, checkpoint_writes, checkpoints

N = 100


SERVERS = ("postgresql", "mysql", "mariadb")
"""Database servers (row locks, pools of connections), unlike SQLite."""


def _sync_url(url: str) -> str:
    return (
        url.replace("+asyncpg", "+psycopg")
        .replace("+aiosqlite", "")
        .replace("+asyncmy", "+pymysql")
    )


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _checkpoint(value: Any) -> tuple[Checkpoint, dict[str, str]]:
    """A checkpoint whose `value` channel (a blob row) and `n` channel (inline) are new."""
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"value": value, "n": len(value)}
    checkpoint["channel_versions"] = {"value": "1", "n": "1"}
    return checkpoint, {"value": "1", "n": "1"}


@pytest.fixture
async def pooled(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A pooled engine: ten connections (and overflow) for PostgreSQL; SQLAlchemy's
    defaults (and the driver's 5 s busy timeout) for SQLite."""
    if db_url.startswith(SERVERS):
        engine = create_async_engine(db_url, pool_size=10, max_overflow=10, pool_timeout=60)
    else:  # what `from_conn_string` gives: SQLAlchemy's defaults for aiosqlite
        engine = create_async_engine(db_url)
    yield engine
    assert engine.pool.checkedout() == 0
    await engine.dispose()


async def _count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_concurrent_aputs_on_distinct_threads(pooled: AsyncEngine) -> None:
    """100 concurrent `aput` + `aput_writes` on 100 threads: every one is stored whole.
    On PostgreSQL they run in parallel; on SQLite (one writer per file) they take turns
    in the saver, so none polls the file lock long enough to fail "database is locked"
    (which they did, under load, with the driver's 5 s busy timeout)."""
    saver = AsyncSQLAlchemySaver(pooled)
    out = [0, 0]  # connections out now, most out at once

    @event.listens_for(pooled.sync_engine.pool, "checkout")
    def checkout(*_: Any) -> None:
        out[0] += 1
        out[1] = max(out)

    @event.listens_for(pooled.sync_engine.pool, "checkin")
    def checkin(*_: Any) -> None:
        out[0] -= 1

    async def one(i: int) -> None:
        checkpoint, versions = _checkpoint([f"value {i}"] * (i + 1))
        stored = await saver.aput(_config(f"t{i}"), checkpoint, {"i": i}, versions)  # type: ignore[arg-type]
        await saver.aput_writes(stored, [("value", i), ("other", -i)], f"task{i}")

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(N))), timeout=120)
    if pooled.dialect.name != "sqlite":
        assert out[1] >= 10, f"calls did not overlap: at most {out[1]} connections out at once"
    else:  # one writer at a time: the others wait their turn without a connection
        assert out[1] == 1
    assert await _count(pooled, checkpoints) == N
    assert await _count(pooled, checkpoint_blobs) == N
    assert await _count(pooled, checkpoint_writes) == 2 * N
    for i in range(N):
        got = await saver.aget_tuple(_config(f"t{i}"))
        assert got is not None, i
        assert got.checkpoint["channel_values"] == {"value": [f"value {i}"] * (i + 1), "n": i + 1}
        assert got.metadata["i"] == i
        assert got.pending_writes == [(f"task{i}", "value", i), (f"task{i}", "other", -i)]


async def test_concurrent_aputs_on_one_thread_sharing_blobs(pooled: AsyncEngine) -> None:
    """50 concurrent checkpoints of one thread naming the same channel version (as
    parallel branches do), and concurrent special writes to one key: no conflict error,
    one blob row, the last special write stands."""
    saver = AsyncSQLAlchemySaver(pooled)
    config = _config("shared")
    checkpoints_ = [_checkpoint(["shared value"]) for _ in range(50)]
    stored = await asyncio.wait_for(
        asyncio.gather(*(saver.aput(config, c, {}, v) for c, v in checkpoints_)), timeout=120
    )
    assert len({s["configurable"]["checkpoint_id"] for s in stored}) == 50
    assert await _count(pooled, checkpoint_blobs) == 1
    assert await _count(pooled, checkpoints) == 50
    target = stored[0]
    await asyncio.wait_for(
        asyncio.gather(
            *(saver.aput_writes(target, [("__error__", f"e{i}"), ("v", i)], "t") for i in range(30))
        ),
        timeout=120,
    )
    got = await saver.aget_tuple(target)
    assert got is not None
    assert len(got.pending_writes) == 2  # one per (task, idx), whoever won
    error = next(w for w in got.pending_writes if w[1] == "__error__")
    assert error[2] in {f"e{i}" for i in range(30)}
    for s in stored:
        one = await saver.aget_tuple(s)
        assert one is not None
        assert one.checkpoint["channel_values"]["value"] == ["shared value"]


def test_sync_saver_from_100_os_threads(db_url: str) -> None:
    """The sync saver shared by 100 OS threads on a `QueuePool`: every write is stored."""
    engine = create_engine(
        _sync_url(db_url), poolclass=QueuePool, pool_size=10, max_overflow=10, pool_timeout=60
    )
    saver = SQLAlchemySaver(engine)
    start = threading.Barrier(N, timeout=60)
    idents: set[int] = set()

    def one(i: int) -> None:
        idents.add(threading.get_ident())
        start.wait()  # all 100 threads call at once
        checkpoint, versions = _checkpoint([i] * 3)
        stored = saver.put(_config(f"s{i}"), checkpoint, {"i": i}, versions)
        saver.put_writes(stored, [("value", i)], f"task{i}")
        got = saver.get_tuple(_config(f"s{i}"))
        assert got is not None
        assert got.checkpoint["channel_values"]["value"] == [i] * 3

    try:
        with ThreadPoolExecutor(max_workers=N) as pool:
            for future in [pool.submit(one, i) for i in range(N)]:
                future.result(timeout=120)
        assert len(idents) == N
        found = {t.config["configurable"]["thread_id"]: t for t in saver.list(None)}
        assert set(found) == {f"s{i}" for i in range(N)}
        for i in range(N):
            assert found[f"s{i}"].pending_writes == [(f"task{i}", "value", i)]
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()


@pytest.fixture
def blocker(db_url: str) -> Iterator[Any]:
    """A separate session that can hold a write lock the saver will wait on."""
    if db_url.startswith(SERVERS):
        # READ COMMITTED: InnoDB's default (REPEATABLE READ) would also lock the gap
        # after the row, and with it inserts of other threads' keys.
        engine = create_engine(_sync_url(db_url), isolation_level="READ COMMITTED")
        conn = engine.connect()
        yield conn
        conn.close()
        engine.dispose()
    else:
        path = make_url(db_url).database
        assert path is not None
        raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        yield raw
        raw.close()


async def test_a_blocked_call_does_not_block_the_saver(
    db_url: str, blocker: Any, tmp_path: Any
) -> None:
    """One call waits on a lock held by another session (a row lock on PostgreSQL, the
    write lock on SQLite); meanwhile other calls on the same saver complete."""
    postgres = db_url.startswith(SERVERS)  # a server with row locks
    engine = create_async_engine(db_url, **({} if postgres else {"connect_args": {"timeout": 60}}))
    saver = AsyncSQLAlchemySaver(engine)
    checkpoint, versions = _checkpoint(["first"])
    stored = await saver.aput(_config("locked"), checkpoint, {"state": "before"}, versions)  # type: ignore[arg-type]
    await saver.aput(_config("free"), *_args(["x"], {"state": "free"}))
    # Hold the lock: the checkpoint row (PostgreSQL), the database's write lock (SQLite).
    if postgres:
        blocker.begin()
        blocker.execute(
            select(checkpoints.c.thread_id)
            .where(checkpoints.c.thread_id == "locked")
            .with_for_update()
        ).all()
    else:
        blocker.execute("BEGIN IMMEDIATE")
    blocked = asyncio.create_task(
        saver.aput(_config("locked"), checkpoint, {"state": "after"}, {})  # type: ignore[arg-type]
    )
    try:
        await asyncio.sleep(1.0)
        assert not blocked.done(), "the blocked call should be waiting on the lock"
        # Other calls on the same saver go through while that one waits.
        if postgres:
            await asyncio.wait_for(
                asyncio.gather(
                    *(saver.aput(_config(f"other{i}"), *_args([i], {"i": i})) for i in range(10))
                ),
                timeout=20,
            )
        for _ in range(10):
            got = await asyncio.wait_for(saver.aget_tuple(_config("free")), timeout=20)
            assert got is not None
            assert got.metadata["state"] == "free"
        listed = await asyncio.wait_for(_list(saver), timeout=20)
        assert len(listed) >= 2
        assert not blocked.done(), "the blocked call finished before the lock was released"
    finally:
        if postgres:
            blocker.commit()
        else:
            blocker.execute("COMMIT")
    assert await asyncio.wait_for(blocked, timeout=60) == stored
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert got.metadata["state"] == "after"
    await engine.dispose()


def test_a_blocked_sync_call_does_not_block_the_sync_saver(db_url: str, blocker: Any) -> None:
    """The same for the sync saver: one thread waits on the lock, others go through."""
    postgres = db_url.startswith(SERVERS)  # a server with row locks
    engine = create_engine(
        _sync_url(db_url), **({} if postgres else {"connect_args": {"timeout": 60}})
    )
    saver = SQLAlchemySaver(engine)
    try:
        checkpoint, versions = _checkpoint(["first"])
        stored = saver.put(_config("locked"), checkpoint, {"state": "before"}, versions)  # type: ignore[arg-type]
        saver.put(_config("free"), *_args(["x"], {"state": "free"}))
        if postgres:
            blocker.begin()
            blocker.execute(
                select(checkpoints.c.thread_id)
                .where(checkpoints.c.thread_id == "locked")
                .with_for_update()
            ).all()
        else:
            blocker.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(max_workers=4) as pool:
            blocked = pool.submit(saver.put, _config("locked"), checkpoint, {"state": "after"}, {})
            try:
                threading.Event().wait(1.0)
                assert not blocked.done(), "the blocked call should be waiting on the lock"
                reads = [pool.submit(saver.get_tuple, _config("free")) for _ in range(6)]
                for read in reads:
                    got = read.result(timeout=20)
                    assert got is not None
                    assert got.metadata["state"] == "free"
                if postgres:
                    write = pool.submit(saver.put, _config("other"), *_args([1], {}))
                    assert write.result(timeout=20)["configurable"]["thread_id"] == "other"
                assert not blocked.done(), "the blocked call finished before the release"
            finally:
                if postgres:
                    blocker.commit()
                else:
                    blocker.execute("COMMIT")
            assert blocked.result(timeout=60) == stored
        got = saver.get_tuple(stored)
        assert got is not None
        assert got.metadata["state"] == "after"
    finally:
        engine.dispose()


async def _list(saver: AsyncSQLAlchemySaver) -> list[Any]:
    return [t async for t in saver.alist(None)]


def _args(value: Any, metadata: dict[str, Any]) -> tuple[Checkpoint, Any, dict[str, str]]:
    """`aput`'s checkpoint, metadata and new versions."""
    checkpoint, versions = _checkpoint(value)
    return checkpoint, metadata, versions


class CheckoutRecorder(JsonPlusSerializer):
    """Records how many connections the pool has out whenever a value is serialized
    (`seen`) or deserialized (`seen_loading`)."""

    def __init__(self) -> None:
        super().__init__()
        self.pools: list[Any] = []
        self.seen: list[int] = []
        self.seen_loading: list[int] = []

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        self.seen.extend(pool.checkedout() for pool in self.pools)
        return super().dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        self.seen_loading.extend(pool.checkedout() for pool in self.pools)
        return super().loads_typed(data)


async def test_values_are_serialized_before_checkout(engine: AsyncEngine, db_url: str) -> None:
    """Every `dumps_typed` call of `aput`/`aput_writes` (and of `put`/`put_writes`) runs
    while no connection is checked out of the engine's pool."""
    serde = CheckoutRecorder()
    codec.inlines_primitives(serde)  # the serde's one plaintext probe, before recording
    serde.pools.append(engine.pool)
    saver = AsyncSQLAlchemySaver(engine, serde=serde)
    checkpoint, versions = _checkpoint([{"a": 1}, "b"])
    stored = await saver.aput(_config("t"), checkpoint, {}, versions)  # type: ignore[arg-type]
    await saver.aput_writes(stored, [("value", [1, 2]), ("other", {"x": b"y"})], "task")
    async with engine.connect() as conn:  # proves the recorder sees a checked-out one
        serde.dumps_typed("probe")
        assert serde.seen[-1] == 1
        serde.seen.pop()
        assert await conn.scalar(select(1)) == 1
    assert len(serde.seen) == 3
    assert set(serde.seen) == {0}
    # and read values are decoded after the connection went back to the pool
    got = await saver.aget_tuple(_config("t"))
    assert got is not None
    assert got.checkpoint["channel_values"]["value"] == [{"a": 1}, "b"]
    history = await saver.aget_delta_channel_history(config=stored, channels=["value"])
    assert "value" in history
    assert len(serde.seen_loading) >= 3
    assert set(serde.seen_loading) == {0}

    sync_engine: Engine = create_engine(_sync_url(db_url))
    try:
        sync_serde = CheckoutRecorder()
        codec.inlines_primitives(sync_serde)
        sync_serde.pools.append(sync_engine.pool)
        sync_saver = SQLAlchemySaver(sync_engine, serde=sync_serde)
        checkpoint, versions = _checkpoint(["c"])
        stored = sync_saver.put(_config("s"), checkpoint, {}, versions)
        sync_saver.put_writes(stored, [("value", 1), ("other", 2)], "task")
        assert len(sync_serde.seen) == 3
        assert set(sync_serde.seen) == {0}
        got = sync_saver.get_tuple(_config("s"))
        assert got is not None
        assert got.checkpoint["channel_values"]["value"] == ["c"]
        assert len(sync_serde.seen_loading) >= 3
        assert set(sync_serde.seen_loading) == {0}
    finally:
        sync_engine.dispose()
