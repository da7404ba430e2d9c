"""Bad input gets a clear exception naming the problem, and nothing half-written stays
in the database."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.schema import checkpoint_blobs, checkpoint_writes, checkpoints

TABLES = (checkpoints, checkpoint_blobs, checkpoint_writes)


def _config(thread_id: str, **more: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", **more}}


def _sync_url(url: str) -> str:
    return (
        url.replace("+asyncpg", "+psycopg")
        .replace("+aiosqlite", "")
        .replace("+asyncmy", "+pymysql")
    )


def _with_blobs() -> tuple[Checkpoint, dict[str, str]]:
    """A checkpoint with two blob channels (and one inline) named in new versions."""
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"a": ["x"], "b": {"y": 1}, "c": 3}
    versions = {"a": "1", "b": "1", "c": "1"}
    checkpoint["channel_versions"] = dict(versions)
    return checkpoint, versions


async def _counts(engine: AsyncEngine, thread_id: str | None = None) -> dict[str, int]:
    async with engine.connect() as conn:
        counts = {}
        for table in TABLES:
            query = select(func.count()).select_from(table)
            if thread_id is not None:
                query = query.where(table.c.thread_id == thread_id)
            counts[table.name] = int((await conn.execute(query)).scalar_one())
        return counts


NO_THREAD = [None, {}, {"configurable": {}}, {"configurable": {"thread_id": ""}}, {"x": 1}]


async def test_config_without_thread_id(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    """Every method that needs a thread says `thread_id` is missing, and writes nothing."""
    checkpoint, versions = _with_blobs()
    for config in NO_THREAD:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: saver.aput(config, checkpoint, {}, versions),  # noqa: B023
            lambda: saver.aput_writes(config, [("a", 1)], "task"),  # noqa: B023
            lambda: saver.aget_tuple(config),  # noqa: B023
        ]
        if config is not None:  # `list(None)` lists every thread
            calls.append(lambda: anext(saver.alist(config)))  # noqa: B023
        for call in calls:
            with pytest.raises((ValueError, KeyError), match="thread_id"):
                await call()
    assert await _counts(engine) == dict.fromkeys(
        ["checkpoints", "checkpoint_blobs", "checkpoint_writes"], 0
    )


async def test_delete_thread_without_id(saver: AsyncSQLAlchemySaver) -> None:
    """`delete_thread(None)` is an error, not a delete of the thread called "None"."""
    await saver.aput(_config("None"), empty_checkpoint(), {}, {})
    for bad in (None, ""):
        with pytest.raises(ValueError, match="thread_id"):
            await saver.adelete_thread(bad)  # type: ignore[arg-type]
    assert await saver.aget_tuple(_config("None")) is not None


async def test_writes_need_a_checkpoint_id(saver: AsyncSQLAlchemySaver) -> None:
    with pytest.raises(ValueError, match="checkpoint_id"):
        await saver.aput_writes(_config("t"), [("a", 1)], "task")


async def test_nul_in_ids_is_refused_alike(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    """PostgreSQL text cannot hold NUL, so a NUL in a thread id, namespace or checkpoint
    id is a `ValueError` naming the field, on every dialect, before anything is written."""
    for field, config in [
        ("thread_id", _config("a\x00b")),
        ("checkpoint_ns", {"configurable": {"thread_id": "t", "checkpoint_ns": "n\x00"}}),
        ("checkpoint_id", _config("t", checkpoint_id="\x00")),
    ]:
        with pytest.raises(ValueError, match=field):
            await saver.aget_tuple(config)
        with pytest.raises(ValueError, match=field):
            await saver.aput(config, empty_checkpoint(), {}, {})
    with pytest.raises(ValueError, match="thread_id"):
        await saver.adelete_thread("a\x00b")
    assert (await _counts(engine))["checkpoints"] == 0


async def test_nul_in_metadata_is_stripped(saver: AsyncSQLAlchemySaver) -> None:
    """NUL characters in metadata (top-level and nested values, list items, and keys)
    are stripped, as the official savers strip them from top-level values: PostgreSQL
    JSONB cannot hold NUL, and every dialect stores the same document. Filters are
    stripped the same way, so they find what was stored. Channel values and writes
    are blobs, which keep NUL characters exactly."""
    metadata = {
        "plain": "a\x00b",
        "nested": {"deep": {"s": "\x00x\x00", "n": 1}, "k\x00ey": "v"},
        "list": ["\x00", "ok", {"in\x00list": "y\x00"}],
        "ke\x00y": "value",
    }
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"text": "keep\x00this", "inline": "plain"}
    checkpoint["channel_versions"] = {"text": "1", "inline": "1"}
    stored = await saver.aput(
        _config("nul"),
        checkpoint,
        metadata,
        {"text": "1", "inline": "1"},  # type: ignore[arg-type]
    )
    await saver.aput_writes(stored, [("text", "w\x00rite")], "task")
    got = await saver.aget_tuple(_config("nul"))
    assert got is not None
    assert got.metadata == {
        "plain": "ab",
        "nested": {"deep": {"s": "x", "n": 1}, "key": "v"},
        "list": ["", "ok", {"inlist": "y"}],
        "key": "value",
    }
    assert got.checkpoint["channel_values"] == {"text": "keep\x00this", "inline": "plain"}
    assert got.pending_writes == [("task", "text", "w\x00rite")]
    for f in ({"plain": "a\x00b"}, {"plain": "ab"}, {"ke\x00y": "value"}, {"nested": {"key": "v"}}):
        assert [t.config for t in [t async for t in saver.alist(None, filter=f)]] == [got.config]


@pytest.fixture
async def failing_trigger(engine: AsyncEngine) -> None:
    """Triggers that make inserting the checkpoint of thread `boom`, and the write of
    channel `boom`, fail inside the database."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(
                text(
                    "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'boom trigger fired'; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON checkpoints FOR EACH ROW "
                    "WHEN (NEW.thread_id = 'boom') EXECUTE FUNCTION boom()"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON checkpoint_writes "
                    "FOR EACH ROW WHEN (NEW.channel = 'boom') EXECUTE FUNCTION boom()"
                )
            )
        elif engine.dialect.name in ("mysql", "mariadb"):
            for table, condition in (
                ("checkpoints", "NEW.thread_id = 'boom'"),
                ("checkpoint_writes", "NEW.channel = 'boom'"),
            ):
                await conn.execute(
                    text(
                        f"CREATE TRIGGER boom_{table} BEFORE INSERT ON {table} FOR EACH ROW "
                        f"BEGIN IF {condition} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT "
                        "= 'boom trigger fired'; END IF; END"
                    )
                )
        else:
            for table, condition in (
                ("checkpoints", "NEW.thread_id = 'boom'"),
                ("checkpoint_writes", "NEW.channel = 'boom'"),
            ):
                await conn.execute(
                    text(
                        f"CREATE TRIGGER boom_{table} BEFORE INSERT ON {table} WHEN {condition} "
                        "BEGIN SELECT RAISE(ABORT, 'boom trigger fired'); END"
                    )
                )


