"""Plain `postgresql://`, `postgres://` and `sqlite://` URLs work everywhere a URL is
taken (both savers' `from_conn_string`, `alembic` from the repository, `python -m
checkpointer`), on real databases, with whichever driver is installed.

A missing driver is simulated in a subprocess: a finder placed first on `sys.meta_path`
refuses to locate the blocked modules, so they can neither be found (`find_spec`) nor
imported, as when they are not installed. The wheel test installs only `[postgres]`
for the same check without the trick (tests/deploy/test_wheel.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.migrations import URL_ENV, head

from ..deploy_support import REPO, versions, with_conn
from ..pg_server import database_url

BLOCK = """
import sys

class _Uninstalled:
    '''Behaves as if these top-level packages were not installed.'''

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Uninstalled())
"""

SAVE_AND_READ = """
import asyncio, json, sys
from langgraph.checkpoint.base import empty_checkpoint
from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver

CONFIG = {"configurable": {"thread_id": "plain", "checkpoint_ns": ""}}


def checkpoint():
    c = empty_checkpoint()
    c["channel_values"] = {"n": 1}
    c["channel_versions"] = {"n": "1"}
    return c


async def run_async(url):
    async with AsyncSQLAlchemySaver.from_conn_string(url) as saver:
        await saver.setup()
        await saver.aput(CONFIG, checkpoint(), {"via": "async"}, {"n": "1"})
        got = await saver.aget_tuple(CONFIG)
        return {"driver": saver.engine.dialect.driver, "metadata": got.metadata}


def run_sync(url):
    with SQLAlchemySaver.from_conn_string(url) as saver:
        saver.setup()
        saver.put(CONFIG, checkpoint(), {"via": "sync"}, {"n": "1"})
        got = saver.get_tuple(CONFIG)
        return {"driver": saver.engine.dialect.driver, "metadata": got.metadata}


def attempt(fn):
    try:
        return fn()
    except ImportError as error:
        return {"error": type(error).__name__, "message": str(error)}


url = sys.argv[1]
print(json.dumps({
    "async": attempt(lambda: asyncio.run(run_async(url))),
    "sync": attempt(lambda: run_sync(url)),
}))
"""


def _python(
    code: str, *args: str, blocked: set[str], cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != URL_ENV}
    env["PYTHONPATH"] = str(REPO)
    prelude = f"BLOCKED = {sorted(blocked)!r}\n{BLOCK}\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _savers(url: str, blocked: set[str]) -> dict[str, dict[str, object]]:
    done = _python(SAVE_AND_READ, url, blocked=blocked)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _plain(name: str, scheme: str = "postgresql") -> str:
    return database_url(name).set(drivername=scheme).render_as_string(hide_password=False)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_plain_postgresql_urls_in_process(fresh_pg: str, scheme: str) -> None:
    """With every driver installed: asyncpg for async, psycopg for sync."""
    url = _plain(fresh_pg, scheme)
    async with AsyncSQLAlchemySaver.from_conn_string(url) as saver:
        assert saver.engine.dialect.driver == "asyncpg"
        assert await saver.setup() == ["0001", "0002", "0003", "0004", "0005", "0006"]
    with SQLAlchemySaver.from_conn_string(url) as sync_saver:
        assert sync_saver.engine.dialect.driver == "psycopg"
        assert sync_saver.setup() == []


async def test_plain_sqlite_urls_in_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/plain.db"
    async with AsyncSQLAlchemySaver.from_conn_string(url) as saver:
        assert saver.engine.dialect.driver == "aiosqlite"
        assert await saver.setup() == ["0001", "0002", "0003", "0004", "0005", "0006"]
    with SQLAlchemySaver.from_conn_string(url) as sync_saver:
        assert sync_saver.engine.dialect.driver == "pysqlite"
        assert sync_saver.setup() == []


def test_postgresql_without_asyncpg(fresh_pg: str) -> None:
    """Async falls back to psycopg's async mode; sync is psycopg."""
    got = _savers(_plain(fresh_pg), blocked={"asyncpg"})
    assert got["async"] == {"driver": "psycopg", "metadata": {"via": "async"}}
    assert got["sync"] == {"driver": "psycopg", "metadata": {"via": "sync"}}


