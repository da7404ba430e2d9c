"""Concurrent start-up: pods calling `setup()` on a fresh database at the same moment
all succeed, and the migration runs once (each process reports what it applied), on
PostgreSQL and on a SQLite file shared by several worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from checkpointer.migrations import head

from .deploy_support import REPO, sync_pg_url, versions, with_conn
from .pg_server import database_url

POD = """
import asyncio, json, sys, time
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine
from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver

url = sys.argv[1]
config = {"configurable": {"thread_id": "probe"}}

def report(applied, start, end):
    print(json.dumps({"applied": applied, "start": start, "end": end}), flush=True)

async def run_async():
    engine = create_async_engine(url)
    saver = AsyncSQLAlchemySaver(engine)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    applied = await saver.setup()
    end = time.time()
    assert await saver.aget_tuple(config) is None
    await engine.dispose()
    report(applied, start, end)

def run_sync():
    engine = create_engine(url)
    saver = SQLAlchemySaver(engine)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    applied = saver.setup()
    end = time.time()
    assert saver.get_tuple(config) is None
    engine.dispose()
    report(applied, start, end)

asyncio.run(run_async()) if ("+asyncpg" in url or "+aiosqlite" in url) else run_sync()
"""

PODS = 4


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_pods_starting_together_migrate_once(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """PostgreSQL serializes with an advisory lock, SQLite with a lock file."""
    if dialect == "postgresql":
        name = request.getfixturevalue("fresh_pg")
        urls = [
            database_url(name, "asyncpg" if i % 2 else "psycopg").render_as_string(False)
            for i in range(PODS)
        ]
        check_url = sync_pg_url(name)
    else:
        path = tmp_path / "pods.db"
        urls = [
            f"sqlite+aiosqlite:///{path}" if i % 2 else f"sqlite:///{path}" for i in range(PODS)
        ]
        check_url = f"sqlite:///{path}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pods = [
        subprocess.Popen(
            [sys.executable, "-c", POD, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for url in urls
    ]
    try:
        for pod in pods:  # every pod has imported everything and holds an engine
            assert pod.stdout is not None
            assert pod.stdout.readline().strip() == "ready"
        for pod in pods:  # then all are released at once
            assert pod.stdin is not None
            pod.stdin.write("go\n")
            pod.stdin.flush()
        outcomes = []
        for pod in pods:
            out, err = pod.communicate(timeout=120)
            assert pod.returncode == 0, err
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for pod in pods:
            if pod.poll() is None:
                pod.kill()
                pod.wait()

    print(outcomes)
    applied = sorted((o["applied"] for o in outcomes), key=len)
    assert applied == [[]] * (PODS - 1) + [["0001", "0002"]], applied
    winner = next(o for o in outcomes if o["applied"])
    # The race was real: every pod called setup() before the migration was over.
    assert max(o["start"] for o in outcomes) < winner["end"], outcomes
    with with_conn(check_url) as conn:
        assert versions(conn) == [head()]
        assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= set(
            inspect(conn).get_table_names()
        )
