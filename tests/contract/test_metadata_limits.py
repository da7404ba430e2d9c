"""Metadata is never changed in a way that loses something silently (issue 16, item 4).

PostgreSQL JSONB cannot hold NUL, so NUL characters are stripped from metadata strings
and keys, as LangGraph itself strips them from top-level values. Two keys of one object
that differ only by NUL (`{"a": 1, "a\\x00": 2}`) would then become one, losing a value:
they are refused with a `ValueError` naming both keys and where they are, on every
dialect and both savers, before anything is written (the official saver refuses them
too: PostgreSQL rejects the `\\u0000` it sends). Metadata nested deeper than
`METADATA_MAX_DEPTH` (100) levels is refused with a `ValueError` naming the limit,
instead of a `RecursionError` that names nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from sqlalchemy import create_engine, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.codec import METADATA_MAX_DEPTH
from checkpointer.schema import checkpoint_blobs, checkpoints

MERGING: list[tuple[dict[str, Any], str]] = [
    ({"a": 1, "a\x00": 2}, r"metadata has keys 'a' and 'a\x00'"),
    ({"a\x00b": 1, "\x00ab": 2}, r"metadata has keys '\x00ab' and 'a\x00b'"),
    ({"n": {"k": 1, "k\x00": 2}}, r"metadata['n'] has keys 'k' and 'k\x00'"),
    ({"l": [0, {"x": 1, "\x00x": 2}]}, r"metadata['l'][1] has keys '\x00x' and 'x'"),
    ({"d": {"e": [{"f": {"g": 1, "g\x00\x00": 2}}]}}, r"metadata['d']['e'][0]['f'] has keys"),
]


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _checkpoint() -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"obj": {"k": 1}}
    checkpoint["channel_versions"] = {"obj": "1"}
    return checkpoint


def _nested(depth: int) -> dict[str, Any]:
    """`depth` objects and arrays nested in each other (the outermost is an object)."""
    value: Any = "leaf"
    for level in range(depth - 1, 0, -1):
        value = {"k": value} if level % 2 else [value]
    return {"deep": value}


def _sync_url(url: str) -> str:
    return (
        url.replace("+asyncpg", "+psycopg")
        .replace("+aiosqlite", "")
        .replace("+asyncmy", "+pymysql")
    )


async def _rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        n = (await conn.execute(select(func.count()).select_from(checkpoints))).scalar_one()
        n += (await conn.execute(select(func.count()).select_from(checkpoint_blobs))).scalar_one()
        return int(n)


async def test_keys_differing_only_by_nul_are_refused(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine, db_url: str
) -> None:
    """Top-level, nested and in-list keys: a `ValueError` naming both keys and their
    path, nothing written, from the async and the sync saver alike."""
    sync_engine = create_engine(_sync_url(db_url))
    sync_saver = SQLAlchemySaver(sync_engine)
    try:
        for metadata, message in MERGING:
            with pytest.raises(ValueError, match=re.escape(message)) as raised:
                await saver.aput(_config("t"), _checkpoint(), metadata, {"obj": "1"})
            assert "differ only by NUL" in str(raised.value)
            with pytest.raises(ValueError, match=re.escape(message)):
                sync_saver.put(_config("t"), _checkpoint(), metadata, {"obj": "1"})  # type: ignore[arg-type]
    finally:
        sync_engine.dispose()
    assert await _rows(engine) == 0


async def test_a_config_key_that_would_merge_with_a_metadata_key_is_refused(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    """LangGraph copies `configurable` values into metadata under keys the metadata
    lacks; `"a\\x00"` in metadata does not stop `"a"` from the config, and stripping
    would merge them."""
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "a": "from config"}}
    with pytest.raises(ValueError, match=re.escape(r"keys 'a' and 'a\x00'")):
        await saver.aput(config, _checkpoint(), {"a\x00": "from metadata"}, {"obj": "1"})  # type: ignore[typeddict-unknown-key]
    assert await _rows(engine) == 0


async def test_keys_with_nul_that_merge_with_nothing_are_kept(
    saver: AsyncSQLAlchemySaver,
) -> None:
    """Only a merge is refused: a lone key with NUL is stored without it, as before,
    and a filter written either way finds it."""
    metadata: Any = {"a\x00": 1, "b": {"c\x00": [{"\x00d": "e\x00"}]}}
    stored = await saver.aput(_config("lone"), _checkpoint(), metadata, {"obj": "1"})
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert got.metadata == {"a": 1, "b": {"c": [{"d": "e"}]}}
    for f in ({"a": 1}, {"a\x00": 1}, {"b": {"c\x00": [{"d": "e"}]}}):
        assert [t.config async for t in saver.alist(None, filter=f)] == [got.config]


async def test_a_filter_with_keys_that_would_merge_is_refused(saver: AsyncSQLAlchemySaver) -> None:
    with pytest.raises(ValueError, match=re.escape(r"filter has keys 'a' and 'a\x00'")):
        [t async for t in saver.alist(None, filter={"a": 1, "a\x00": 1})]


async def test_metadata_at_the_depth_limit_is_stored_and_found(
    saver: AsyncSQLAlchemySaver,
) -> None:
    """`METADATA_MAX_DEPTH` levels are stored and read back; on PostgreSQL a filter as
    deep finds them (SQLite's emulated containment nests one SQL expression per level,
    and its parser stops near ten: a shallower filter finds them there)."""
    assert METADATA_MAX_DEPTH == 100
    # MySQL/MariaDB: 31 levels (MariaDB's JSON functions stop before 32)
    mysql = saver.engine.dialect.name in ("mysql", "mariadb")
    metadata: Any = _nested(31 if mysql else METADATA_MAX_DEPTH)
    stored = await saver.aput(_config("deep"), _checkpoint(), metadata, {"obj": "1"})
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert got.metadata == metadata
    found = [t.config async for t in saver.alist(None, filter={"deep": {"k": []}})]
    assert found == [got.config]
    if saver.engine.dialect.name == "postgresql":
        assert [t.config async for t in saver.alist(None, filter=metadata)] == [got.config]


async def test_metadata_deeper_than_the_limit_is_refused(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine, db_url: str
) -> None:
    """One level past the limit, 3,000 levels (a `RecursionError` before) and a
    structure that contains itself: a `ValueError` naming the metadata and the limit,
    nothing written, from both savers; a filter as deep is refused the same way."""
    cyclic: dict[str, Any] = {"x": []}
    cyclic["x"].append(cyclic)
    sync_engine = create_engine(_sync_url(db_url))
    sync_saver = SQLAlchemySaver(sync_engine)
    try:
        for metadata in (_nested(METADATA_MAX_DEPTH + 1), _nested(3000), cyclic):
            expected = r"metadata is nested more than 100 levels deep \(at metadata\['"
            with pytest.raises(ValueError, match=expected):
                await saver.aput(_config("t"), _checkpoint(), metadata, {"obj": "1"})  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=expected):
                sync_saver.put(_config("t"), _checkpoint(), metadata, {"obj": "1"})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="filter is nested more than 100 levels deep"):
            [t async for t in saver.alist(None, filter=_nested(3000))]
    finally:
        sync_engine.dispose()
    assert await _rows(engine) == 0
