"""URL resolution (`checkpointer.urls`) with every driver installed, as in the dev
environment; a missing driver is simulated in a subprocess (tests/deploy/test_urls.py),
since a module this process already imported cannot be hidden from `find_spec`."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from checkpointer import MissingDriverError
from checkpointer.urls import async_url, installed, migration_url, normalized, sync_url

RESOLVED = [
    # url, async, sync (migrations: sync)
    ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgres://u@h:5433/db", "postgresql+asyncpg://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
    ("sqlite:///state.db", "sqlite+aiosqlite:///state.db", "sqlite+pysqlite:///state.db"),
    ("sqlite://", "sqlite+aiosqlite://", "sqlite+pysqlite://"),
    # a driver named in the URL is kept, `postgres` read as `postgresql`
    ("postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db"),
    ("postgres+psycopg://h/db", "postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
    ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("postgresql+psycopg2://h/db", "postgresql+psycopg2://h/db", "postgresql+psycopg2://h/db"),
    # MySQL / MariaDB: asyncmy and PyMySQL; a named driver is kept
    ("mysql://h/db", "mysql+asyncmy://h/db", "mysql+pymysql://h/db"),
    ("mariadb://u@h:3307/db", "mariadb+asyncmy://u@h:3307/db", "mariadb+pymysql://u@h:3307/db"),
    ("mysql+mysqldb://h/db", "mysql+mysqldb://h/db", "mysql+mysqldb://h/db"),
    # a database this package picks no driver for: SQLAlchemy's default
    ("oracle://h/db", "oracle://h/db", "oracle://h/db"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "for_async", "for_sync"), RESOLVED)
def test_resolution(url: str, for_async: str, for_sync: str) -> None:
    assert async_url(url).render_as_string(hide_password=False) == for_async
    assert sync_url(url).render_as_string(hide_password=False) == for_sync
    assert migration_url(url).render_as_string(hide_password=False) == for_sync


def test_everything_but_the_driver_is_kept() -> None:
    url = "postgres://alice:p%40ss@db.example:6543/app?sslmode=require&application_name=x"
    for resolved in (async_url(url), sync_url(url), migration_url(url)):
        assert resolved.username == "alice"
        assert resolved.password == "p@ss"
        assert (resolved.host, resolved.port, resolved.database) == ("db.example", 6543, "app")
        assert dict(resolved.query) == {"sslmode": "require", "application_name": "x"}
    assert normalized(make_url(url)).drivername == "postgresql"


def test_installed_looks_without_importing() -> None:
    assert installed("sqlite3")
    assert not installed("checkpointer_no_such_driver")
    assert not installed("")  # find_spec's ValueError counts as not installed


def test_missing_driver_error_is_an_import_error() -> None:
    """Code that catches ImportError around optional drivers keeps working."""
    assert issubclass(MissingDriverError, ImportError)
    with pytest.raises(ImportError):
        raise MissingDriverError("x", name="psycopg")
