"""`setup()` never hangs and never leaves a lock behind (issue 16, item 5).

Upgrades of one database take turns on a lock: on PostgreSQL a transaction-level
advisory lock held by a transaction of its own while the upgrade runs. A `setup()` that
finds it taken waits at most `lock_timeout` seconds (default 60), then raises
`MigrationLockTimeoutError` naming the holder (pid, application name, client address,
from `pg_locks` and `pg_stat_activity`). Through PgBouncer in transaction mode it works
(the holder's open transaction pins one server connection), and neither a finished, a
failed nor a killed migrator leaves the lock held: the transaction ends, and the lock
with it. Every test here fails on the session-level lock this replaced (left on a
PgBouncer server connection; held forever by nobody after a kill through the pooler)
or on the blocking in-process lock (two setups on one event loop deadlocked)."""

from __future__ import annotations

import asyncio
import inspect as pyinspect
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.util import CommandError
from sqlalchemy import create_engine, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import (
    AsyncSQLAlchemySaver,
    MigrationLockTimeoutError,
    SQLAlchemySaver,
    migrations,
)
from checkpointer.migrations import DEFAULT_LOCK_TIMEOUT, head

from ..conftest import _create_database, drop_database
from ..deploy_support import REPO, sync_pg_url, versions, with_conn
from ..pg_server import database_url, server_url
from ..pgbouncer import ENGINE_OPTIONS, PgBouncer, running_pgbouncer

KEY = migrations._ADVISORY_LOCK_KEY
ALL = ["0001", "0002", "0003", "0004", "0005", "0006"]
SAVERS = ["asyncpg", "psycopg-async", "psycopg-sync"]


def _conninfo(database: str, **extra: Any) -> dict[str, Any]:
    url = server_url()
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username or "postgres",
        "dbname": database,
        **extra,
    }


def hold(database: str, kind: str, application_name: str) -> psycopg.Connection[Any]:
    """Another session holding the upgrade lock: a session-level lock (as an older
    release took it, or as one stranded on a pooled connection) or a transaction-level
    one (as a migrator of this release holds it)."""
    conn = psycopg.connect(
        **_conninfo(database, application_name=application_name),
        autocommit=kind == "session",
    )
    function = "pg_advisory_lock" if kind == "session" else "pg_advisory_xact_lock"
    conn.execute(f"SELECT {function}(%s)", (KEY,))  # function name from this module
    return conn


def lock_holders(database: str) -> list[int]:
    """Pids holding our advisory lock in `database`, seen on a direct connection."""
    with psycopg.connect(**_conninfo(database), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND d.datname = %s AND l.classid = 0 "
            "AND l.objid = %s AND l.objsubid = 1",
            (database, KEY),
        ).fetchall()
    return [row[0] for row in rows]


def setup_with(
    kind: str, url_of: Callable[[str], str], **engine_options: Any
) -> Callable[..., list[str]]:
    """`setup(**kwargs)` of a fresh saver of `kind` on the URL `url_of(driver)` gives,
    run to completion from sync code (the engine disposed after)."""

    def run(**kwargs: Any) -> list[str]:
        if kind == "psycopg-sync":
            engine = create_engine(url_of("psycopg"), **engine_options)
            try:
                return SQLAlchemySaver(engine).setup(**kwargs)
            finally:
                engine.dispose()

        async def go() -> list[str]:
            driver = "asyncpg" if kind == "asyncpg" else "psycopg"
            engine = create_async_engine(url_of(driver), **engine_options)
            try:
                return await AsyncSQLAlchemySaver(engine).setup(**kwargs)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    return run


def direct(database: str) -> Callable[[str], str]:
    return lambda driver: database_url(database, driver).render_as_string(False)


@pytest.mark.parametrize("holder_kind", ["session", "transaction"])
@pytest.mark.parametrize("kind", SAVERS)
def test_setup_gives_up_naming_the_holder(
    fresh_pg: str, kind: str, holder_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="checkpointer")
    holder = hold(fresh_pg, holder_kind, "rogue-migrator")
    pid = holder.info.backend_pid
    setup = setup_with(kind, direct(fresh_pg))
    try:
        start = time.monotonic()
        with pytest.raises(MigrationLockTimeoutError) as raised:
            setup(lock_timeout=1.0)
        waited = time.monotonic() - start
        message = str(raised.value)
        assert 1.0 <= waited < 15, waited
        assert "gave up after waiting 1 s for the lock that serializes upgrades" in message
        assert f"pid {pid} (application_name 'rogue-migrator', client_addr 127.0.0.1:" in message
        state = "idle" if holder_kind == "session" else "idle in transaction"
        assert f"state '{state}'" in message
        assert f"SELECT pg_terminate_backend({pid})" in message
        assert "pass lock_timeout=<seconds>" in message
        waiting = "waiting for the lock that serializes upgrades of this database (up to "
        assert waiting in caplog.text  # a start-up that waits says so, once
        assert caplog.text.count("waiting for") == 1
        with with_conn(sync_pg_url(fresh_pg)) as conn:
            assert inspect(conn).get_table_names() == []  # it waited before doing anything
    finally:
        holder.close()
    assert setup() == ALL
    assert lock_holders(fresh_pg) == []


