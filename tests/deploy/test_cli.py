"""`python -m checkpointer` runs this package's migrations and cannot change the package:
commands that write migration scripts are refused (exit 2, saying where an app's own
migrations belong), `stamp` warns, Alembic's options still work. Run as a deploy runs
it: a subprocess outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from checkpointer.cli import ACCEPTED, WRITES_SCRIPTS, alembic_commands
from checkpointer.migrations import SCHEMA_ENV, URL_ENV, VERSION_TABLE, head, script_location

from ..deploy_support import REPO, sync_pg_url, table_names, versions, with_conn

OURS = {"checkpoints", "checkpoint_blobs", "checkpoint_writes"}


def checkpointer_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (URL_ENV, SCHEMA_ENV)}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "checkpointer", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _scripts() -> dict[str, float]:
    """Every file of the scripts the CLI runs, with its modification time."""
    root = Path(script_location())
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "args",
    [
        ["revision", "-m", "x"],
        ["revision", "--autogenerate", "-m", "x"],
        ["merge", "heads", "-m", "x"],
        ["edit", "head"],
        ["init", "mine"],
        ["-x", "url=sqlite://", "revision", "-m", "x"],  # options first
    ],
    ids=lambda args: " ".join(args),
)
def test_commands_that_write_scripts_are_refused(args: list[str], tmp_path: Path) -> None:
    before = _scripts()
    done = checkpointer_cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "refused" in done.stderr
    assert "your own Alembic environment" in done.stderr.replace("\n", " ")
    assert "upgrade_from_host_env" in done.stderr
    assert "deploying" in done.stderr.lower()
    assert _scripts() == before, "the package's migration scripts changed"
    assert list(tmp_path.iterdir()) == []  # `init mine` made nothing either


def test_revision_would_have_written_into_the_scripts(tmp_path: Path) -> None:
    """What the refusal prevents: Alembic's own `revision` on our scripts adds a file
    (run on a copy of them, so nothing of the package changes)."""
    import shutil

    from alembic.config import Config

    from alembic import command

    copy = tmp_path / "scripts"
    shutil.copytree(script_location(), copy)
    config = Config()
    config.set_main_option("script_location", str(copy))
    command.revision(config, message="x")
    assert (
        len(list((copy / "versions").glob("*.py")))
        == len(list((Path(script_location()) / "versions").glob("*.py"))) + 1
    )


@pytest.mark.parametrize("name", ["list_templates", "ensure_version"])
def test_commands_of_no_use_here_are_refused(name: str, tmp_path: Path) -> None:
    done = checkpointer_cli("-x", "url=sqlite:///x.db", name, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"`{name}` is not offered here" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_alembic_command_is_either_accepted_or_refused() -> None:
    """A command a later Alembic adds is refused until it is reviewed and accepted."""
    commands = alembic_commands()
    assert set(ACCEPTED) <= commands
    assert commands >= WRITES_SCRIPTS
    assert not set(ACCEPTED) & WRITES_SCRIPTS


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_accepted_commands(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Each accepted command, on a plain URL (see test_urls.py for the drivers)."""
    if dialect == "postgresql":
        db = sync_pg_url(request.getfixturevalue("fresh_pg"))
        url = db.replace("+psycopg", "")
    else:
        db = url = f"sqlite:///{tmp_path}/cli.db"
    before = _scripts()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = checkpointer_cli("-x", f"url={url}", *args, cwd=tmp_path)
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done

    upgraded = run("upgrade", "head")
    assert "Running upgrade 0002 -> 0003" in upgraded.stderr
    assert "applied revisions 0001, 0002, 0003, 0004, 0005, 0006" in upgraded.stderr
    assert head() in run("current").stdout
    assert head() in run("heads").stdout
    assert "0001" in run("history").stdout
    assert "Revision ID: 0002" in run("show", "0002").stdout
    run("branches")
    assert "No new upgrade operations detected" in run("check").stdout
    stamped = run("stamp", "0002")
    assert "warning: `stamp`" in stamped.stderr
    with with_conn(db) as conn:
        assert versions(conn) == ["0002"]
    run("stamp", head())
    downgraded = run("downgrade", "base")
    assert "reverted revisions 0006, 0005, 0004, 0003, 0002, 0001" in downgraded.stderr
    with with_conn(db) as conn:
        assert not (OURS | {VERSION_TABLE}) & table_names(conn)
    run("upgrade", "head")
    with with_conn(db) as conn:
        assert versions(conn) == [head()]
    assert _scripts() == before


def test_offline_sql_with_schema(tmp_path: Path) -> None:
    """Alembic's options are kept: `--sql` and `-x schema=` (the URL names no driver
    and nothing is connected)."""
    done = checkpointer_cli(
        "-x", "url=postgres://nobody@nowhere/none", "-x", "schema=lg",
        "upgrade", "head", "--sql", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE IF NOT EXISTS lg.checkpoints" in done.stdout
    assert f"INSERT INTO lg.{VERSION_TABLE}" in done.stdout


def test_offline_downgrade_drops_the_version_table(tmp_path: Path) -> None:
    done = checkpointer_cli(
        "-x", "url=postgresql://nobody@nowhere/none", "downgrade", "head:base", "--sql",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"DROP TABLE {VERSION_TABLE}" in done.stdout


def test_no_command(tmp_path: Path) -> None:
    done = checkpointer_cli(cwd=tmp_path)
    assert done.returncode == 2
    assert "upgrade head" in done.stderr
