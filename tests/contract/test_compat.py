"""Checkpoints written by LangGraph before checkpoint format 4 still read correctly.

Before format 4, the sends a step scheduled were not a channel of the next checkpoint
but `TASKS` writes of its parent. Reading such a checkpoint moves them into
`channel_values[TASKS]` (in `writes_sort_key` order) and gives `TASKS` the checkpoint's
greatest channel version, as the official savers do. The rows are inserted directly,
as an old LangGraph would have left them; on PostgreSQL the official
`AsyncPostgresSaver` reads the same rows and must give the same tuples."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.types import TASKS
from langgraph.types import Send
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.schema import checkpoint_blobs, checkpoint_writes, checkpoints

THREAD = "old"
PARENT = "1ef00000-0000-6000-8000-000000000001"
CHILD = "1ef00000-0000-6000-8000-000000000002"
NEWER = "1ef00000-0000-6000-8000-000000000003"
GRANDCHILD = "1ef00000-0000-6000-8000-000000000004"
V1 = "00000000000000000000000000000001.0123456789012345"
V2 = "00000000000000000000000000000002.0123456789012345"

SENDS = [  # (task_path, task_id, idx, send), inserted out of order
    ("~__pregel_pull, 1", "task-b", 0, Send("worker", {"job": 3})),
    ("~__pregel_pull, 0", "task-z", 1, Send("worker", {"job": 2})),
    ("~__pregel_pull, 0", "task-z", 0, Send("worker", {"job": 1})),
    ("~__pregel_pull, 0", "task-a", 0, Send("other", "payload")),
]
EXPECTED_SENDS = [
    Send("other", "payload"),
    Send("worker", {"job": 1}),
    Send("worker", {"job": 2}),
    Send("worker", {"job": 3}),
]


def _document(checkpoint_id: str, v: int, versions: dict[str, str]) -> dict[str, Any]:
    return {
        "v": v,
        "id": checkpoint_id,
        "ts": "2024-07-01T00:00:00+00:00",
        "channel_values": {"counter": 2},
        "channel_versions": versions,
        "versions_seen": {"__input__": {}},
        "pending_sends": [],
    }


async def _insert_old_thread(engine: AsyncEngine, serde: Any) -> None:
    """A format-3 parent with TASKS writes, its format-3 child (whose sends those are),
    a format-4 checkpoint with the same parent (no migration), and a format-3
    grandchild whose parent (the child) has no sends."""
    rows = [
        (PARENT, None, 3, {"counter": V1, "messages": V1}),
        (CHILD, PARENT, 3, {"counter": V2, "messages": V2}),
        (NEWER, PARENT, 4, {"counter": V2, "messages": V2}),
        (GRANDCHILD, CHILD, 3, {"counter": V2, "messages": V2}),
    ]
    async with engine.begin() as conn:
        for checkpoint_id, parent, v, versions in rows:
            await conn.execute(
                insert(checkpoints),
                {
                    "thread_id": THREAD,
                    "checkpoint_ns": "",
                    "checkpoint_id": checkpoint_id,
                    "parent_checkpoint_id": parent,
                    "type": None,
                    "checkpoint": _document(checkpoint_id, v, versions),
                    "metadata": {"source": "loop", "step": len(versions)},
                },
            )
        for version, value in ((V1, ["hello"]), (V2, ["hello", "world"])):
            type_, blob = serde.dumps_typed(value)
            await conn.execute(
                insert(checkpoint_blobs),
                {
                    "thread_id": THREAD,
                    "checkpoint_ns": "",
                    "channel": "messages",
                    "version": version,
                    "type": type_,
                    "blob": blob,
                },
            )
        writes = [(path, task, idx, TASKS, send) for path, task, idx, send in SENDS]
        writes.append(("~__pregel_pull, 0", "task-a", 1, "counter", 5))  # not a send
        for path, task, idx, channel, value in writes:
            type_, blob = serde.dumps_typed(value)
            await conn.execute(
                insert(checkpoint_writes),
                {
                    "thread_id": THREAD,
                    "checkpoint_ns": "",
                    "checkpoint_id": PARENT,
                    "task_id": task,
                    "task_path": path,
                    "idx": idx,
                    "channel": channel,
                    "type": type_,
                    "blob": blob,
                },
            )


def _config(checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": THREAD, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _check(by_id: dict[str, CheckpointTuple]) -> None:
    child = by_id[CHILD].checkpoint
    assert child["channel_values"] == {
        "counter": 2,
        "messages": ["hello", "world"],
        TASKS: EXPECTED_SENDS,
    }
    assert child["channel_versions"] == {"counter": V2, "messages": V2, TASKS: V2}
    assert by_id[CHILD].parent_config == _config(PARENT)
    # The parent's own view is unchanged: its TASKS writes are its pending writes.
    parent = by_id[PARENT]
    assert TASKS not in parent.checkpoint["channel_values"]
    assert parent.checkpoint["channel_values"] == {"counter": 2, "messages": ["hello"]}
    assert [w[2] for w in parent.pending_writes if w[1] == TASKS] == EXPECTED_SENDS
    assert ("task-a", "counter", 5) in parent.pending_writes
    # Format 4 is never migrated, nor a format-3 checkpoint whose parent sent nothing.
    for checkpoint_id in (NEWER, GRANDCHILD):
        checkpoint = by_id[checkpoint_id].checkpoint
        assert TASKS not in checkpoint["channel_values"], checkpoint_id
        assert TASKS not in checkpoint["channel_versions"], checkpoint_id


async def test_format_3_pending_sends_are_migrated_on_read(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine, db_url: str
) -> None:
    await _insert_old_thread(engine, saver.serde)
    by_id = {}
    for checkpoint_id in (PARENT, CHILD, NEWER, GRANDCHILD):
        got = await saver.aget_tuple(_config(checkpoint_id))
        assert got is not None
        by_id[checkpoint_id] = got
    _check(by_id)
    # The same through `list` (one page with every generation), `before` and `limit`.
    listed = {t.config["configurable"]["checkpoint_id"]: t async for t in saver.alist(_config())}
    assert listed == by_id
    _check(listed)
    page = [t async for t in saver.alist(_config(), before=_config(NEWER), limit=1)]
    assert [t.checkpoint for t in page] == [by_id[CHILD].checkpoint]
    latest = await saver.aget_tuple(_config())
    assert latest == by_id[GRANDCHILD]

    # The sync saver reads the same.
    from sqlalchemy import create_engine

    sync_engine = create_engine(
        db_url.replace("+asyncpg", "+psycopg")
        .replace("+aiosqlite", "")
        .replace("+asyncmy", "+pymysql")
    )
    try:
        sync_saver = SQLAlchemySaver(sync_engine)
        assert {
            t.config["configurable"]["checkpoint_id"]: t for t in sync_saver.list(_config())
        } == (by_id)
    finally:
        sync_engine.dispose()

    if engine.dialect.name == "postgresql":
        # The official saver, on the same rows, agrees tuple for tuple.
        url = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        async with AsyncPostgresSaver.from_conn_string(url) as official:
            for checkpoint_id, ours in by_id.items():
                theirs = await official.aget_tuple(_config(checkpoint_id))
                assert theirs is not None
                assert ours.checkpoint == theirs.checkpoint, checkpoint_id
                assert ours.metadata == theirs.metadata
                assert ours.parent_config == theirs.parent_config
                assert sorted(ours.pending_writes, key=repr) == sorted(
                    theirs.pending_writes, key=repr
                )
            official_list = [t.checkpoint async for t in official.alist(_config())]
            assert official_list == [t.checkpoint async for t in saver.alist(_config())]


async def test_empty_blob_rows_read_as_no_value(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine, db_url: str
) -> None:
    """A channel with a version but no value is stored as a `type = 'empty'` blob row
    (the storage contract); it reads as no value: not in `channel_values`, and never a
    delta channel's seed (the walk goes past it to the snapshot)."""
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.checkpoint.serde.types import _DeltaSnapshot
    from sqlalchemy import func, select

    thread = "empty-rows"
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    versions: dict[str, str] = {}
    stored = []
    for step in range(3):
        new = {ch: saver.get_next_version(versions.get(ch), None) for ch in ("msgs", "gone")}
        versions.update(new)
        values: dict[str, Any] = {"counter": step}
        if step == 0:
            values["msgs"] = _DeltaSnapshot(["seed"])
        checkpoint: Any = {
            "v": 4,
            "id": f"1ef00000-0000-6000-8000-00000000010{step}",
            "ts": "2024-07-01T00:00:00+00:00",
            "channel_values": values,
            "channel_versions": dict(versions),
            "versions_seen": {},
            "updated_channels": ["msgs", "gone"],
        }
        config = await saver.aput(config, checkpoint, {"step": step}, new)
        await saver.aput_writes(config, [("msgs", f"w{step}")], task_id=f"t{step}")
        stored.append((config, dict(versions)))
    async with engine.connect() as conn:
        empty = select(checkpoint_blobs.c.channel, func.count()).where(
            checkpoint_blobs.c.thread_id == thread, checkpoint_blobs.c.type == "empty"
        )
        rows = (await conn.execute(empty.group_by(checkpoint_blobs.c.channel))).all()
        assert dict(rows) == {"gone": 3, "msgs": 2}  # type: ignore[arg-type]

    latest = await saver.aget_tuple(stored[-1][0])
    assert latest is not None
    assert latest.checkpoint["channel_values"] == {"counter": 2}
    middle = await saver.aget_tuple(stored[1][0])
    assert middle is not None
    assert middle.checkpoint["channel_values"] == {"counter": 1}
    listed = [t async for t in saver.alist({"configurable": {"thread_id": thread}})]
    assert [t.checkpoint for t in listed] == [
        latest.checkpoint,
        middle.checkpoint,
        listed[2].checkpoint,
    ]
    assert listed[2].checkpoint["channel_values"] == {
        "counter": 0,
        "msgs": _DeltaSnapshot(["seed"]),
    }
    # The empty row at step 1 is no seed: the walk goes on to step 0's snapshot.
    fast = await saver.aget_delta_channel_history(config=stored[-1][0], channels=["msgs", "gone"])
    default = await BaseCheckpointSaver.aget_delta_channel_history(
        saver, config=stored[-1][0], channels=["msgs", "gone"]
    )
    assert dict(fast) == dict(default)
    assert fast["msgs"] == {
        "seed": _DeltaSnapshot(["seed"]),
        "writes": [("t0", "msgs", "w0"), ("t1", "msgs", "w1")],
    }
    assert fast["gone"] == {"writes": []}

    if engine.dialect.name == "postgresql":
        url = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        async with AsyncPostgresSaver.from_conn_string(url) as official:
            for config, _ in stored:
                ours, theirs = await saver.aget_tuple(config), await official.aget_tuple(config)
                assert ours is not None
                assert theirs is not None
                assert ours.checkpoint == theirs.checkpoint