def test_postgresql_without_psycopg(fresh_pg: str) -> None:
    """Async on asyncpg; sync says which extra to install."""
    got = _savers(_plain(fresh_pg, "postgres"), blocked={"psycopg"})
    assert got["async"] == {"driver": "asyncpg", "metadata": {"via": "async"}}
    assert got["sync"]["error"] == "MissingDriverError"
    message = str(got["sync"]["message"])
    assert "pip install 'langgraph-checkpoint-sqlalchemy[psycopg]'" in message
    assert "postgresql://" in message  # the URL as read, password hidden


def test_postgresql_without_any_driver(fresh_pg: str) -> None:
    got = _savers(_plain(fresh_pg), blocked={"psycopg", "asyncpg"})
    assert got["async"]["error"] == got["sync"]["error"] == "MissingDriverError"
    assert "[postgres]" in str(got["async"]["message"])
    assert "[psycopg]" in str(got["async"]["message"])
    assert "[psycopg]" in str(got["sync"]["message"])


def test_a_named_driver_that_is_missing_names_its_extra(fresh_pg: str) -> None:
    url = database_url(fresh_pg, "asyncpg").render_as_string(hide_password=False)
    got = _savers(url, blocked={"asyncpg"})
    assert got["async"]["error"] == "MissingDriverError"
    assert "the asyncpg driver, which is not installed" in str(got["async"]["message"])
    assert "[postgres]" in str(got["async"]["message"])


def test_sqlite_without_aiosqlite(tmp_path: Path) -> None:
    """Sync SQLite needs only the standard library; async names the `[sqlite]` extra."""
    got = _savers(f"sqlite:///{tmp_path}/plain.db", blocked={"aiosqlite"})
    assert got["sync"] == {"driver": "pysqlite", "metadata": {"via": "sync"}}
    assert got["async"]["error"] == "MissingDriverError"
    assert "pip install 'langgraph-checkpoint-sqlalchemy[sqlite]'" in str(got["async"]["message"])


CLI = "import sys\nfrom checkpointer.cli import main\nsys.exit(main(sys.argv[1:]))\n"
ALEMBIC = "import sys\nfrom alembic.config import main\nmain(argv=sys.argv[1:])\n"


@pytest.mark.parametrize("runner", ["python -m checkpointer", "alembic"])
@pytest.mark.parametrize("blocked", [set(), {"psycopg"}, {"asyncpg"}])
def test_migration_commands_take_plain_urls(fresh_pg: str, runner: str, blocked: set[str]) -> None:
    """Up, down (our version table gone too) and up again with a plain URL, on
    whichever driver is there: psycopg when installed, else asyncpg."""
    code = CLI if runner.startswith("python") else ALEMBIC
    url = _plain(fresh_pg, "postgres")
    driver = "asyncpg" if "psycopg" in blocked else "psycopg"
    for command in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        done = _python(code, "-x", f"url={url}", *command, blocked=blocked)
        assert done.returncode == 0, done.stderr
        assert f"postgresql+{driver}://" in done.stderr, done.stderr  # our log line
    assert "applied revisions 0001, 0002, 0003" in done.stderr
    with with_conn(database_url(fresh_pg, "psycopg").render_as_string(False)) as conn:
        assert versions(conn) == [head()]


def test_migration_commands_without_any_driver(fresh_pg: str) -> None:
    done = _python(CLI, "-x", f"url={_plain(fresh_pg)}", "upgrade", "head", blocked={
        "psycopg", "asyncpg"})  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "[psycopg]" in done.stderr
    assert "[postgres]" in done.stderr
