"""Concurrent start-up: pods calling `setup()` on a fresh database at the same moment
all succeed, and the migration runs once (each process reports what it applied), on
PostgreSQL and on a SQLite file shared by several worker processes. The same four
processes race twice, once per database, to keep the test's start-up cost down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import inspect

from checkpointer.migrations import head

from ..deploy_support import REPO, sync_pg_url, versions, with_conn
from ..pg_server import database_url

POD = """
import asyncio, json, sys, time
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine
from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver

config = {"configurable": {"thread_id": "probe"}}

def report(applied, start, end):
    print(json.dumps({"applied": applied, "start": start, "end": end}), flush=True)

async def run_async(url):
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

def run_sync(url):
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

for url in sys.argv[1:]:
    asyncio.run(run_async(url)) if ("+asyncpg" in url or "+aiosqlite" in url) else run_sync(url)
"""

PODS = 4


def race(pods: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Wait until every pod is ready, release them together, collect their reports."""
    for pod in pods:  # every pod has imported everything and holds an engine
        assert pod.stdout is not None
        line = pod.stdout.readline().strip()
        assert line == "ready", line or pod.communicate()[1]
    for pod in pods:  # then all are released at once
        assert pod.stdin is not None
        pod.stdin.write("go\n")
        pod.stdin.flush()
    reports = []
    for pod in pods:
        assert pod.stdout is not None
        line = pod.stdout.readline()
        assert line, pod.communicate()[1]
        reports.append(json.loads(line))
    return reports


def assert_migrated_once(reports: list[dict[str, Any]], url: str) -> None:
    print(reports)
    applied = sorted((r["applied"] for r in reports), key=len)
    everything = ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert applied == [[]] * (PODS - 1) + [everything], applied
    winner = next(r for r in reports if r["applied"])
    # The race was real: other pods called setup() while the migration was running
    # (all of them, as a rule; two are enough to prove it, on a loaded machine).
    overlapping = [r for r in reports if r is not winner and r["start"] < winner["end"]]
    assert len(overlapping) >= 2, reports
    with with_conn(url) as conn:
        assert versions(conn) == [head()]
        assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= set(
            inspect(conn).get_table_names()
        )


def test_pods_starting_together_migrate_once(fresh_pg: str, tmp_path: Path) -> None:
    """PostgreSQL serializes with an advisory lock, SQLite with a lock file; half the
    pods are async (asyncpg, aiosqlite), half sync (psycopg, sqlite3)."""
    sqlite = tmp_path / "pods.db"
    argv = [
        [
            database_url(fresh_pg, "asyncpg" if i % 2 else "psycopg").render_as_string(False),
            f"sqlite+aiosqlite:///{sqlite}" if i % 2 else f"sqlite:///{sqlite}",
        ]
        for i in range(PODS)
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pods = [
        subprocess.Popen(
            [sys.executable, "-c", POD, *urls],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for urls in argv
    ]
    try:
        assert_migrated_once(race(pods), sync_pg_url(fresh_pg))
        assert_migrated_once(race(pods), f"sqlite:///{sqlite}")
        for pod in pods:
            _, err = pod.communicate(timeout=60)
            assert pod.returncode == 0, err
    finally:
        for pod in pods:
            if pod.poll() is None:
                pod.kill()
                pod.communicate()
