"""`make demo` runs examples/demo.py: it must work on the default SQLite file and on the
URL from the environment, and its state must survive the restart it performs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def run_demo(cwd: Path, url: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "CHECKPOINTER_DATABASE_URL"}
    if url:
        env["CHECKPOINTER_DATABASE_URL"] = url
    done = subprocess.run(
        [sys.executable, str(DEMO)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_demo_on_default_sqlite_survives_restarts(tmp_path: Path) -> None:
    first = run_demo(tmp_path)
    assert "state survived the restart: 3 turns" in first
    assert (tmp_path / "demo-state" / "checkpoints.db").is_file()
    second = run_demo(tmp_path)  # a second process continues the same thread
    assert "opened the saver: the thread holds 6 messages" in second
    assert "state survived the restart: 6 turns" in second


def test_demo_on_url_from_environment(tmp_path: Path, fresh_pg: str) -> None:
    from ..conftest import pg_database_url

    out = run_demo(tmp_path, pg_database_url(fresh_pg, "psycopg").replace("+psycopg", ""))
    assert "state survived the restart: 3 turns" in out
    assert not (tmp_path / "demo-state").exists()
