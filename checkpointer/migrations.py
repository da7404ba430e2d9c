"""Find the shipped Alembic scripts, build their `Config` in code, and upgrade with a
lock, so `setup()` works from an installed wheel with no repository around.

The scripts live at the repository root (`alembic/`) and are copied into the wheel as
`checkpointer/_alembic`. Our revisions are recorded in their own version table, so a
host application's `alembic_version` is never touched.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic.config import Config
from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command

VERSION_TABLE = "checkpointer_alembic_version"
"""Where our Alembic revision is recorded (not `alembic_version`, which is the host's)."""

URL_ENV = "CHECKPOINTER_DATABASE_URL"
"""The environment variable `alembic upgrade head` reads the database URL from."""

_ADVISORY_LOCK_KEY = 0x6C67_6370  # "lgcp": serializes setup() across processes
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


def alembic_config(connection: Connection | None = None, **attributes: Any) -> Config:
    """An Alembic `Config` for our scripts; with `connection`, migrations run on it."""
    config = Config()
    config.set_main_option("script_location", script_location())
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes.update(attributes)
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade on the caller's connection. On PostgreSQL a session advisory lock makes
    concurrent callers (pods starting together) wait, and the upgrade runs once."""
    postgres = connection.dialect.name == "postgresql"
    with _process_lock:
        if connection.in_transaction():
            connection.commit()
        if postgres:
            connection.execute(select(func.pg_advisory_lock(_ADVISORY_LOCK_KEY)))
            connection.commit()
        try:
            command.upgrade(alembic_config(connection), revision)
            if connection.in_transaction():
                connection.commit()
        finally:
            if postgres:
                connection.execute(select(func.pg_advisory_unlock(_ADVISORY_LOCK_KEY)))
                connection.commit()


async def aupgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.connect() as conn:
        await conn.run_sync(upgrade, revision)
