"""What migrations log on the `checkpointer` logger, what `alembic` prints from the
repository, and `downgrade base` leaving none of our tables, version table included, by
every route (repository `alembic`, code; `python -m checkpointer` in test_cli.py), on
PostgreSQL and SQLite, after which `upgrade head` works again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver
from checkpointer.migrations import VERSION_TABLE, downgrade, head, upgrade

from ..deploy_support import run_alembic, sync_pg_url, table_names, versions, with_conn
from ..pg_server import database_url

OURS = {"checkpoints", "checkpoint_blobs", "checkpoint_writes", VERSION_TABLE}
LOGGER = "checkpointer.migrations"


@pytest.fixture(params=["postgresql", "sqlite"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A sync URL of an empty database of each dialect."""
    if request.param == "postgresql":
        return sync_pg_url(request.getfixturevalue("fresh_pg"))
    return f"sqlite:///{tmp_path}/fresh.db"


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_alembic_from_the_repository_prints_and_cleans_up(fresh_url: str) -> None:
    """URL as a PaaS gives it (`postgres://`, no driver) in CHECKPOINTER_DATABASE_URL."""
    plain = fresh_url.replace("postgresql+psycopg://", "postgres://")
    upgraded = run_alembic("upgrade", "head", url=plain)
    assert "INFO  [alembic.runtime.migration] Running upgrade  -> 0001" in upgraded.stderr
    assert "Running upgrade 0002 -> 0003" in upgraded.stderr
    applied = "applied revisions 0001, 0002, 0003, 0004, 0005, 0006 to "
    assert f"INFO  [{LOGGER}] {applied}" in upgraded.stderr
    assert run_alembic("upgrade", "head", url=plain).stderr.count("Running") == 0

    downgraded = run_alembic("-x", f"url={plain}", "downgrade", "base")
    assert "Running downgrade 0001 -> " in downgraded.stderr
    assert f"removed {VERSION_TABLE}" in downgraded.stderr
    with with_conn(fresh_url) as conn:
        assert not OURS & table_names(conn)
    run_alembic("upgrade", "head", url=fresh_url)
    with with_conn(fresh_url) as conn:
        assert versions(conn) == [head()]


@pytest.mark.parametrize("schema", [None, "lg"])
def test_code_logs_what_it_applies_and_downgrade_base_cleans_up(
    schema: str | None, fresh_pg: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="checkpointer")
    urls = [sync_pg_url(fresh_pg)] + ([] if schema else [f"sqlite:///{tmp_path}/code.db"])
    for url in urls:
        caplog.clear()
        with with_conn(url) as conn:
            assert upgrade(conn, "0002", schema=schema) == ["0001", "0002"]
            assert upgrade(conn, schema=schema) == ["0003", "0004", "0005", "0006"]
            assert upgrade(conn, schema=schema) == []  # nothing to do, nothing logged
            first, second = _messages(caplog)
            assert first.startswith("applied revisions 0001, 0002 to ")
            assert first.endswith(f"{' (schema lg)' if schema else ''}; now at 0002")
            assert second.startswith("applied revisions 0003, 0004, 0005, 0006 ")
            assert second.endswith("; now at 0006")
            caplog.clear()
            downgrade(conn, "base", schema=schema)
            assert table_names(conn, schema) & OURS == set()
            reverted, removed = _messages(caplog)
            assert reverted.startswith("reverted revisions 0006, 0005, 0004, 0003, 0002, 0001 on ")
            assert reverted.endswith("; now at base")
            assert removed.startswith(f"removed {VERSION_TABLE} from ")
            assert upgrade(conn, schema=schema) == ["0001", "0002", "0003", "0004", "0005", "0006"]
            assert versions(conn, schema) == [head()]
        assert all(r.levelno == logging.INFO for r in caplog.records if r.name == LOGGER)


def test_a_partial_downgrade_keeps_the_version_table(fresh_url: str) -> None:
    with with_conn(fresh_url) as conn:
        upgrade(conn)
        downgrade(conn, "0001")
        assert versions(conn) == ["0001"]
        downgrade(conn, "base")
        assert VERSION_TABLE not in table_names(conn)
        downgrade(conn, "base")  # again, with nothing left: a no-op
        assert upgrade(conn) == ["0001", "0002", "0003", "0004", "0005", "0006"]


async def test_setup_logs_through_the_async_path(
    fresh_pg: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="checkpointer")
    engine = create_async_engine(database_url(fresh_pg))
    try:
        assert await AsyncSQLAlchemySaver(engine).setup() == [
            "0001",
            "0002",
            "0003",
            "0004",
            "0005",
            "0006",
        ]
    finally:
        await engine.dispose()
    (applied,) = _messages(caplog)
    assert applied.startswith(
        "applied revisions 0001, 0002, 0003, 0004, 0005, 0006 to postgresql+asyncpg://"
    )


def test_the_library_is_silent_unless_logging_is_configured() -> None:
    """A NullHandler on `checkpointer`, as libraries do: the application decides."""
    handlers = logging.getLogger("checkpointer").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_sqlite_setup_prints_nothing(tmp_path: Path) -> None:
    """Without logging configured, `setup()` writes nothing to stderr."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom checkpointer import SQLAlchemySaver\n"
        "with SQLAlchemySaver.from_conn_string(sys.argv[1]) as s:\n    print(s.setup())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{tmp_path}/quiet.db"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "['0001', '0002', '0003', '0004', '0005', '0006']"
    assert done.stderr == ""
