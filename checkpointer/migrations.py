"""Find the shipped Alembic scripts, build their `Config` in code, upgrade with a lock,
and tell a saver whether the database is at the revision this package expects.

The scripts live at the repository root (`alembic/`) and are copied into the wheel as
`checkpointer/_alembic`. Our revisions are recorded in their own version table, so a
host application's `alembic_version` is never touched. With a `schema`, the tables and
the version table live in that PostgreSQL schema, and every statement names it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
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
from sqlalchemy import Column, Connection, MetaData, String, Table, func, inspect, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command

from .errors import SchemaNotReadyError

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

_ADVISORY_LOCK_KEY = 0x6C67_6370  # "lgcp": serializes upgrades across processes
_process_lock = threading.Lock()  # Alembic keeps module-level state
_file_locks: dict[int, tuple[Path, TextIO]] = {}  # SQLite: connection id -> held lock


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


def validate_schema(schema: str | None, dialect_name: str) -> str | None:
    """`schema` if it can be used on `dialect_name`; a clear error otherwise."""
    if schema is None:
        return None
    if not isinstance(schema, str) or not schema.strip():
        raise ValueError(f"schema must be a non-empty string or None, not {schema!r}")
    if dialect_name != "postgresql":
        raise ValueError(
            f"schema={schema!r} is supported on PostgreSQL only, not on {dialect_name}: "
            "use a database (file) of its own instead"
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


def _try_lock(connection: Connection) -> bool:
    """Take the lock that serializes upgrades of this database, without waiting.

    PostgreSQL: a session advisory lock. Waiting inside `pg_advisory_lock()` would
    deadlock: the waiter's statement holds a snapshot, and the holder's CREATE INDEX
    CONCURRENTLY waits for every older snapshot to go away. So waiters poll, each poll
    a short transaction of its own. SQLite: an exclusive `flock` on a lock file of its
    own (never the database file: closing a descriptor of it would drop SQLite's locks).
    """
    if connection.dialect.name == "postgresql":
        taken = bool(connection.scalar(select(func.pg_try_advisory_lock(_ADVISORY_LOCK_KEY))))
        connection.commit()
        return taken
    path = _lock_file(connection)
    if path is None or fcntl is None:
        return True
    handle = path.open("a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The holder removes the file before releasing it: a lock on a file no longer
        # at `path` (or replaced) is no lock at all, so try again.
        if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
            raise BlockingIOError
    except (BlockingIOError, FileNotFoundError):
        handle.close()
        return False
    _file_locks[id(connection)] = (path, handle)
    return True


def _lock_file(connection: Connection) -> Path | None:
    """Where SQLite upgrades of this database file are serialized (None: nothing to
    serialize, e.g. an in-memory database)."""
    database = connection.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    key = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"checkpointer-migrate-{key}.lock"


def _unlock(connection: Connection) -> None:
    if connection.in_transaction():
        connection.rollback()
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_unlock(_ADVISORY_LOCK_KEY)))
        connection.commit()
    held = _file_locks.pop(id(connection), None)
    if held is not None:
        path, handle = held
        path.unlink(missing_ok=True)  # no lock files left behind in the temp directory
        handle.close()  # releases the flock


def _upgrade_locked(connection: Connection, revision: str, schema: str | None) -> list[str]:
    applied: list[str] = []

    def record(*, step: MigrationInfo, **_: Any) -> None:
        applied.extend(step.up_revision_ids if step.is_upgrade else ())

    with _process_lock:
        command.upgrade(
            alembic_config(connection, schema=schema, on_version_apply=record), revision
        )
        _settle(connection)
    return applied


def _polls() -> Iterator[float]:
    """Seconds between two attempts at the lock: quick at first, then every second."""
    delay = 0.02
    while True:
        yield delay
        delay = min(delay * 2, 1.0)


@contextmanager
def _serialized(connection: Connection) -> Iterator[None]:
    """Hold the upgrade lock on `connection` (PostgreSQL; elsewhere a no-op)."""
    for delay in _polls():
        if _try_lock(connection):
            break
        time.sleep(delay)
    try:
        yield
    finally:
        _unlock(connection)


def upgrade(
    connection: Connection, revision: str = "head", *, schema: str | None = None
) -> list[str]:
    """Upgrade on the caller's connection and return the revisions this call applied
    (empty when the database was already there, e.g. another pod got there first).

    A transaction the caller left open on `connection` is committed first. Concurrent
    callers (pods starting together) wait for each other, and the upgrade runs once: a
    session advisory lock on PostgreSQL, a lock file for a SQLite database file.
    """
    validate_schema(schema, connection.dialect.name)
    _settle(connection)
    with _serialized(connection):
        return _upgrade_locked(connection, revision, schema)


def downgrade(connection: Connection, revision: str, *, schema: str | None = None) -> None:
    """Downgrade on the caller's connection (`"base"` removes our tables), under the
    same lock as upgrades."""
    validate_schema(schema, connection.dialect.name)
    _settle(connection)
    with _serialized(connection), _process_lock:
        command.downgrade(alembic_config(connection, schema=schema), revision)
        _settle(connection)


async def aupgrade(
    engine: AsyncEngine, revision: str = "head", *, schema: str | None = None
) -> list[str]:
    """`upgrade` on a connection of an `AsyncEngine`; waits for the lock without
    blocking the event loop."""
    async with engine.connect() as conn:
        validate_schema(schema, conn.dialect.name)
        await conn.run_sync(_settle)
        for delay in _polls():
            if await conn.run_sync(_try_lock):
                break
            await asyncio.sleep(delay)
        try:
            return await conn.run_sync(_upgrade_locked, revision, schema)
        finally:
            await conn.run_sync(_unlock)


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