@pytest.mark.usefixtures("failing_trigger")
async def test_failed_put_leaves_no_blobs(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    """The checkpoint insert fails after its blobs were written in the same statement
    (PostgreSQL) or transaction (SQLite): the error surfaces and no blob stays behind."""
    checkpoint, versions = _with_blobs()
    with pytest.raises(Exception, match="boom trigger fired"):
        await saver.aput(_config("boom"), checkpoint, {}, versions)
    assert await _counts(engine, "boom") == {
        "checkpoints": 0,
        "checkpoint_blobs": 0,
        "checkpoint_writes": 0,
    }
    # The same saver (and its pool) still works, and a good thread is stored whole.
    stored = await saver.aput(_config("fine"), checkpoint, {}, versions)
    assert await _counts(engine, "fine") == {
        "checkpoints": 1,
        "checkpoint_blobs": 2,
        "checkpoint_writes": 0,
    }
    # A batch of writes whose third row fails leaves none of the batch.
    with pytest.raises(Exception, match="boom trigger fired"):
        await saver.aput_writes(stored, [("a", 1), ("b", 2), ("boom", 3), ("c", 4)], "task")
    assert (await _counts(engine, "fine"))["checkpoint_writes"] == 0
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert got.pending_writes == []
    assert got.checkpoint["channel_values"] == {"a": ["x"], "b": {"y": 1}, "c": 3}


@pytest.mark.usefixtures("failing_trigger")
def test_failed_sync_put_leaves_no_blobs(db_url: str) -> None:
    engine = create_engine(_sync_url(db_url))
    saver = SQLAlchemySaver(engine)
    try:
        checkpoint, versions = _with_blobs()
        with pytest.raises(Exception, match="boom trigger fired"):
            saver.put(_config("boom"), checkpoint, {}, versions)
        with engine.connect() as conn:
            for table in TABLES:
                count = conn.scalar(
                    select(func.count()).select_from(table).where(table.c.thread_id == "boom")
                )
                assert count == 0, table.name
    finally:
        engine.dispose()


class Opaque:
    pass


NOT_JSON: list[tuple[Any, type[Exception], str]] = [
    ({"obj": Opaque()}, TypeError, "metadata['obj'] holds a Opaque, which is not JSON"),
    ({"a": {"b": {1, 2}}}, TypeError, "metadata['a']['b'] holds a set"),
    ({"a": [1, b"x"]}, TypeError, "metadata['a'][1] holds a bytes"),
    ({"a": {1: "x"}}, TypeError, "metadata['a'] has a non-string key 1"),
    ({"a": float("nan")}, ValueError, "metadata['a'] holds nan"),
]


async def test_non_json_metadata(saver: AsyncSQLAlchemySaver, engine: AsyncEngine) -> None:
    """Metadata JSON cannot hold is refused with the path of the offending value, before
    any row (blob or checkpoint) is written."""
    checkpoint, versions = _with_blobs()
    for metadata, error, message in NOT_JSON:
        with pytest.raises(error, match=re.escape(message)):
            await saver.aput(_config("t"), checkpoint, metadata, versions)
    assert await _counts(engine) == dict.fromkeys(
        ["checkpoints", "checkpoint_blobs", "checkpoint_writes"], 0
    )


async def test_bad_list_arguments(saver: AsyncSQLAlchemySaver) -> None:
    with pytest.raises(TypeError, match="filter"):
        await anext(saver.alist(None, filter=[("a", 1)]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("filter['a'] holds a Opaque")):
        await anext(saver.alist(None, filter={"a": Opaque()}))
    with pytest.raises(ValueError, match="checkpoint_id"):
        await anext(saver.alist(None, before=_config("t")))
