"""Find the shipped Alembic scripts, build their `Config` in code, upgrade with a lock,
and tell a saver whether the database is at the revision this package expects.

The scripts live at the repository root (`alembic/`) and are copied into the wheel as
`checkpointer/_alembic`. Our revisions are recorded in their own version table, so a
host application's `alembic_version` is never touched. With a `schema`, the tables and
the version table live in that PostgreSQL schema, and every statement names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

try:
    import fcntl
except ImportError:  # Windows: SQLite upgrades are not serialized across processes
    fcntl = None  # type: ignore[assignment]

from alembic.config import Config
from alembic.runtime.migration import MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    cast,
    column,
    func,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alembic import command

from .errors import MigrationLockTimeoutError, SchemaNotReadyError

log = logging.getLogger(__name__)

VERSION_TABLE = "checkpointer_alembic_version"
"""Where our Alembic revision is recorded (not `alembic_version`, which is the host's)."""

URL_ENV = "CHECKPOINTER_DATABASE_URL"
"""The environment variable `alembic upgrade head` reads the database URL from."""

SCHEMA_ENV = "CHECKPOINTER_SCHEMA"
"""The environment variable `alembic upgrade head` reads the PostgreSQL schema from."""

OFFICIAL_INDEXES = frozenset(
    {
        "checkpoints_thread_id_idx",
        "checkpoint_blobs_thread_id_idx",
        "checkpoint_writes_thread_id_idx",
    }
)
"""Indexes langgraph-checkpoint-postgres builds. They are left alone when a database it
set up is adopted (our primary keys already lead with `thread_id`), and are not drift."""

DEFAULT_LOCK_TIMEOUT = 60.0
"""Seconds `setup()` waits by default for another migrator of the same database before
`MigrationLockTimeoutError` names the holder. Pods starting together wait for one
migration; on empty tables the whole upgrade takes well under a second. An upgrade that
builds indexes on large tables can take minutes: pass a larger `lock_timeout`."""

_ADVISORY_LOCK_KEY = 0x6C67_6370  # "lgcp": serializes upgrades across processes
_process_lock = threading.Lock()  # Alembic keeps module-level state


def script_location() -> str:
    """The packaged scripts when installed, else the repository's `alembic/`."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_alembic", here.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return str(candidate)
    raise FileNotFoundError(
        "the Alembic scripts are missing: neither checkpointer/_alembic (installed "
        "package) nor alembic/ (repository checkout) holds an env.py"
    )


SCHEMA_MAX_BYTES = 63
"""PostgreSQL's identifier limit (NAMEDATALEN - 1): a longer name is silently truncated
by the server, so the schema created is not the one every later statement names."""


def validate_schema(schema: str | None, dialect_name: str) -> str | None:
    """`schema` if it can be used on `dialect_name`; a `ValueError` naming the rule
    otherwise. Checked before anything is created, so a refused name leaves nothing.

    Accepted: any PostgreSQL schema name of 1 to 63 bytes (UTF-8) that every statement
    can name exactly; it is always quoted, so case, spaces inside, quotes, `-`, `$`,
    non-ASCII letters all work. Refused, each for a reason:
    - longer than 63 bytes: PostgreSQL truncates it (`"Ü" * 32` is 64 bytes);
    - a `.`: SQLAlchemy reads `"a.b"` as schema `b` of database `a`;
    - a `%`: psycopg's parameter marker; SQLAlchemy's escaping of it is not undone in
      statements sent without parameters, so the name arrives as `%%`;
    - NUL or another control character (`\\n`, `\\t`, ...): NUL cannot be stored, the
      others break the commands and log lines that name the schema;
    - leading or trailing whitespace: invisible in logs and configuration, and a
      different schema from the name without it;
    - a `pg_` prefix (PostgreSQL reserves it) and `information_schema` (the SQL
      standard's; `pg_dump` skips both, so the checkpoints would miss every backup).
    """
    if schema is None:
        return None
    if not isinstance(schema, str) or not schema.strip():
        raise ValueError(f"schema must be a non-empty string or None, not {schema!r}")
    if dialect_name != "postgresql":
        raise ValueError(
            f"schema={schema!r} is supported on PostgreSQL only, not on {dialect_name}: "
            "use a database (file) of its own instead"
        )
    size = len(schema.encode("utf-8"))
    if size > SCHEMA_MAX_BYTES:
        raise ValueError(
            f"schema={schema!r} is {size} bytes long in UTF-8: PostgreSQL names are at "
            f"most {SCHEMA_MAX_BYTES} bytes (longer ones are truncated); choose a shorter name"
        )
    for char, rule in (
        (".", "a dot makes SQLAlchemy read it as <database>.<schema>"),
        ("%", "a percent sign is psycopg's parameter marker and does not survive escaping"),
    ):
        if char in schema:
            raise ValueError(f"schema={schema!r} contains {char!r}: {rule}")
    control = next((c for c in schema if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise ValueError(
            f"schema={schema!r} contains the control character {control!r}: PostgreSQL "
            "cannot store NUL, and the others break the commands and logs naming it"
        )
    if schema != schema.strip():
        raise ValueError(
            f"schema={schema!r} starts or ends with whitespace: remove it (a name with "
            "invisible spaces is a different schema from the one without)"
        )
    if schema.startswith("pg_") or schema == "information_schema":
        raise ValueError(
            f"schema={schema!r} is reserved for PostgreSQL's system schemas (a `pg_` "
            "prefix, `information_schema`), which pg_dump skips: choose another name"
        )
    return schema


def alembic_config(
    connection: Connection | None = None, *, schema: str | None = None, **attributes: Any
) -> Config:
    """An Alembic `Config` for our scripts; with `connection`, migrations run on it.

    The schema is always set here (even to None), so env.py never falls back to the
    environment variable when called from code.
    """
    config = Config()
    config.set_main_option("script_location", script_location())
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    config.attributes.update(attributes)
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(script_location())


def head() -> str:
    """The newest revision this installed package ships."""
    revision = _script().get_current_head()
    assert revision is not None, "the Alembic scripts hold no revision"
    return revision


def known_revisions() -> frozenset[str]:
    return frozenset(rev.revision for rev in _script().walk_revisions())


def migration_schema() -> str | None:
    """Inside a revision: the schema this run migrates (None: the default one)."""
    from alembic import op

    return op.get_context().version_table_schema


def _settle(connection: Connection) -> None:
    """Commit a transaction the caller left open: revisions that build indexes
    concurrently must run outside any transaction."""
    if connection.in_transaction():
        connection.commit()


class _AdvisoryLock:
    """PostgreSQL: the lock that serializes upgrades of one database.

    A transaction-level advisory lock (`pg_try_advisory_xact_lock`) taken in a
    transaction of its own, on a connection of its own (`holder`, READ COMMITTED), kept
    open while the upgrade runs on the caller's connection and rolled back after it:

    - It cannot outlive its transaction. A crashed process, a killed backend or a
      pooler that ends the client all end the transaction, and the lock with it. (The
      session-level lock used before stayed with its server connection: through
      PgBouncer in transaction mode the unlock ran on another server, the lock stayed
      on a pooled one, and every later `setup()` waited forever.)
    - An open transaction pins one server connection in a transaction-mode pooler, so
      the lock, its holder and its release are on one server; the upgrade's own
      transactions may run on any other.
    - The upgrade cannot hold it itself: its revisions commit one by one, and build
      indexes concurrently outside any transaction.
    - After its one statement the holder keeps no snapshot (`backend_xmin` is null in
      READ COMMITTED), so CREATE INDEX CONCURRENTLY, which waits for older snapshots,
      does not wait for it. Waiters must not block inside `pg_advisory_xact_lock()`:
      that statement's snapshot is one the index build would wait for, a deadlock.
      So waiters poll, each attempt a short transaction rolled back at once.

    It excludes the session-level lock of the same key, so releases using that one
    and this one still take turns.
    """

    def try_take(self, holder: Connection) -> bool:
        taken = holder.scalar(select(func.pg_try_advisory_xact_lock(_ADVISORY_LOCK_KEY)))
        if not taken:
            holder.rollback()
            return False
        # A statement that needs no snapshot: it replaces the lock statement's portal,
        # which asyncpg leaves open with its snapshot (`backend_xmin` set) until the
        # transaction ends, and CREATE INDEX CONCURRENTLY would wait for that snapshot
        # forever. It also keeps the server from ending the idle transaction.
        holder.execute(_KEEP_IDLE_TRANSACTION)
        return True

    def holders(self, holder: Connection) -> str:
        try:
            rows = holder.execute(_holders_query()).mappings().all()
        finally:
            holder.rollback()
        if not rows:
            return "no session holds it now (it was released a moment ago): try again"
        return (
            "held by "
            + "; ".join(_describe(row) for row in rows)
            + (
                ". If that session is not migrating (state 'idle': e.g. a session-level lock "
                "an older release left on a pooled connection), end it with SELECT "
                f"pg_terminate_backend({rows[0]['pid']})"
            )
        )

    def release(self, holder: Connection) -> None:
        # A holder whose connection was lost has no transaction, and no lock, left.
        with contextlib.suppress(DBAPIError):
            holder.rollback()


class _NamedLock:
    """MySQL/MariaDB: `GET_LOCK`, a named lock of the server, held by the session of a
    connection of its own (`holder`) while the upgrade runs on the caller's (MySQL
    commits DDL at once, so no transaction could hold it). It ends with that session:
    a crashed process or a killed connection leaves no lock behind. The name is the
    database's, so upgrades of other databases on the server do not wait."""

    def try_take(self, holder: Connection) -> bool:
        taken = holder.scalar(select(func.get_lock(_lock_name(holder), 0)))
        holder.rollback()  # end the implicit transaction; the lock is the session's
        return bool(taken)

    def holders(self, holder: Connection) -> str:
        try:
            who = holder.execute(
                select(_processlist.c.ID, _processlist.c.USER, _processlist.c.HOST).where(
                    func.is_used_lock(_lock_name(holder)) == _processlist.c.ID
                )
            ).first()
            holder.rollback()
        except DBAPIError:
            who = None
        if who is None:
            return f"held by another connection (named lock {_lock_name(holder)!r})"
        return (
            f"held by connection {who[0]} (user {who[1]!r}, host {who[2]!r}; named lock "
            f"{_lock_name(holder)!r}; `KILL {who[0]}` ends it)"
        )

    def release(self, holder: Connection) -> None:
        with contextlib.suppress(DBAPIError):
            holder.scalar(select(func.release_lock(_lock_name(holder))))
            holder.rollback()


_processlist = table(
    "PROCESSLIST", column("ID"), column("USER"), column("HOST"), schema="information_schema"
)


def _lock_name(connection: Connection) -> str:
    """The named lock of this database's upgrades (at most 64 characters, the limit)."""
    database = connection.engine.url.database or ""
    key = hashlib.sha256(database.encode()).hexdigest()[:24]
    return f"checkpointer_migrate_{key}"


def _server_lock(dialect_name: str) -> _AdvisoryLock | _NamedLock | None:
    """The lock a database server keeps for our upgrades; None: a lock file (SQLite)."""
    if dialect_name == "postgresql":
        return _AdvisoryLock()
    if dialect_name in ("mysql", "mariadb"):
        return _NamedLock()
    return None


_KEEP_IDLE_TRANSACTION = text("SET LOCAL idle_in_transaction_session_timeout = 0")
"""A constant (Core has no SET construct); see `_AdvisoryLock.try_take`."""

_pg_locks = table(
    "pg_locks",
    *map(column, ("locktype", "database", "classid", "objid", "objsubid", "pid", "granted")),
    schema="pg_catalog",
)
_pg_activity = table(
    "pg_stat_activity",
    *map(
        column,
        ("pid", "application_name", "client_addr", "client_port", "usename", "state"),
    ),
    column("xact_start"),
    schema="pg_catalog",
)
_pg_database = table("pg_database", column("oid"), column("datname"), schema="pg_catalog")


@functools.cache
def _holders_query() -> Any:
    """Who holds our advisory lock in this database (a bigint key is stored as classid
    = high 32 bits, objid = low 32 bits, objsubid = 1), and what `pg_stat_activity`
    says about them (a role without pg_read_all_stats sees NULLs for others' rows)."""
    locks, activity = _pg_locks, _pg_activity
    this_database = (
        select(_pg_database.c.oid)
        .where(_pg_database.c.datname == func.current_database())
        .scalar_subquery()
    )
    return (
        select(
            locks.c.pid,
            activity.c.application_name,
            activity.c.client_addr,
            activity.c.client_port,
            activity.c.usename,
            activity.c.state,
            activity.c.xact_start,
        )
        .select_from(locks.outerjoin(activity, activity.c.pid == locks.c.pid))
        .where(
            locks.c.locktype == "advisory",
            locks.c.database == this_database,
            cast(locks.c.classid, BigInteger) == _ADVISORY_LOCK_KEY >> 32,
            cast(locks.c.objid, BigInteger) == _ADVISORY_LOCK_KEY & 0xFFFF_FFFF,
            cast(locks.c.objsubid, BigInteger) == 1,
            locks.c.granted.is_(True),
        )
        .order_by(locks.c.pid)
    )


def _describe(row: Any) -> str:
    def shown(value: Any) -> str:
        return "unknown" if value is None else repr(str(value))

    client = "a local socket, or not visible to this role"
    if row["client_addr"] is not None:
        client = f"{row['client_addr']}:{row['client_port']}"
    since = row["xact_start"]
    return (
        f"pid {row['pid']} (application_name {shown(row['application_name'])}, "
        f"client_addr {client}, user {shown(row['usename'])}, state {shown(row['state'])}"
        + (f", transaction started {since.isoformat(sep=' ', timespec='seconds')}" if since else "")
        + ")"
    )


class _FileLock:
    """SQLite: an exclusive `flock` on a lock file of its own (never the database file:
    closing a descriptor of it would drop SQLite's locks). The holder writes its pid
    and host into the file, for the waiter's error message."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.handle: TextIO | None = None

    def try_take(self) -> bool:
        if self.path is None or fcntl is None:
            return True
        handle = self.path.open("a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The holder removes the file before releasing it: a lock on a file no
            # longer at `path` (or replaced) is no lock at all, so try again.
            if os.stat(self.path).st_ino != os.fstat(handle.fileno()).st_ino:
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        handle.flush()
        self.handle = handle
        return True

    def holders(self) -> str:
        try:
            who = self.path.read_text().strip() if self.path else ""
        except OSError:
            who = ""
        return f"held by {who or 'a process that has not said who it is'} (lock file {self.path})"

    def release(self) -> None:
        if self.handle is not None and self.path is not None:
            self.path.unlink(missing_ok=True)  # no lock files left in the temp directory
            self.handle.close()  # releases the flock
            self.handle = None


def _lock_file(connection: Connection) -> Path | None:
    """Where SQLite upgrades of this database file are serialized (None: nothing to
    serialize, e.g. an in-memory database)."""
    database = connection.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    key = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"checkpointer-migrate-{key}.lock"


def _upgrade_locked(connection: Connection, revision: str, schema: str | None) -> list[str]:
    """The upgrade itself; the caller holds the database's lock and `_process_lock`."""
    applied: list[str] = []

    def record(*, step: MigrationInfo, **_: Any) -> None:
        applied.extend(step.up_revision_ids if step.is_upgrade else ())

    command.upgrade(alembic_config(connection, schema=schema, on_version_apply=record), revision)
    _settle(connection)
    return applied


def _deadline(lock_timeout: float | None) -> float | None:
    """When waiting for the lock ends (`time.monotonic()`), None: never."""
    if lock_timeout is None:
        return None
    if (
        isinstance(lock_timeout, bool)
        or not isinstance(lock_timeout, (int, float))
        or not lock_timeout >= 0
    ):
        raise ValueError(
            f"lock_timeout must be a number of seconds >= 0 (or None: wait without a "
            f"limit), not {lock_timeout!r}"
        )
    return time.monotonic() + lock_timeout


def _pauses(deadline: float | None, what: str) -> Iterator[float]:
    """Pauses before each attempt at a lock: none before the first, then quick ones,
    then one a second, cut short at the deadline; ends once it has passed. The first
    wait is logged, so a start-up that waits says for what."""
    delay = 0.0
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline and delay:
            return
        if delay == 0.02:
            limit = "no limit" if deadline is None else f"up to {deadline - now:.1f} s"
            log.info("waiting for %s (%s)", what, limit)
        yield delay if deadline is None else max(0.0, min(delay, deadline - now))
        delay = min(max(delay * 2, 0.02), 1.0)


def _timed_out(lock_timeout: float | None, what: str, holders: str) -> MigrationLockTimeoutError:
    return MigrationLockTimeoutError(
        f"gave up after waiting {lock_timeout:g} s for {what}: {holders}. Another setup() "
        "or upgrade may still be running (one that builds indexes on large tables can take "
        "minutes): to wait longer, pass lock_timeout=<seconds> (None: no limit) to setup()"
    )


_DATABASE_LOCK = "the lock that serializes upgrades of this database"
_PROCESS_LOCK = "another upgrade in this process (Alembic runs one at a time per process)"


def _take(try_take: Callable[[], bool], deadline: float | None, what: str) -> bool:
    for pause in _pauses(deadline, what):
        time.sleep(pause)
        if try_take():
            return True
    return False


async def _atake(
    try_take: Callable[[], Awaitable[bool]], deadline: float | None, what: str
) -> bool:
    for pause in _pauses(deadline, what):
        await asyncio.sleep(pause)
        if await try_take():
            return True
    return False


def _take_process_lock(deadline: float | None, lock_timeout: float | None) -> None:
    """Alembic keeps module-level state: one upgrade per process at a time."""
    if _process_lock.acquire(blocking=False):
        return
    log.info("waiting for %s", _PROCESS_LOCK)
    wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
    if not _process_lock.acquire(timeout=wait):
        raise _timed_out(lock_timeout, _PROCESS_LOCK, "it has not finished")


async def _atake_process_lock(deadline: float | None, lock_timeout: float | None) -> None:
    """Never blocks the event loop: another upgrade on this loop may hold the lock while
    it awaits its database (a blocking acquire there would wait for it forever)."""
    if not await _atake(_no_wait(_process_lock.acquire), deadline, _PROCESS_LOCK):
        raise _timed_out(lock_timeout, _PROCESS_LOCK, "it has not finished")


def _no_wait(acquire: Callable[..., bool]) -> Callable[[], Awaitable[bool]]:
    async def attempt() -> bool:
        return acquire(blocking=False)

    return attempt


@contextmanager
def _pool_room() -> Iterator[None]:
    """Opening the lock's own connection: a pool with no room for a second one (e.g.
    `pool_size=1, max_overflow=0`) gets a message that says so, not the pool's bare
    timeout."""
    try:
        yield
    except PoolTimeoutError as error:
        raise MigrationLockTimeoutError(
            "on PostgreSQL the upgrade lock is held on a second connection of the engine "
            "while the upgrade runs on the first, and the engine's pool gave none within its "
            f"timeout ({error}): give the pool room for one more connection (pool_size or "
            "max_overflow), or call setup() before the application holds its connections"
        ) from error


@contextmanager
def _serialized(connection: Connection, lock_timeout: float | None) -> Iterator[None]:
    """Hold this database's upgrade lock, then this process's (see `_AdvisoryLock`,
    `_FileLock`), or raise `MigrationLockTimeoutError` naming the holder."""
    deadline = _deadline(lock_timeout)
    advisory = _server_lock(connection.dialect.name)
    if advisory is not None:
        with _pool_room():
            holder = connection.engine.connect()
        with holder:
            holder.execution_options(isolation_level="READ COMMITTED")
            if not _take(lambda: advisory.try_take(holder), deadline, _DATABASE_LOCK):
                raise _timed_out(lock_timeout, _DATABASE_LOCK, advisory.holders(holder))
            try:
                _take_process_lock(deadline, lock_timeout)
                try:
                    yield
                finally:
                    _process_lock.release()
            finally:
                advisory.release(holder)
        return
    file_lock = _FileLock(_lock_file(connection))
    if not _take(file_lock.try_take, deadline, _DATABASE_LOCK):
        raise _timed_out(lock_timeout, _DATABASE_LOCK, file_lock.holders())
    try:
        _take_process_lock(deadline, lock_timeout)
        try:
            yield
        finally:
            _process_lock.release()
    finally:
        file_lock.release()


def upgrade(
    connection: Connection,
    revision: str = "head",
    *,
    schema: str | None = None,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
) -> list[str]:
    """Upgrade on the caller's connection and return the revisions this call applied
    (empty when the database was already there, e.g. another pod got there first).

    A transaction the caller left open on `connection` is committed first. Concurrent
    callers (pods starting together) wait for each other, and the upgrade runs once:
    an advisory lock on PostgreSQL (held on a second connection of the same engine),
    a lock file for a SQLite database file. A caller that waits longer than
    `lock_timeout` seconds gets `MigrationLockTimeoutError` naming the holder.
    """
    validate_schema(schema, connection.dialect.name)
    _settle(connection)
    with _serialized(connection, lock_timeout):
        return _upgrade_locked(connection, revision, schema)


def downgrade(
    connection: Connection,
    revision: str,
    *,
    schema: str | None = None,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
) -> None:
    """Downgrade on the caller's connection (`"base"` removes our tables), under the
    same lock as upgrades."""
    validate_schema(schema, connection.dialect.name)
    _settle(connection)
    with _serialized(connection, lock_timeout):
        command.downgrade(alembic_config(connection, schema=schema), revision)
        _settle(connection)


async def aupgrade(
    engine: AsyncEngine,
    revision: str = "head",
    *,
    schema: str | None = None,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
) -> list[str]:
    """`upgrade` on a connection of an `AsyncEngine`; waits for the locks without
    blocking the event loop."""
    validate_schema(schema, engine.dialect.name)
    deadline = _deadline(lock_timeout)
    async with engine.connect() as conn:
        await conn.run_sync(_settle)
        advisory = _server_lock(engine.dialect.name)
        if advisory is not None:
            with _pool_room():
                holder = await engine.connect().start()
            try:
                await holder.execution_options(isolation_level="READ COMMITTED")

                async def attempt() -> bool:
                    return await holder.run_sync(advisory.try_take)

                if not await _atake(attempt, deadline, _DATABASE_LOCK):
                    holders = await holder.run_sync(advisory.holders)
                    raise _timed_out(lock_timeout, _DATABASE_LOCK, holders)
                try:
                    return await _aupgrade_in_process(
                        conn, revision, schema, deadline, lock_timeout
                    )
                finally:
                    await holder.run_sync(advisory.release)
            finally:
                await holder.close()
        file_lock = _FileLock(await conn.run_sync(_lock_file))

        async def attempt_file() -> bool:
            return file_lock.try_take()

        if not await _atake(attempt_file, deadline, _DATABASE_LOCK):
            raise _timed_out(lock_timeout, _DATABASE_LOCK, file_lock.holders())
        try:
            return await _aupgrade_in_process(conn, revision, schema, deadline, lock_timeout)
        finally:
            file_lock.release()


async def _aupgrade_in_process(
    conn: AsyncConnection,
    revision: str,
    schema: str | None,
    deadline: float | None,
    lock_timeout: float | None,
) -> list[str]:
    await _atake_process_lock(deadline, lock_timeout)
    try:
        return await conn.run_sync(_upgrade_locked, revision, schema)
    finally:
        _process_lock.release()


def upgrade_from_host_env(connection: Connection, *, schema: str | None = None) -> list[str]:
    """Call at the end of a host application's `env.py`, on its connection, after its
    own migrations: when the host runs `alembic upgrade` (online), our tables are
    brought to head too, recorded in our own version table. For the host's other
    commands (`check`, `revision --autogenerate`, `downgrade`, `stamp`, `--sql`) it
    does nothing. Returns the revisions it applied.

    Where this Alembic does not look as tested (`_host_alembic`), it does nothing but
    log, at INFO on the `checkpointer` logger, the command to run instead."""
    from alembic import context as host_context

    host = _host_command(host_context)
    if host is _UNKNOWN:
        _log.info(
            "not migrating from the host's env.py: this Alembic's MigrationContext has no "
            "opts to tell the host's command by; run `python -m checkpointer%s upgrade "
            "head` after the host's upgrade",
            f" -x schema={schema}" if schema else "",
        )
        return []
    if host is not None:
        fn, offline = host
        if offline or getattr(fn, "__name__", "") != "upgrade":
            return []
    # Our own EnvironmentContext installs itself in the `alembic.context` module and
    # removes itself on exit, which would leave the host's command (not over yet)
    # without its own: the module's namespace is put back as it was.
    saved = dict(vars(host_context)) if host is not None else None
    try:
        return upgrade(connection, schema=schema)
    finally:
        if saved is not None:
            vars(host_context).update(saved)


_log = logging.getLogger("checkpointer")
_UNKNOWN = object()


def _host_command(host_context: Any) -> Any:
    """The command of the host's running Alembic environment, as (its function, offline),
    None outside one, or `_UNKNOWN` when its `MigrationContext` has no `opts` dict to
    read it from (public attributes, present in every Alembic this was run on, to 1.20).
    `alembic.context.get_context()` raises outside a configured environment."""
    try:
        migration = host_context.get_context()
    except Exception:
        return None
    opts = getattr(migration, "opts", None)
    if not isinstance(opts, dict):
        return _UNKNOWN
    return opts.get("fn"), bool(getattr(migration, "as_sql", False))


@functools.cache
def _version_table(schema: str | None) -> Table:
    return Table(VERSION_TABLE, MetaData(), Column("version_num", String(32)), schema=schema)


def current_revisions(connection: Connection, schema: str | None = None) -> set[str] | None:
    """The revisions recorded in the database, or None when it was never migrated."""
    if not inspect(connection).has_table(VERSION_TABLE, schema=schema):
        return None
    try:
        return set(connection.scalars(select(_version_table(schema).c.version_num)))
    except DBAPIError as error:
        if "permission denied" not in str(error.orig).lower():
            raise
        qualified = f"{schema}.{VERSION_TABLE}" if schema else VERSION_TABLE
        grants = f"GRANT USAGE ON SCHEMA {schema} TO <role>; " if schema else ""
        raise SchemaNotReadyError(
            f"this role may not read {qualified}, which the saver checks before first use: "
            f"{grants}GRANT SELECT ON {qualified} TO <role> (docs/deploying.md, Least privilege)"
        ) from error


def check_revision(connection: Connection, schema: str | None = None) -> None:
    """Raise `SchemaNotReadyError` unless the database is at this package's head.

    Read-only (a role that may only read and write rows can run it), and cheap enough
    to run once per saver: one catalog lookup and one row.
    """
    where = f" in schema {schema!r}" if schema else ""
    option = f" -x schema={schema}" if schema else ""
    fix = (
        f"run `alembic{option} upgrade head` (or `python -m checkpointer{option} upgrade "
        "head` where the package is installed), or `await saver.setup()` / `saver.setup()`, "
        "before using the saver"
    )
    found = current_revisions(connection, schema)
    expected = head()
    if not found:
        raise SchemaNotReadyError(
            f"the database{where} is not migrated (no revision in {VERSION_TABLE}): {fix}"
        )
    unknown = found - known_revisions()
    if unknown:
        raise SchemaNotReadyError(
            f"the database{where} is at revision {', '.join(sorted(unknown))}, which this "
            f"installed langgraph-checkpoint-sqlalchemy does not know (its newest is "
            f"{expected}): it was migrated by a newer release. Install that release, or "
            f"downgrade the database with it (`alembic{option} downgrade {expected}`)"
        )
    if found != {expected}:
        raise SchemaNotReadyError(
            f"the database{where} is at revision {', '.join(sorted(found))}, behind this "
            f"package's {expected}: {fix}"
        )
