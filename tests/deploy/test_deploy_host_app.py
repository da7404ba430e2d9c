"""A host application with its own Alembic environment and `alembic_version` runs our
migrations from its own deploy (`tests/host_app/`, the README recipe), and its
autogenerate ignores our tables."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util.exc import CommandError
from sqlalchemy import MetaData, create_engine, inspect, text

from alembic import command
from checkpointer import SQLAlchemySaver
from checkpointer.migrations import head

from ..deploy_support import run_alembic, sync_pg_url, versions, with_conn

HOST = Path(__file__).resolve().parents[1] / "host_app"
OURS = {
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpointer_settings",
    "checkpointer_alembic_version",
}


@pytest.fixture
def host_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[Config]:
    """The host's Alembic config, run in this process (as a host's own code would)."""
    config = Config(str(HOST / "alembic.ini"))
    yield config
    sys.modules.pop("models", None)


def host_versions(url: str) -> list[str]:
    with with_conn(url) as conn:
        return list(conn.scalars(text("SELECT version_num FROM alembic_version")))


def assert_both_histories(url: str) -> None:
    with with_conn(url) as conn:
        tables = set(inspect(conn).get_table_names())
        assert {"orders", "alembic_version"} | OURS <= tables
        assert versions(conn) == [head()]
    assert host_versions(url) == ["h001"]  # ours never in the host's version table


def host_metadata() -> MetaData:
    spec = importlib.util.spec_from_file_location("host_models", HOST / "models.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.metadata  # type: ignore[no-any-return]


def test_host_cli_upgrade_runs_ours_and_its_check_ignores_them(
    fresh_pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sync_pg_url(fresh_pg)
    monkeypatch.setenv("HOST_DATABASE_URL", url)
    run_alembic("upgrade", "head", cwd=HOST)  # the host's deploy step, nothing else
    assert_both_histories(url)
    command.check(Config(str(HOST / "alembic.ini")))  # its `alembic check`: no drift
    # The filter is what keeps our tables out: without it, they show as removals.
    with with_conn(url) as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), host_metadata())
        removed = {diff[1].name for diff in diffs if diff[0] == "remove_table"}
        assert removed == OURS


def test_host_commands_in_process_on_sqlite(
    host_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/host.db"
    monkeypatch.setenv("HOST_DATABASE_URL", url)
    # The host's `alembic check` (and its other commands) runs none of our revisions.
    with pytest.raises(CommandError, match="not up to date"):
        command.check(host_config)
    with with_conn(url) as conn:
        assert not OURS & set(inspect(conn).get_table_names())
    command.upgrade(host_config, "head")
    assert_both_histories(url)
    command.check(host_config)  # no drift: our tables are not the host's business
    command.upgrade(host_config, "head")  # again: nothing to do on either side
    command.downgrade(host_config, "base")  # the host's history only
    with with_conn(url) as conn:
        tables = set(inspect(conn).get_table_names())
        assert "orders" not in tables
        assert tables >= OURS
    engine = create_engine(url)
    try:
        saver = SQLAlchemySaver(engine)
        assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is None
    finally:
        engine.dispose()