@pytest.mark.parametrize("kind", ["asyncpg", "psycopg-sync"])
def test_setup_waits_for_a_migrator_that_finishes(fresh_pg: str, kind: str) -> None:
    holder = hold(fresh_pg, "transaction", "slow-migrator")
    timer = threading.Timer(1.5, holder.close)
    start = time.monotonic()
    timer.start()
    try:
        assert setup_with(kind, direct(fresh_pg))(lock_timeout=60) == ALL
    finally:
        timer.cancel()
        holder.close()
    assert time.monotonic() - start >= 1.5
    assert lock_holders(fresh_pg) == []


def test_lock_timeout_default_and_bad_values(fresh_pg: str) -> None:
    """60 s unless told otherwise, on every entry point; a bad value is a `ValueError`
    before anything is done; None waits without a limit."""
    assert DEFAULT_LOCK_TIMEOUT == 60
    for function in (
        AsyncSQLAlchemySaver.setup,
        SQLAlchemySaver.setup,
        migrations.upgrade,
        migrations.aupgrade,
        migrations.downgrade,
    ):
        parameter = pyinspect.signature(function).parameters["lock_timeout"]
        assert parameter.default == DEFAULT_LOCK_TIMEOUT, function
    setup = setup_with("psycopg-sync", direct(fresh_pg))
    for bad in (-1, float("nan"), True, "5"):
        with pytest.raises(ValueError, match="lock_timeout must be a number of seconds"):
            setup(lock_timeout=bad)
    assert setup(lock_timeout=None) == ALL
    assert setup(lock_timeout=0) == []


def test_no_lock_is_left_behind(fresh_pg: str) -> None:
    """Not after an upgrade that fails, one that times out, nor one that succeeds."""
    url = sync_pg_url(fresh_pg)
    engine = create_engine(url)
    try:
        with engine.connect() as conn, pytest.raises(CommandError, match="nope"):
            migrations.upgrade(conn, "nope")
        assert lock_holders(fresh_pg) == []
        holder = hold(fresh_pg, "transaction", "x")
        with engine.connect() as conn, pytest.raises(MigrationLockTimeoutError):
            migrations.upgrade(conn, lock_timeout=0.2)
        holder.close()
        assert lock_holders(fresh_pg) == []
        with engine.connect() as conn:
            assert migrations.upgrade(conn) == ALL
            assert lock_holders(fresh_pg) == []
            migrations.downgrade(conn, "0001")
        assert lock_holders(fresh_pg) == []
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()


def test_two_setups_on_one_event_loop(fresh_pg: str, tmp_path: Path) -> None:
    """Setups of different databases awaited together on one loop: one waits for the
    other's Alembic run without blocking the loop that run needs (PostgreSQL, SQLite)."""
    other = f"cp_{uuid.uuid4().hex[:12]}"
    _create_database(other)
    urls = [
        database_url(fresh_pg, "asyncpg").render_as_string(False),
        database_url(other, "psycopg").render_as_string(False),
        f"sqlite+aiosqlite:///{tmp_path}/one.db",
        f"sqlite+aiosqlite:///{tmp_path}/two.db",
    ]

    async def both() -> list[list[str]]:
        engines = [create_async_engine(url) for url in urls]
        try:
            savers = [AsyncSQLAlchemySaver(engine) for engine in engines]
            return await asyncio.wait_for(
                asyncio.gather(*(saver.setup(lock_timeout=30) for saver in savers)), 60
            )
        finally:
            for engine in engines:
                await engine.dispose()

    try:
        assert asyncio.run(both()) == [ALL] * 4
    finally:
        drop_database(other)


# -- a migrator killed while it holds the lock -----------------------------------------

HOLDER = """
import sys, time
from sqlalchemy import create_engine
from checkpointer import migrations

engine = create_engine(sys.argv[1], **eval(sys.argv[2]))
with engine.connect() as conn, migrations._serialized(conn, None):
    print("held", flush=True)
    time.sleep(600)
"""


