"""Concurrent start-up: pods calling `setup()` on a fresh database at the same moment
all succeed, and the migration runs once (each process reports what it applied)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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

asyncio.run(run_async()) if "asyncpg" in url else run_sync()
"""

PODS = 4


def test_pods_starting_together_migrate_once(fresh_pg: str) -> None:
    urls = [
        database_url(fresh_pg, "asyncpg" if i % 2 else "psycopg").render_as_string(False)
        for i in range(PODS)
    ]
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
    with with_conn(sync_pg_url(fresh_pg)) as conn:
        assert versions(conn) == [head()]
        assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= set(
            inspect(conn).get_table_names()
        )
