"""The unit layer's promise: no database server, no database driver."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy
import sqlalchemy.ext.asyncio
from sqlalchemy.engine.default import DefaultDialect

DRIVERS = ("asyncpg", "psycopg", "psycopg2", "aiosqlite", "pymysql", "aiomysql")

ROOT = Path(__file__).parents[2]


def test_no_connection_can_be_opened() -> None:
    """Engines, sqlite3 and sockets all refuse inside a unit test (see conftest.py).
    Mutation: remove `(sqlalchemy, "create_engine")` from conftest's CUT_OFF -> fails."""
    with pytest.raises(RuntimeError, match="without a database"):
        sqlalchemy.create_engine("sqlite://")
    with pytest.raises(RuntimeError, match="without a database"):
        sqlalchemy.ext.asyncio.create_async_engine("sqlite+aiosqlite://")
    with pytest.raises(RuntimeError, match="without a database"):
        DefaultDialect().connect()  # what every pool calls to open a connection
    with pytest.raises(RuntimeError, match="without a database"):
        sqlite3.connect(":memory:")
    with pytest.raises(RuntimeError, match="without a database"):
        socket.create_connection(("127.0.0.1", 5432), timeout=0.1)


def test_unit_modules_import_no_database_driver() -> None:
    """Importing every unit test module (in a fresh interpreter) loads no driver.
    Mutation: add `import asyncpg` to tests/unit/replay.py -> fails."""
    code = (
        "import importlib, pkgutil, sys, tests.unit as u\n"
        "for m in pkgutil.walk_packages(u.__path__, 'tests.unit.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({DRIVERS!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