def _killed_holder(url: str, options: dict[str, Any]) -> None:
    """Start a process that takes the lock as `setup()` does, then SIGKILL it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, repr(options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == "held", line or process.communicate()[1]
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    with running_pgbouncer(pool_size=3) as running:
        yield running


def test_a_killed_migrator_leaves_no_lock(fresh_pg: str, bouncer: PgBouncer) -> None:
    """Killed on a direct connection, and killed behind PgBouncer (whose server
    connection outlives the client): the next `setup()` gets the lock at once."""
    _killed_holder(sync_pg_url(fresh_pg), {})
    assert setup_with("psycopg-sync", direct(fresh_pg))(lock_timeout=10) == ALL
    _killed_holder(bouncer.url(fresh_pg, "psycopg"), ENGINE_OPTIONS["psycopg"])
    deadline = time.monotonic() + 10
    while lock_holders(fresh_pg) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock_holders(fresh_pg) == []
    assert setup_with("asyncpg", direct(fresh_pg))(lock_timeout=10) == []


def test_setup_through_pgbouncer(fresh_pg: str, bouncer: PgBouncer) -> None:
    """Four pods set up one fresh database at once through PgBouncer in transaction
    mode (three server connections), with every saver kind: all succeed, the upgrade
    runs once, no lock is left on any server connection, and the next `setup()` is
    immediate."""

    def through(driver: str) -> str:
        return bouncer.url(fresh_pg, driver)

    runs = [
        setup_with(kind, through, **ENGINE_OPTIONS["asyncpg" if kind == "asyncpg" else "psycopg"])
        for kind in [*SAVERS, "asyncpg"]
    ]
    results: list[list[str]] = []
    errors: list[BaseException] = []
    go = threading.Barrier(len(runs))

    def pod(run: Callable[..., list[str]]) -> None:
        go.wait()
        try:
            results.append(run(lock_timeout=30))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=pod, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sorted(results, key=len) == [[], [], [], ALL]
    with with_conn(sync_pg_url(fresh_pg)) as conn:
        assert versions(conn) == [head()]
    assert lock_holders(fresh_pg) == []
    start = time.monotonic()
    for run in runs:
        assert run(lock_timeout=5) == []
    assert time.monotonic() - start < 20
    assert lock_holders(fresh_pg) == []


# -- SQLite, and the lock every upgrade in one process takes ----------------------------


def _sqlite_setups(path: Path) -> list[Callable[..., list[str]]]:
    def sync_setup(**kwargs: Any) -> list[str]:
        engine = create_engine(f"sqlite:///{path}")
        try:
            return SQLAlchemySaver(engine).setup(**kwargs)
        finally:
            engine.dispose()

    def async_setup(**kwargs: Any) -> list[str]:
        async def go() -> list[str]:
            engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
            try:
                return await AsyncSQLAlchemySaver(engine).setup(**kwargs)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    return [sync_setup, async_setup]


def test_sqlite_setup_gives_up_naming_the_holder(tmp_path: Path) -> None:
    """The lock file of a SQLite database says which process holds it."""
    path = tmp_path / "held.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        lock = migrations._FileLock(migrations._lock_file(conn))
    engine.dispose()
    assert lock.try_take()
    try:
        for setup in _sqlite_setups(path):
            start = time.monotonic()
            with pytest.raises(MigrationLockTimeoutError) as raised:
                setup(lock_timeout=0.5)
            assert 0.5 <= time.monotonic() - start < 10
            assert f"held by pid {os.getpid()} on host " in str(raised.value)
            assert str(lock.path) in str(raised.value)
    finally:
        lock.release()
    assert [setup() for setup in _sqlite_setups(path)] == [ALL, []]


def test_an_upgrade_running_in_this_process_is_waited_for_up_to_the_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Alembic runs one upgrade per process at a time; that wait has the same limit."""
    caplog.set_level(logging.INFO, logger="checkpointer")
    with migrations._process_lock:
        for setup in _sqlite_setups(tmp_path / "busy.db"):
            with pytest.raises(MigrationLockTimeoutError, match="another upgrade in this process"):
                setup(lock_timeout=0.3)
    assert caplog.text.count("waiting for another upgrade in this process") == 2


@pytest.mark.parametrize("kind", ["asyncpg", "psycopg-sync"])
def test_a_pool_without_room_for_the_lock_says_so(fresh_pg: str, kind: str) -> None:
    """The lock needs a second connection of the engine: a pool of one gets a message
    that says so after its own timeout (not the pool's bare error); a pool of two works."""
    options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.5}
    with pytest.raises(MigrationLockTimeoutError, match="room for one more connection"):
        setup_with(kind, direct(fresh_pg), **options)()
    assert lock_holders(fresh_pg) == []
    assert setup_with(kind, direct(fresh_pg), pool_size=2, max_overflow=0)() == ALL