async def test_inline_values_and_the_snapshot_marker_read_back(
    saver: AsyncSQLAlchemySaver, db_url: str
) -> None:
    """Reads probe for blobs only where one can be (no inline value, or the `true`
    marker a `_DeltaSnapshot` leaves): inline primitives, a genuine inline `True`, a
    snapshot and an out-of-line value all read back, by id and in a list."""
    from langgraph.checkpoint.serde.types import _DeltaSnapshot

    values: dict[str, Any] = {
        "n": 3,
        "flag": True,
        "off": False,
        "none": None,
        "text": "true",
        "snap": _DeltaSnapshot(["a", "b"]),
        "obj": {"k": [1, 2]},
    }
    versions = {channel: saver.get_next_version(None, None) for channel in [*values, "gone"]}
    checkpoint: Any = {
        "v": 4,
        "id": "1ef00000-0000-6000-8000-000000000201",
        "ts": "2024-07-01T00:00:00+00:00",
        "channel_values": values,
        "channel_versions": versions,
        "versions_seen": {},
        "updated_channels": list(versions),
    }
    start: Any = {"configurable": {"thread_id": "inline-marker", "checkpoint_ns": ""}}
    config = await saver.aput(start, checkpoint, {"step": 0}, versions)
    got = await saver.aget_tuple(config)
    assert got is not None
    assert got.checkpoint["channel_values"] == values
    listed = [t async for t in saver.alist(start)]
    assert [t.checkpoint["channel_values"] for t in listed] == [values]

    if saver.engine.dialect.name == "postgresql":
        url = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        async with AsyncPostgresSaver.from_conn_string(url) as official:
            theirs = await official.aget_tuple(config)
            assert theirs is not None
            assert theirs.checkpoint["channel_values"] == values
