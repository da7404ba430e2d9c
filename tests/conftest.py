"""Fixtures: real databases only. PostgreSQL databases are cloned per test from a
template migrated once per run; SQLite files live in a temporary directory; MySQL /
MariaDB databases are per test too (`tests/mysql_server.py`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver
from checkpointer.migrations import upgrade

from . import mysql_server
from .pg_server import database_url

DIALECTS = ["postgresql", "sqlite", "mysql"]


def _admin_url() -> str:
    return database_url("postgres", "psycopg").render_as_string(hide_password=False)


def _create_database(name: str, template: str | None = None) -> None:
    engine = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        clause = f" TEMPLATE {template}" if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    engine.dispose()


def drop_database(name: str) -> None:
    engine = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def pg_database_url(name: str, driver: str = "asyncpg") -> str:
    return database_url(name, driver).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database migrated to head, cloned by every PostgreSQL test."""
    name = f"cp_template_{uuid.uuid4().hex[:8]}"
    _create_database(name)
    engine = create_engine(pg_database_url(name, "psycopg"))
    with engine.connect() as conn:
        upgrade(conn)
    engine.dispose()
    yield name
    drop_database(name)


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """The name of a new, empty (unmigrated) PostgreSQL database."""
    name = f"cp_{uuid.uuid4().hex[:12]}"
    _create_database(name)
    yield name
    drop_database(name)


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """An asyncpg URL of a migrated PostgreSQL database of this test's own."""
    name = f"cp_{uuid.uuid4().hex[:12]}"
    _create_database(name, template=pg_template)
    yield pg_database_url(name)
    drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/checkpoints.db"
    engine = create_engine(url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        upgrade(conn)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def mysql_template() -> Iterator[str]:
    """A MySQL/MariaDB database migrated to head, cloned by every MySQL test."""
    yield from mysql_server.migrated_template()


@pytest.fixture
def fresh_mysql() -> Iterator[str]:
    """The name of a new, empty (unmigrated) MySQL/MariaDB database."""
    name = mysql_server.new_name()
    mysql_server.create_database(name)
    yield name
    mysql_server.drop_database(name)


@pytest.fixture
def mysql_url(mysql_template: str) -> Iterator[str]:
    """An asyncmy URL of a migrated MySQL/MariaDB database of this test's own."""
    name = mysql_server.new_name()
    mysql_server.create_database(name, template=mysql_template)
    yield mysql_server.url_string(name)
    mysql_server.drop_database(name)


FIXTURES = {"postgresql": "pg_url", "sqlite": "sqlite_url", "mysql": "mysql_url"}


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database URL (async driver) for each dialect."""
    return str(request.getfixturevalue(FIXTURES[request.param]))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url)
    yield engine
    assert engine.pool.checkedout() == 0, "a connection was left checked out"
    await engine.dispose()


@pytest.fixture
async def saver(engine: AsyncEngine) -> AsyncSQLAlchemySaver:
    return AsyncSQLAlchemySaver(engine)
