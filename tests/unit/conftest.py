"""The unit layer runs without a database: every way to one is cut off for each test
here (engine creation, a dialect's connect, sqlite3, sockets), and a test asking for a
database fixture of `tests/conftest.py` fails, so a database test cannot slip in."""

from __future__ import annotations

import socket
import sqlite3
from typing import Any

import pytest
import sqlalchemy
import sqlalchemy.engine
import sqlalchemy.engine.create
import sqlalchemy.ext.asyncio
import sqlalchemy.ext.asyncio.engine
from sqlalchemy.engine.default import DefaultDialect

DATABASE_FIXTURES = frozenset({"pg_template", "fresh_pg", "pg_url", "sqlite_url"})

CUT_OFF: list[tuple[Any, str]] = [
    (sqlalchemy, "create_engine"),
    (sqlalchemy.engine, "create_engine"),
    (sqlalchemy.engine.create, "create_engine"),
    (sqlalchemy.ext.asyncio, "create_async_engine"),
    (sqlalchemy.ext.asyncio.engine, "create_async_engine"),
    (DefaultDialect, "connect"),
    (sqlite3, "connect"),
    (socket.socket, "connect"),
    (socket, "create_connection"),
]


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("tests/unit runs without a database: use tests/contract for that")


@pytest.fixture(autouse=True)
def no_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = DATABASE_FIXTURES.intersection(request.fixturenames)
    if wanted:
        pytest.fail(f"a unit test asked for database fixtures {sorted(wanted)}", pytrace=False)
    for owner, name in CUT_OFF:
        monkeypatch.setattr(owner, name, _refuse)
