"""`upgrade_from_host_env` tells the host's Alembic command by its `MigrationContext`
(`alembic.context.get_context()`, its `opts` and `as_sql`), in one place
(`migrations._host_command`). Where `opts` is missing it migrates nothing, says at INFO
what to run instead, and the saver fails closed until that is run; otherwise it
migrates and leaves the host's environment installed for the rest of its command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import alembic.context
import pytest
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from checkpointer import SchemaNotReadyError, SQLAlchemySaver
from checkpointer.migrations import VERSION_TABLE, upgrade_from_host_env

HOST = Path(__file__).resolve().parents[1] / "host_app"


def upgrade(revision: Any, context: Any) -> list[Any]:
    """The host's command function (named as Alembic's `upgrade` command's is)."""
    return []


def test_host_command_unknown_migrates_nothing_and_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/host.db")
    config = Config(str(HOST / "alembic.ini"))
    try:
        with engine.connect() as conn:
            script = ScriptDirectory.from_config(config)
            with EnvironmentContext(config, script, fn=upgrade) as host:
                host.configure(connection=conn)
                with monkeypatch.context() as patched, caplog.at_level(logging.INFO):
                    patched.delattr(host.get_context(), "opts")
                    assert upgrade_from_host_env(conn) == []
                lines = [r.getMessage() for r in caplog.records if r.name == "checkpointer"]
                assert len(lines) == 1
                assert "opts" in lines[0]
                assert "python -m checkpointer upgrade head" in lines[0]
                assert VERSION_TABLE not in inspect(conn).get_table_names()

                # with Alembic as tested, the same call in the same command migrates ...
                assert upgrade_from_host_env(conn) != []
                conn.commit()
                # ... and the host's environment is still the module's
                assert alembic.context.get_context() is host.get_context()
                assert alembic.context.config is config
            # (leaving the host's environment above removed it without a KeyError)
        with pytest.raises(SchemaNotReadyError):  # a fresh database, never migrated
            SQLAlchemySaver(create_engine(f"sqlite:///{tmp_path}/other.db")).get_tuple(
                {"configurable": {"thread_id": "t"}}
            )
        assert SQLAlchemySaver(engine).get_tuple({"configurable": {"thread_id": "t"}}) is None
    finally:
        engine.dispose()
