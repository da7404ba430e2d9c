"""Every `checkpointer` command through a subprocess, on PostgreSQL and SQLite: the
`--json` shapes, the human tables, confirmations and `--yes`, and bad input (an unknown
thread, a malformed filter, a wrong URL, an unmigrated database) as one line and a
non-zero exit within seconds, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from checkpointer import SQLAlchemySaver
from checkpointer.migrations import SCHEMA_ENV, URL_ENV

from ..graphs import interrupting_graph, loop_graph

REPO = Path(__file__).resolve().parents[2]


def cli(
    *args: str, url: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (URL_ENV, SCHEMA_ENV)}
    env["PYTHONPATH"] = str(REPO)
    if url is not None:
        env[URL_ENV] = url
    return subprocess.run(
        [sys.executable, "-m", "checkpointer", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )


def ok(*args: str, url: str) -> Any:
    done = cli(*args, "--json", url=url)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest) -> str:
    """A sync URL of a migrated database with three graph threads: `loop` (25 steps),
    `waiting` (interrupted in a subgraph) and `other` (metadata user=ann)."""
    fixture = "pg_url" if request.param == "postgresql" else "sqlite_url"
    raw = make_url(request.getfixturevalue(fixture))
    driver = "postgresql+psycopg" if request.param == "postgresql" else "sqlite"
    sync = raw.set(drivername=driver).render_as_string(hide_password=False)
    with SQLAlchemySaver.from_conn_string(sync) as saver:
        loop_graph(saver).invoke(
            {"count": 0, "limit": 25, "items": []},
            {"configurable": {"thread_id": "loop"}, "metadata": {"run_id": "run-1"}},
        )
        interrupting_graph(saver).invoke(
            {"items": ["a"]}, {"configurable": {"thread_id": "waiting"}}
        )
        loop_graph(saver).invoke(
            {"count": 0, "limit": 2, "items": []},
            {"configurable": {"thread_id": "other"}, "metadata": {"user": "ann"}},
        )
    return sync


def test_threads_history_show(url: str) -> None:
    page = ok("threads", url=url)
    assert [t["thread_id"] for t in page["threads"]] == ["other", "waiting", "loop"]
    assert set(page["threads"][0]) == {
        "thread_id", "created_at", "updated_at", "checkpoint_count", "checkpoint_id", "metadata",
    }  # fmt: skip
    assert page["cursor"] is None
    first = ok("threads", "--limit", "2", url=url)
    assert first["cursor"]
    rest = ok("threads", "--limit", "2", "--cursor", first["cursor"], url=url)
    assert [t["thread_id"] for t in rest["threads"]] == ["loop"]
    ann = ok("threads", "--filter", "user=ann", url=url)["threads"]
    assert [t["thread_id"] for t in ann] == ["other"]
    assert ok("threads", "--filter", '{"user": "ann", "step": 99}', url=url)["threads"] == []
    assert ok("threads", "--idle-for", "30d", url=url)["threads"] == []
    human = cli("threads", url=url)
    assert human.returncode == 0
    assert "waiting" in human.stdout
    assert "checkpoints" in human.stdout

    hist = ok("history", "loop", url=url)
    assert hist["thread_id"] == "loop"
    assert len(hist["checkpoints"]) == 27
    assert set(hist["checkpoints"][0]) == {
        "checkpoint_id", "checkpoint_ns", "parent_checkpoint_id", "step", "source",
        "created_at", "pending_writes",
    }  # fmt: skip
    assert hist["checkpoints"][0]["step"] == 25
    waiting = ok("history", "waiting", "--ns", "", url=url)["checkpoints"]
    assert waiting[0]["pending_writes"] >= 1  # the interrupted task's writes

    state = ok("show", "loop", url=url)
    assert state["values"]["count"] == 25
    assert state["values"]["blob"] == {"n": 24, "pad": "xxx"}
    assert set(state) == {
        "thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "metadata",
        "values", "versions", "pending_writes",
    }  # fmt: skip
    older = ok("show", "loop", "--checkpoint", hist["checkpoints"][5]["checkpoint_id"], url=url)
    assert older["values"]["count"] == 20
    assert "count" in cli("show", "loop", url=url).stdout


def test_prune_copy_delete_and_confirmations(url: str) -> None:
    refused = cli("prune", "loop", "--keep-last", "2", url=url)  # no terminal, no --yes
    assert "pass --yes" in one_line_error(refused, 2)
    assert ok("prune", "loop", "--keep-last", "2", "--yes", url=url) == {
        "threads": ["loop"], "keep_last": 2,
    }  # fmt: skip
    assert len(ok("history", "loop", url=url)["checkpoints"]) <= 12
    assert ok("show", "loop", url=url)["values"]["count"] == 25
    assert ok("copy", "loop", "loop-copy", url=url) == {"source": "loop", "target": "loop-copy"}
    assert ok("show", "loop-copy", url=url)["values"]["count"] == 25
    assert ok("delete", "loop-copy", "--yes", url=url) == {"deleted": ["loop-copy"]}
    assert ok("delete-runs", "run-1", "--yes", url=url) == {"run_ids": ["run-1"]}
    assert "unknown thread 'loop'" in one_line_error(cli("show", "loop", url=url))
    assert ok("stats", url=url)["threads"] == 2


def test_sweep_and_stats(url: str) -> None:
    time.sleep(0.01)
    dry = ok("sweep", "--idle-for", "0s", "--keep", "user=ann", "--dry-run", url=url)
    assert set(dry) == {
        "strategy", "dry_run", "threads", "checkpoints", "blobs", "writes", "bytes", "batches",
    }  # fmt: skip
    assert (dry["threads"], dry["dry_run"]) == (2, True)
    assert ok("stats", url=url)["threads"] == 3
    pruned = ok("sweep", "--idle-for", "0s", "--strategy", "keep_latest", "--yes", url=url)
    assert pruned["threads"] == 3
    assert pruned["checkpoints"] > 0
    swept = ok("sweep", "--idle-for", "0s", "--keep", "user=ann", "--limit", "1", "--yes", url=url)
    assert swept["threads"] == 1
    stats = ok("stats", "--top", "1", url=url)
    assert set(stats) == {
        "tables", "threads", "checkpoints", "oldest", "newest", "largest_threads",
        "database_bytes", "free_bytes",
    }  # fmt: skip
    assert stats["threads"] == 2
    assert len(stats["largest_threads"]) == 1
    assert {t["table"] for t in stats["tables"]} == {
        "checkpoints", "checkpoint_blobs", "checkpoint_writes",
    }  # fmt: skip
    assert "rows" in cli("stats", url=url).stdout
    assert "would remove" in cli("sweep", "--idle-for", "1d", "--dry-run", url=url).stdout


def test_bad_input_is_one_line_and_fast(url: str, tmp_path: Path) -> None:
    assert "unknown thread 'nope'" in one_line_error(cli("history", "nope", url=url))
    assert "unknown thread 'nope'" in one_line_error(cli("prune", "nope", "--yes", url=url))
    assert "not a JSON object" in one_line_error(cli("threads", "--filter", "{x", url=url), 2)
    assert "neither key=value" in one_line_error(cli("threads", "--filter", "x", url=url), 2)
    assert "duration" in one_line_error(cli("sweep", "--idle-for", "soon", url=url), 2)
    assert "--url" in one_line_error(cli("threads"), 2)
    started = time.monotonic()
    wrong = cli("threads", url="postgresql://nobody@127.0.0.1:1/none")
    assert "database connection was lost (retry is off)" in one_line_error(wrong)
    assert time.monotonic() - started < 10
    assert "error:" in one_line_error(cli("threads", url="nonsense://"))
    empty = f"sqlite:///{tmp_path}/empty.db"
    unmigrated = one_line_error(cli("threads", url=empty))
    assert "upgrade" in unmigrated
    assert len(unmigrated.strip().splitlines()) == 1


def test_db_commands_and_the_old_forms(tmp_path: Path) -> None:
    """`db upgrade|current|history|check`, `upgrade` as an alias, and
    `python -m checkpointer upgrade head` / `-x url=... current` as before."""
    url = f"sqlite:///{tmp_path}/db.db"
    up = cli("db", "upgrade", "head", url=url)
    assert up.returncode == 0, up.stderr
    assert "applied revisions" in up.stderr
    assert cli("db", "current", url=url).returncode == 0
    assert "0001" in cli("db", "history", url=url).stdout
    assert "No new upgrade operations detected" in cli("db", "check", url=url).stdout
    assert cli("upgrade", "head", url=url).returncode == 0
    legacy = cli("-x", f"url={url}", "current")
    assert legacy.returncode == 0, legacy.stderr
    other = f"sqlite:///{tmp_path}/other.db"
    assert cli("-x", f"url={other}", "upgrade", "head").returncode == 0
    assert ok("threads", url=other) == {"threads": [], "cursor": None}
    none = cli()
    assert none.returncode == 2
    assert "upgrade head" in none.stderr
    assert "threads" in cli("--help").stdout


def test_distribute_does_nothing_without_citus(url: str) -> None:
    """`checkpointer distribute` on plain PostgreSQL and SQLite: nothing distributed,
    exit 0 (on Citus: tests/citus)."""
    assert ok("distribute", url=url) == {"distributed": []}
