"""What is particular to MySQL/MariaDB: key columns' length limits and the metadata
depth limit (a `ValueError` before the database sees the row), ids compared by bytes
(case, accents and trailing spaces count), 20 MB values within the test server's
`max_allowed_packet` (64 MB) and a clear error past it, the run-id index
`delete_for_runs` uses, upgrades serialized by a named lock, and offline SQL."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.dialects import KEY_LENGTHS
from checkpointer.errors import ValueTooLargeError
from checkpointer.schema import checkpoint_blobs, checkpoint_writes, checkpoints
from checkpointer.statements import for_dialect

from .. import mysql_server

MB = 2**20
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def engine(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(mysql_url)
    yield engine
    assert engine.pool.checkedout() == 0, "a connection was left checked out"
    await engine.dispose()


@pytest.fixture
def saver(engine: AsyncEngine) -> AsyncSQLAlchemySaver:
    return AsyncSQLAlchemySaver(engine)


def _config(thread_id: str, ns: str = "") -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}


async def _count(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        counts = [
            await conn.scalar(select(func.count()).select_from(t))
            for t in (checkpoints, checkpoint_blobs, checkpoint_writes)
        ]
    return counts[0] or 0, counts[1] or 0, counts[2] or 0


def _with_value(channel: str, value: Any) -> tuple[Any, dict[str, str]]:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {channel: value}
    checkpoint["channel_versions"] = {channel: "1"}
    return checkpoint, {channel: "1"}


async def test_keys_at_their_limits_are_stored_in_4_byte_characters(
    saver: AsyncSQLAlchemySaver,
) -> None:
    """Every key column holds its documented length in 4-byte characters (emoji)."""
    thread = "😀" * KEY_LENGTHS["thread_id"]
    ns = "ñ" * KEY_LENGTHS["checkpoint_ns"]
    channel = "😀" * KEY_LENGTHS["channel"]
    checkpoint, versions = _with_value(channel, ["x"])
    stored = await saver.aput(_config(thread, ns), checkpoint, {}, versions)
    await saver.aput_writes(stored, [(channel, 1)], "😀" * KEY_LENGTHS["task_id"])
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert got.checkpoint["channel_values"] == {channel: ["x"]}
    assert got.pending_writes is not None
    assert [(c, v) for _, c, v in got.pending_writes] == [(channel, 1)]


@pytest.mark.parametrize("column", ["thread_id", "checkpoint_ns", "channel", "task_id"])
async def test_a_key_past_its_limit_is_refused_before_the_database(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine, column: str
) -> None:
    long = "k" * (KEY_LENGTHS[column] + 1)
    thread = long if column == "thread_id" else "t"
    ns = long if column == "checkpoint_ns" else ""
    channel = long if column == "channel" else "c"
    checkpoint, versions = _with_value(channel, ["x"])
    expected = rf"{column} is {len(long)} characters long; .* at most {KEY_LENGTHS[column]}"
    if column == "task_id":
        stored = await saver.aput(_config("t"), checkpoint, {}, versions)
        before = await _count(engine)
        with pytest.raises(ValueError, match=expected):
            await saver.aput_writes(stored, [("c", 1)], long)
        assert await _count(engine) == before
        return
    with pytest.raises(ValueError, match=expected):
        await saver.aput(_config(thread, ns), checkpoint, {}, versions)
    assert await _count(engine) == (0, 0, 0)


async def test_copy_to_a_thread_id_past_the_limit_is_refused(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    await saver.aput(_config("source"), empty_checkpoint(), {}, {})
    with pytest.raises(ValueError, match="thread_id is 256 characters long"):
        await saver.acopy_thread("source", "t" * 256)
    assert await _count(engine) == (1, 0, 0)


async def test_metadata_deeper_than_31_levels_is_refused(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    """MariaDB's JSON functions stop before 32 levels (the generated run id reads the
    metadata): 31 are stored and found, 32 are refused with a message, nothing written."""

    def nested(depth: int) -> dict[str, Any]:
        value: Any = "leaf"
        for _ in range(depth):
            value = {"k": value}
        return value  # type: ignore[no-any-return]

    stored = await saver.aput(_config("ok"), empty_checkpoint(), nested(31), {})  # type: ignore[arg-type]
    found = [t.config async for t in saver.alist(None, filter={"k": {"k": {}}})]
    assert found == [stored]
    with pytest.raises(ValueError, match="metadata is nested more than 31 levels deep"):
        await saver.aput(_config("deep"), empty_checkpoint(), nested(32), {})  # type: ignore[arg-type]
    assert await _count(engine) == (1, 0, 0)


async def test_ids_compare_by_bytes(saver: AsyncSQLAlchemySaver) -> None:
    """Thread ids differing by case, accent or a trailing space are different threads
    (a `_ci` or PAD SPACE collation would merge them)."""
    threads = ["abc", "ABC", "abc ", "abç"]
    for thread in threads:
        await saver.aput(_config(thread), empty_checkpoint(), {"source": thread}, {})  # type: ignore[typeddict-item]
    for thread in threads:
        found = [t.metadata["source"] async for t in saver.alist(_config(thread))]  # type: ignore[typeddict-item]
        assert found == [thread]
    found_abc = [
        t.config["configurable"]["thread_id"]
        async for t in saver.alist(None, filter={"source": "ABC"})
    ]
    assert found_abc == ["ABC"]


async def test_20_mb_values_round_trip(saver: AsyncSQLAlchemySaver) -> None:
    """A 20 MB channel value and a 20 MB pending write, incompressible (the test server's
    max_allowed_packet is raised to 64 MB; MariaDB's default is 16 MB)."""
    big = random.Random(3).randbytes(20 * MB)
    checkpoint, versions = _with_value("big", big)
    stored = await saver.aput(_config("big"), checkpoint, {}, versions)
    await saver.aput_writes(stored, [("w", big[::-1])], "task")
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert got.checkpoint["channel_values"]["big"] == big
    assert got.pending_writes is not None
    assert got.pending_writes[0][2] == big[::-1]


async def test_a_value_over_max_allowed_packet_names_the_setting(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    """Over the server's max_allowed_packet, MySQL would close the connection ("server
    has gone away", retried in vain): refused at once, naming the setting, nothing
    written, the connection still usable."""
    async with engine.connect() as conn:
        packet = int(await conn.scalar(text("SELECT @@max_allowed_packet")) or 0)
    big = random.Random(4).randbytes(packet + MB)
    checkpoint, versions = _with_value("big", big)
    with pytest.raises(ValueTooLargeError, match="max_allowed_packet") as error:
        await saver.aput(_config("big"), checkpoint, {}, versions)
    assert f"({packet:,} bytes)" in str(error.value)
    stored = await saver.aput(_config("big"), empty_checkpoint(), {}, {})
    with pytest.raises(ValueTooLargeError, match="max_allowed_packet"):
        await saver.aput_writes(stored, [("w", big)], "task")
    assert await _count(engine) == (1, 0, 0)


async def test_delete_for_runs_uses_the_run_id_index(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    """Checkpoints are found by run id through the generated column's index."""
    for i in range(20):
        await saver.aput(_config(f"t{i}"), empty_checkpoint(), {"run_id": f"run-{i}"}, {})  # type: ignore[typeddict-item]
    statement = for_dialect(engine.dialect.name).run_threads.params(run_ids=["run-3"])
    sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        plan = (await conn.exec_driver_sql(f"EXPLAIN {sql}")).mappings().all()
    assert any(row["key"] == "checkpoints_run_id_idx" for row in plan), plan
    await saver.adelete_for_runs(["run-3", "run-5"])
    remaining = {t.config["configurable"]["thread_id"] async for t in saver.alist(None)}
    assert remaining == {f"t{i}" for i in range(20)} - {"t3", "t5"}


def _setup_in_a_process(url: str) -> subprocess.Popen[str]:
    code = (
        "import sys\n"
        "from checkpointer import SQLAlchemySaver\n"
        "with SQLAlchemySaver.from_conn_string(sys.argv[1]) as saver:\n"
        "    print(','.join(saver.setup()))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )


def test_concurrent_setup_from_processes_migrates_once(fresh_mysql: str) -> None:
    """Four processes call setup() at once on a fresh database: one applies the
    revisions, the others find them applied (GET_LOCK serializes them)."""
    url = mysql_server.url_string(fresh_mysql, "pymysql").replace("+pymysql", "")
    processes = [_setup_in_a_process(url) for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert sorted(outputs) == ["", "", "", "0001,0002,0003,0004,0005,0006"]


def test_setup_waits_for_a_held_named_lock_and_names_the_holder(fresh_mysql: str) -> None:
    from checkpointer.errors import MigrationLockTimeoutError
    from checkpointer.migrations import _lock_name

    url = mysql_server.url_string(fresh_mysql, "pymysql")
    engine = create_engine(url)
    try:
        with engine.connect() as holder:
            name = _lock_name(holder)
            assert holder.scalar(select(func.get_lock(name, 0))) == 1
            saver = SQLAlchemySaver(engine)
            with pytest.raises(MigrationLockTimeoutError, match=r"held by connection \d+"):
                saver.setup(lock_timeout=0.5)
            holder.scalar(select(func.release_lock(name)))
        assert SQLAlchemySaver(engine).setup() == ["0001", "0002", "0003", "0004", "0005", "0006"]
    finally:
        engine.dispose()


async def test_async_setup_on_a_fresh_database(fresh_mysql: str) -> None:
    engine = create_async_engine(mysql_server.database_url(fresh_mysql))
    try:
        saver = AsyncSQLAlchemySaver(engine)
        results = await asyncio.gather(saver.setup(), AsyncSQLAlchemySaver(engine).setup())
        assert sorted(results) == [[], ["0001", "0002", "0003", "0004", "0005", "0006"]]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["mysql", "mariadb"])
def test_offline_sql_runs_on_the_server(backend: str, fresh_mysql: str) -> None:
    """`alembic upgrade head --sql` renders a script the server runs as it is, and the
    database it makes is at head with the same tables (MariaDB takes either spelling
    only with its own collation: a `mysql://` script names MySQL 8's)."""
    env = {"CHECKPOINTER_DATABASE_URL": f"{backend}://root@127.0.0.1/offline"}
    import os

    script = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head", "--sql"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    ).stdout
    assert "GENERATED ALWAYS AS" in script
    assert "VARCHAR(255)" in script
    expected = "utf8mb4_nopad_bin" if backend == "mariadb" else "utf8mb4_0900_bin"
    assert expected in script
    if backend != "mariadb":
        return
    engine = create_engine(mysql_server.url_string(fresh_mysql, "pymysql"))
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            cursor = raw.cursor()
            for statement in script.split(";\n"):
                lines = [line for line in statement.splitlines() if not line.startswith("--")]
                if "".join(lines).strip():
                    cursor.execute("\n".join(lines))
            raw.commit()
        saver = SQLAlchemySaver(engine)
        stored = saver.put(_config("t"), empty_checkpoint(), {}, {})
        assert saver.get_tuple(stored) is not None
    finally:
        engine.dispose()


def test_sync_sweep_deletes_threads_idle_in_every_namespace(mysql_url: str) -> None:
    """The sync saver's `sweep(strategy="delete")` (PyMySQL): a thread whose root and
    subgraph checkpoints are all 40 days old goes whole; one whose root is that old
    but whose subgraph namespace got a checkpoint today is a candidate (its latest
    root is old) that the batch's locking read finds not idle, and stays whole."""
    from datetime import datetime, timedelta, timezone
    from uuid import uuid4

    from langgraph.checkpoint.base.id import uuid6

    from checkpointer.ids import id_floor

    old_moment = datetime.now(timezone.utc) - timedelta(days=40)

    def old_id() -> str:
        return id_floor(old_moment)[:19] + "8000-" + uuid4().hex[:12]

    engine = create_engine(mysql_server.database_url(mysql_url.rsplit("/", 1)[1], "pymysql"))
    try:
        saver = SQLAlchemySaver(engine)
        threads = {"idle": str(uuid4()), "busy": str(uuid4())}
        for name, thread in threads.items():
            for ns, checkpoint_id in (("", old_id()), ("sub:1", old_id())):
                if name == "busy" and ns:
                    checkpoint_id = str(uuid6(clock_seq=1))
                checkpoint, versions = _with_value("v", {"n": name})
                checkpoint["id"] = checkpoint_id
                stored = saver.put(_config(thread, ns), checkpoint, {}, versions)
                saver.put_writes(stored, [("w", 1)], "task")
        report = saver.sweep(idle_for=timedelta(days=30))
        assert (report.threads, report.checkpoints, report.blobs, report.writes) == (1, 2, 2, 2)
        assert report.bytes > 0
        with engine.connect() as conn:
            for name, thread in threads.items():
                left = [
                    conn.scalar(select(func.count()).select_from(t).where(t.c.thread_id == thread))
                    for t in (checkpoints, checkpoint_blobs, checkpoint_writes)
                ]
                assert left == ([0, 0, 0] if name == "idle" else [2, 2, 2]), (name, left)
    finally:
        engine.dispose()
