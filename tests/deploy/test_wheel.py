"""The built wheel works with no repository around: it ships the Alembic scripts and
`py.typed`, and `setup()` from a clean virtual environment migrates an empty SQLite
file and an empty PostgreSQL database, after which the saver stores and reads. Installed
with `[postgres,sqlite]` only (no psycopg), plain `postgresql://` URLs work for the CLI
and the async saver, and the CLI refuses to write into the installed package."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ..conftest import pg_database_url

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, json, sys

import checkpointer
from checkpointer import AsyncSQLAlchemySaver
from langgraph.checkpoint.base import empty_checkpoint
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine


async def check(url):
    engine = create_async_engine(url)
    saver = AsyncSQLAlchemySaver(engine)
    await saver.setup()
    await saver.setup()  # a second start finds the schema current
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"items": [1, "two"], "n": 3}
    checkpoint["channel_versions"] = {"items": "1", "n": "1"}
    config = {"configurable": {"thread_id": "wheel", "checkpoint_ns": ""}}
    stored = await saver.aput(config, checkpoint, {"from": "wheel"}, {"items": "1", "n": "1"})
    await saver.aput_writes(stored, [("items", "w")], "task")
    got = await saver.aget_tuple(config)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: sorted(inspect(c).get_table_names()))
    await engine.dispose()
    return {
        "values": got.checkpoint["channel_values"],
        "metadata": got.metadata,
        "writes": [list(w) for w in got.pending_writes],
        "tables": tables,
    }


async def main():
    return {
        "file": checkpointer.__file__,
        "sqlite": await check(sys.argv[1]),
        "postgresql": await check(sys.argv[2]),
    }


print(json.dumps(asyncio.run(main())))
"""


PLAIN_URLS = """
import asyncio, json, sys

from checkpointer import AsyncSQLAlchemySaver, MissingDriverError, SQLAlchemySaver
from langgraph.checkpoint.base import empty_checkpoint


async def main(url):
    config = {"configurable": {"thread_id": "plain", "checkpoint_ns": ""}}
    async with AsyncSQLAlchemySaver.from_conn_string(url) as saver:
        applied = await saver.setup()
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"n": 1}
        checkpoint["channel_versions"] = {"n": "1"}
        await saver.aput(config, checkpoint, {}, {"n": "1"})
        got = await saver.aget_tuple(config)
        result = {
            "applied": applied,
            "driver": saver.engine.dialect.driver,
            "values": got.checkpoint["channel_values"],
        }
    try:
        with SQLAlchemySaver.from_conn_string(url):
            pass
    except MissingDriverError as error:
        result["sync_error"] = type(error).__name__
        result["names_extra"] = "langgraph-checkpoint-sqlalchemy[psycopg]" in str(error)
    return result


print(json.dumps(asyncio.run(main(sys.argv[1]))))
"""


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wheel_installs_and_migrates_from_a_clean_venv(tmp_path: Path, fresh_pg: str) -> None:
    assert (ROOT / "pyproject.toml").is_file()
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_revisions = {n for n in names if n.startswith("checkpointer/_alembic/versions/")}
    repo_revisions = {
        f"checkpointer/_alembic/versions/{p.name}"
        for p in (ROOT / "alembic" / "versions").glob("*.py")
    }
    assert {"checkpointer/_alembic/env.py", "checkpointer/py.typed"} <= names
    assert "checkpointer/_alembic/script.py.mako" in names
    assert repo_revisions, "no revisions in the repository"
    assert shipped_revisions == repo_revisions
    assert not any(n.startswith("tests/") or "__pycache__" in n for n in names)

    # A clean environment outside the repository (no system site-packages); pip from
    # this interpreter installs into it.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
        f"{wheel}[postgres,sqlite]", cwd=tmp_path, env=env,
    )  # fmt: skip
    freeze = _run(sys.executable, "-m", "pip", "--python", python, "freeze", cwd=tmp_path)
    assert "asyncpg" in freeze
    assert "psycopg" not in freeze  # the plain-URL checks below run without it

    work = tmp_path / "work"
    work.mkdir()
    (work / "check.py").write_text(SCRIPT)
    sqlite_url = f"sqlite+aiosqlite:///{work / 'empty.db'}"
    out = _run(python, "check.py", sqlite_url, pg_database_url(fresh_pg), cwd=work, env=env)
    result = json.loads(out.strip().splitlines()[-1])

    installed = Path(result["file"]).resolve()
    assert installed.is_relative_to(venv.resolve()), installed
    assert not installed.is_relative_to(ROOT)
    for dialect in ("sqlite", "postgresql"):
        got = result[dialect]
        assert got["values"] == {"items": [1, "two"], "n": 3}, dialect
        assert got["metadata"] == {"from": "wheel"}
        assert got["writes"] == [["task", "items", "w"]]
        assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= set(got["tables"])
        assert "checkpointer_alembic_version" in got["tables"]
        assert "alembic_version" not in got["tables"]

    # Plain URLs with only `[postgres]`: the CLI and the async saver run on asyncpg, the
    # sync saver names the extra that installs psycopg.
    plain = pg_database_url(fresh_pg).replace("postgresql+asyncpg://", "postgresql://")
    pg_cli = (python, "-m", "checkpointer", "-x", f"url={plain}")
    downgraded = subprocess.run(
        [*map(str, pg_cli), "downgrade", "base"], cwd=work, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert downgraded.returncode == 0, downgraded.stderr
    assert "reverted revisions" in downgraded.stderr
    assert "postgresql+asyncpg://" in downgraded.stderr
    (work / "plain.py").write_text(PLAIN_URLS)
    out = _run(python, "plain.py", plain, cwd=work, env=env)
    assert json.loads(out.strip().splitlines()[-1]) == {
        "applied": ["0001", "0002", "0003", "0004", "0005", "0006"],
        "driver": "asyncpg",
        "values": {"n": 1},
        "sync_error": "MissingDriverError",
        "names_extra": True,
    }
    before = {p.name for p in (installed.parent / "_alembic" / "versions").iterdir()}
    refused = subprocess.run(
        [*map(str, pg_cli), "revision", "-m", "x"], cwd=work, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert {p.name for p in (installed.parent / "_alembic" / "versions").iterdir()} == before

    # The Alembic CLI of the installed package, with no alembic.ini or checkout around.
    cli_db = work / "cli.db"
    cli = (python, "-m", "checkpointer", "-x", f"url=sqlite:///{cli_db}")
    _run(*cli, "upgrade", "head", cwd=work, env=env)
    current = _run(*cli, "current", cwd=work, env=env)
    heads = _run(*cli, "heads", cwd=work, env=env)
    assert heads.split()[0] in current, (current, heads)
    _run(*cli, "downgrade", "base", cwd=work, env=env)
    with sqlite3.connect(cli_db) as conn:
        left = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not left & {"checkpoints", "checkpoint_blobs", "checkpoint_writes"}, left
