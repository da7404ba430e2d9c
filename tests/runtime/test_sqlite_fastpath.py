"""SQLite's fast path (`fastpath.SqlitePath`) and journal mode: whole plans on the raw
connection read what `Connection` reads, transactions stay atomic, the pooled
connection comes back clean, a file in the default rollback journal is switched to WAL
(any other mode the caller chose is kept), and two processes writing one file lose
nothing and see no "database is locked"."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import (
    AsyncSQLAlchemySaver,
    SchemaNotReadyError,
    SQLAlchemySaver,
    ThreadNotEmptyError,
    fastpath,
)

from .test_fastpath import comparable, config, connections_made, write_thread

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(sqlite_url, pool_size=1, max_overflow=0)
    yield made
    assert made.pool.checkedout() == 0
    await made.dispose()


def journal_mode(url: str) -> str:
    path = url.split("///", 1)[1]
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


async def test_plans_run_whole_and_read_what_connection_reads(engine: AsyncEngine) -> None:
    fast = AsyncSQLAlchemySaver(engine)
    plain = AsyncSQLAlchemySaver(engine, fast_path=False)
    thread = f"t-{uuid.uuid4().hex}"
    await fast.aget_tuple(config("first use"))
    assert isinstance(fast._fast, fastpath.SqlitePath)
    assert plain._fast is None
    with connections_made(engine.sync_engine) as made:
        last = await write_thread(fast, thread, 3)  # atomic puts and writes
        got = await fast.aget_tuple(config(thread))
        listed = [t async for t in fast.alist(config(thread))]
    assert made == []  # no `Connection`: every plan ran on the raw connection
    assert comparable(got) == comparable(await plain.aget_tuple(config(thread)))
    assert [comparable(t) for t in listed] == [
        comparable(t) async for t in plain.alist(config(thread))
    ]
    assert got is not None
    assert got.config == last
    # expanding `IN` lists run too (SQLAlchemy's own expansion of the statement)
    await fast.adelete_for_runs(["no-such-run"])
    assert await fast.aget_tuple(config(thread)) is not None


async def test_failed_transaction_rolls_back_and_connection_returns_clean(
    engine: AsyncEngine,
) -> None:
    saver = AsyncSQLAlchemySaver(engine)
    source, target = f"s-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
    await write_thread(saver, source, 2)
    await write_thread(saver, target, 1)
    with pytest.raises(ThreadNotEmptyError):
        await saver.acopy_thread(source, target)  # raised inside the transaction
    assert len([t async for t in saver.alist(config(target))]) == 1
    # the pool's one connection is back in its own mode, outside any transaction
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        assert not raw.driver_connection._conn.in_transaction
        await conn.execute(text("SELECT 1"))
    # a database error is wrapped as `Connection` wraps it (and then translated)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE checkpoint_writes"))
    with pytest.raises(SchemaNotReadyError) as raised:
        await saver.aget_tuple(config(source))
    assert isinstance(raised.value.__cause__, DBAPIError)


def test_sync_saver_takes_the_fast_path_on_sqlite3(tmp_path: Path, sqlite_url: str) -> None:
    engine = create_engine(sqlite_url.replace("+aiosqlite", ""))
    try:
        saver = SQLAlchemySaver(engine)
        assert saver.get_tuple(config("nothing")) is None
        assert isinstance(saver._fast, fastpath.SqlitePath)
        with connections_made(engine) as made:
            parent = config(f"t-{uuid.uuid4().hex}")
            from .test_fastpath import checkpoint

            for step in range(3):
                parent = saver.put(
                    parent, checkpoint(step, {"a": f"{step + 1}"}), {}, {"a": f"{step + 1}"}
                )
                saver.put_writes(parent, [("a", step), ("b", step)], "task")
            got = saver.get_tuple(parent)
        assert made == []
        assert got is not None
        assert len(got.pending_writes or ()) == 2
    finally:
        engine.dispose()


async def test_default_journal_becomes_wal_other_modes_are_kept(sqlite_url: str) -> None:
    path = sqlite_url.split("///", 1)[1]

    def set_mode(mode: str) -> None:
        conn = sqlite3.connect(path)
        assert conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0] == mode.lower()
        conn.close()

    async def first_use(fast_path: bool = True, mode: str | None = None) -> str:
        engine = create_async_engine(sqlite_url)
        if mode is not None:  # the caller's choice, made on each of its connections
            event.listen(
                engine.sync_engine,
                "connect",
                lambda conn, _: conn.execute(f"PRAGMA journal_mode={mode}"),
            )
        saver = AsyncSQLAlchemySaver(engine, fast_path=fast_path)
        await saver.aget_tuple(config("x"))
        async with engine.connect() as c:
            # `synchronous` is never touched: SQLite's default, FULL, as the official
            # saver leaves it (a commit is fsynced before it returns)
            assert (await c.exec_driver_sql("PRAGMA synchronous")).scalar() == 2
            found = str((await c.exec_driver_sql("PRAGMA journal_mode")).scalar())
        await engine.dispose()
        return found

    # a non-WAL mode lasts only as long as the connection that set it: a caller who
    # wants another sets it on connect, and it is kept
    assert await first_use(mode="TRUNCATE") == "truncate"
    assert journal_mode(sqlite_url) == "delete"
    for fast_path in (True, False):  # not a fast-path setting: both savers do it
        set_mode("DELETE")  # SQLite's default
        assert await first_use(fast_path) == "wal"
        assert journal_mode(sqlite_url) == "wal"  # stored in the file


WRITER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from sqlalchemy.ext.asyncio import create_async_engine
from checkpointer import AsyncSQLAlchemySaver
from tests.runtime.test_fastpath import write_thread

async def main(url, tag, threads, steps):
    engine = create_async_engine(url)
    saver = AsyncSQLAlchemySaver(engine)
    await asyncio.gather(*(write_thread(saver, f"{{tag}}-{{i}}", steps) for i in range(threads)))
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def test_two_processes_write_one_file_without_loss(sqlite_url: str) -> None:
    """Both processes write at once (8 threads each, puts and writes in transactions):
    no process fails ("database is locked" would end it), every checkpoint is there."""
    script = WRITER.format(root=str(ROOT))
    threads, steps = 8, 6
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, sqlite_url, tag, str(threads), str(steps),
            stderr=asyncio.subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]  # fmt: skip
    errors = [(await p.communicate())[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    path = sqlite_url.split("///", 1)[1]
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT count(*), count(DISTINCT thread_id) FROM checkpoints")
        assert rows.fetchone() == (2 * threads * steps, 2 * threads)
        writes = conn.execute("SELECT count(*) FROM checkpoint_writes").fetchone()[0]
    finally:
        conn.close()
    assert writes > 0


@pytest.mark.parametrize(("where", "name"), [*fastpath.SQLITE_PROBED, ("aiosqlite", "__version__")])
async def test_each_probe_failing_means_connection(
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    where: str,
    name: str,
) -> None:
    """Without an attribute the SQLite path reads (or with an aiosqlite it was not
    tested on), the saver says why (one INFO line) and runs through `Connection`, with
    the same results. (aiosqlite itself needs the attributes: they are put back before
    the saver is used, which the probe, once per saver, does not notice.)"""
    target = fastpath._resolve(where)
    if name == "__version__":
        monkeypatch.setattr(target, name, "9.0.0")
    else:
        monkeypatch.delattr(target, name)
    with caplog.at_level(logging.INFO, logger="checkpointer"):
        saver = AsyncSQLAlchemySaver(engine)
    monkeypatch.undo()
    assert saver._fast is None
    lines = [r.getMessage() for r in caplog.records if r.name == "checkpointer"]
    assert len(lines) == 1
    assert ("9.0.0" if name == "__version__" else name) in lines[0]
    thread = f"t-{uuid.uuid4().hex}"
    with connections_made(engine.sync_engine) as made:
        last = await write_thread(saver, thread, 2)
        got = await saver.aget_tuple(config(thread))
    assert len(made) >= 5  # every call through `Connection`
    assert got is not None
    assert got.config == last


# -- writes in groups (one transaction, one commit, a savepoint per plan) --------------


def _spy_groups(fast: fastpath.SqlitePath) -> list[int]:
    """Record the size of every group `fast` runs (the real method still runs)."""
    sizes: list[int] = []
    run_group = fast._on_group

    def spied(raw: object, group: list[fastpath._Queued]) -> None:
        sizes.append(len(group))
        run_group(raw, group)

    fast._on_group = spied  # type: ignore[method-assign]
    return sizes


def _thread_counts(url: str) -> tuple[int, int]:
    conn = sqlite3.connect(url.split("///", 1)[1])
    try:
        row = conn.execute("SELECT count(*), count(DISTINCT thread_id) FROM checkpoints")
        return tuple(row.fetchone())  # type: ignore[return-value]
    finally:
        conn.close()


async def test_concurrent_async_writes_commit_in_groups_and_lose_nothing(
    engine: AsyncEngine, sqlite_url: str
) -> None:
    saver = AsyncSQLAlchemySaver(engine)
    await saver.aget_tuple(config("first use"))
    assert isinstance(saver._fast, fastpath.SqlitePath)
    sizes = _spy_groups(saver._fast)
    await asyncio.gather(*(write_thread(saver, f"g-{i}", 4) for i in range(16)))
    assert _thread_counts(sqlite_url) == (16 * 4, 16)
    assert sum(sizes) == 16 * 4 * 2  # every aput and aput_writes ran in a group
    assert max(sizes) > 1  # and writers that queued shared a commit
    for i in range(16):
        got = await saver.aget_tuple(config(f"g-{i}"))
        assert got is not None
        assert len(got.pending_writes or ()) == 2


def test_concurrent_threads_commit_in_groups_and_lose_nothing(sqlite_url: str) -> None:
    import threading

    from .test_fastpath import checkpoint

    engine = create_engine(sqlite_url.replace("+aiosqlite", ""))
    try:
        saver = SQLAlchemySaver(engine)
        saver.get_tuple(config("first use"))
        assert isinstance(saver._fast, fastpath.SqlitePath)
        sizes = _spy_groups(saver._fast)
        failures: list[BaseException] = []

        def writer(thread_id: str) -> None:
            try:
                parent = config(thread_id)
                for step in range(5):
                    versions = {"a": saver.get_next_version(None)}
                    parent = saver.put(parent, checkpoint(step, versions), {"s": step}, versions)
                    saver.put_writes(parent, [("a", step)], f"task-{step}")
            except BaseException as error:  # pragma: no cover  (reported below)
                failures.append(error)

        workers = [threading.Thread(target=writer, args=(f"w-{i}",)) for i in range(16)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert failures == []
        assert _thread_counts(sqlite_url) == (16 * 5, 16)
        assert sum(sizes) == 16 * 5 * 2
        assert max(sizes) > 1
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("alone", [False, True])
def test_a_failing_plan_in_a_group_rolls_back_alone(sqlite_url: str, alone: bool) -> None:
    """A plan that wrote, then failed, leaves nothing and gets its error; the other
    plans of its group commit. Alone, its transaction is rolled back."""
    from checkpointer.base import drive
    from checkpointer.plans import Plan, Step
    from checkpointer.schema import checkpoint_writes

    engine = create_engine(sqlite_url.replace("+aiosqlite", ""))
    try:
        saver = SQLAlchemySaver(engine)
        saver.get_tuple(config("first use"))
        fast = saver._fast
        assert isinstance(fast, fastpath.SqlitePath)
        insert = checkpoint_writes.insert()

        def row(thread_id: str) -> dict[str, object]:
            return {
                "thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": "c",
                "task_id": "t", "idx": 0, "channel": "a", "type": "json", "blob": b"1",
                "task_path": "",
            }  # fmt: skip

        def failing() -> object:
            yield Step(insert, row("failed"))
            raise RuntimeError("the plan failed after writing")

        def fine(thread_id: str) -> object:
            yield Step(insert, row(thread_id))
            return thread_id

        plans = [Plan(failing(), atomic=True)] + (
            [] if alone else [Plan(fine("kept-1"), atomic=True), Plan(fine("kept-2"), atomic=True)]
        )
        group = [fastpath._Queued(p, drive, (next(p.steps),)) for p in plans]
        fast._run_group(group)
        with pytest.raises(RuntimeError, match="failed after writing"):
            group[0].result()
        assert [e.result() for e in group[1:]] == ([] if alone else ["kept-1", "kept-2"])
        conn = sqlite3.connect(sqlite_url.split("///", 1)[1])
        try:
            stored = conn.execute("SELECT thread_id FROM checkpoint_writes ORDER BY 1")
            assert [r[0] for r in stored] == ([] if alone else ["kept-1", "kept-2"])
        finally:
            conn.close()
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()


async def test_callers_cancelled_while_queued_leave_the_group_whole(
    engine: AsyncEngine, sqlite_url: str
) -> None:
    """Writers cancelled while they wait for their group are left out of it (nothing of
    theirs is written), the others commit, the drainer ends and the saver goes on."""
    from .test_fastpath import checkpoint

    saver = AsyncSQLAlchemySaver(engine)
    await saver.aget_tuple(config("first use"))
    fast = saver._fast
    assert isinstance(fast, fastpath.SqlitePath)
    versions = {"a": saver.get_next_version(None)}

    async def put(i: int) -> None:
        await saver.aput(config(f"c-{i}"), checkpoint(0, versions), {"i": i}, versions)

    tasks = [asyncio.ensure_future(put(i)) for i in range(12)]
    await asyncio.sleep(0)  # all queued behind the first group
    for task in tasks[1::2]:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(o is None or isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    assert fast._drainer is None
    assert fast._awaiting == []
    # cancelled before the drainer began (it runs after this task resumes): left out
    assert [o is None for o in outcomes] == [i % 2 == 0 for i in range(12)]
    for i in range(12):
        listed = [t async for t in saver.alist(config(f"c-{i}"))]
        assert len(listed) == (1 if i % 2 == 0 else 0)
    await put(99)
    assert await saver.aget_tuple(config("c-99")) is not None
