"""SQLite gives space back (issue 19): a database our migrations create gets
`auto_vacuum=FULL` before its first table, so the pages a sweep frees leave the file at
the sweep's commits; a database that already had tables is left in its mode."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver
from checkpointer.ids import id_floor
from checkpointer.migrations import upgrade


def _file_size(path: Path) -> tuple[int, int, int]:
    """(auto_vacuum, free pages, bytes) of the file after a full WAL checkpoint."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
            mode = conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
    finally:
        engine.dispose()
    return int(mode), int(free), path.stat().st_size


async def test_a_large_sweep_shrinks_the_file(tmp_path: Path) -> None:
    """300 idle threads of 3 checkpoints with a 16 kB value each (about 15 MB), swept:
    the file ends at under a fifth of its size, with no free page left in it."""
    path = tmp_path / "space.db"
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    saver = AsyncSQLAlchemySaver(engine)
    await saver.setup()
    old = datetime.now(timezone.utc) - timedelta(days=40)
    for t in range(300):
        thread = f"t-{t}-{uuid4().hex[:6]}"
        parent: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        version = None
        for i in range(3):
            version = saver.get_next_version(version)
            moment = old + timedelta(seconds=t * 3 + i)
            checkpoint = Checkpoint(
                v=4, id=id_floor(moment)[:19] + "8000-00000000000" + str(i),
                ts="", channel_values={"v": os.urandom(16_000)}, channel_versions={"v": version},
                versions_seen={}, updated_channels=None,
            )  # fmt: skip
            parent = await saver.aput(parent, checkpoint, {}, {"v": version})  # type: ignore[arg-type]
    await engine.dispose()
    mode, _, full = _file_size(path)
    assert mode == 1  # FULL
    assert full > 14_000_000

    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    report = await AsyncSQLAlchemySaver(engine).asweep(idle_for=timedelta(days=30))
    await engine.dispose()
    assert report.threads == 300
    _, free, after = _file_size(path)
    assert free == 0
    assert after < full / 5, (full, after)


def test_a_database_with_tables_keeps_its_mode(tmp_path: Path) -> None:
    """A file that already has a table (a host app's, or an older database of ours)
    cannot change mode without rewriting it (`VACUUM`): it is left alone."""
    path = tmp_path / "host.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE host_app (id INTEGER PRIMARY KEY)")
            conn.commit()
            upgrade(conn)
            assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == 0
    finally:
        engine.dispose()
