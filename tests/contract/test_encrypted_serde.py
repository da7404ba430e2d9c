"""No channel value in clear under a serde that encrypts (issue 16, item 7).

The official layout keeps primitive channel values (`None`, `str`, `int`, `float`,
`bool`) inline in the checkpoint JSON, where an `EncryptedSerializer` never sees them.
With a serde that hides what it stores (an `EncryptedSerializer`, or any serde whose
bytes for a probe string do not contain that string), every channel value goes to the
blobs table through the serde instead; the official saver reads those rows with the
same serde. Metadata stays in clear, and searchable: that is what `list(filter=...)`
matches. Each test dumps every column of every table and looks for marker strings."""

from __future__ import annotations

import json
import operator
import zlib
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, StateGraph
from sqlalchemy import Connection, Engine, MetaData, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.codec import inlines_primitives
from checkpointer.schema import checkpoints

SECRET = "s3cr3t-channel-value"
"""In every channel value and write; must never be found in the database."""
PUBLIC = "m3tadata-in-clear"
"""In metadata only; must be found there, and only there."""
AES_KEY = b"0123456789abcdef0123456789abcdef"


def encrypting() -> EncryptedSerializer:
    return EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY)


class Compressing(SerializerProtocol):
    """An application's own serde that hides its plaintext without being an
    `EncryptedSerializer` (here: compressed, which the probe detects the same way)."""

    def __init__(self) -> None:
        self.inner = JsonPlusSerializer()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        type_, data = self.inner.dumps_typed(obj)
        return type_, zlib.compress(data)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self.inner.loads_typed((data[0], zlib.decompress(data[1])))


class State(TypedDict):
    text: str
    count: int
    ratio: float
    done: bool
    items: Annotated[list[str], operator.add]


def graph_builder() -> StateGraph[Any]:
    def first(s: State) -> dict[str, Any]:
        return {"text": f"{SECRET}-1", "count": s["count"] + 1, "items": [f"{SECRET}-a"]}

    def second(s: State) -> dict[str, Any]:
        return {"text": s["text"] + "-2", "ratio": 0.5, "done": True, "items": ["b"]}

    builder = StateGraph(State)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    return builder


START_STATE = {"text": f"{SECRET}-0", "count": 41, "ratio": 0.0, "done": False, "items": []}


def _checkpoint() -> Any:
    values = {
        "text": f"{SECRET}-direct",
        "n": 1234567,
        "x": 2.5,
        "flag": True,
        "nothing": None,
        "obj": {"k": SECRET},
    }
    return {
        "v": 4,
        "id": "1ef00000-0000-6000-8000-000000000301",
        "ts": "2024-07-01T00:00:00+00:00",
        "channel_values": values,
        "channel_versions": dict.fromkeys(values, "1"),
        "versions_seen": {},
        "updated_channels": list(values),
    }


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _text(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False).encode()
    return str(value).encode()


def dump(conn: Connection) -> Iterator[tuple[str, str, bytes]]:
    """Every column of every row of every table in the database, as bytes."""
    reflected = MetaData()
    reflected.reflect(conn)
    assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= set(reflected.tables)
    for table in reflected.sorted_tables:
        for row in conn.execute(select(table)).mappings():
            for column, value in row.items():
                yield table.name, column, _text(value)


def where(conn: Connection, marker: str) -> set[tuple[str, str]]:
    return {(t, c) for t, c, data in dump(conn) if marker.encode() in data}


def _sync_url(url: str) -> str:
    return (
        url.replace("+asyncpg", "+psycopg")
        .replace("+aiosqlite", "")
        .replace("+asyncmy", "+pymysql")
    )


async def _write_everything(saver: AsyncSQLAlchemySaver, sync_saver: SQLAlchemySaver) -> None:
    """A direct `put` of every primitive kind, writes, and a graph run by each saver."""
    metadata: Any = {"note": PUBLIC, "step": 0}
    stored = await saver.aput(
        _config("direct"), _checkpoint(), metadata, _checkpoint()["channel_versions"]
    )
    await saver.aput_writes(stored, [("text", f"{SECRET}-write"), ("n", 7)], "task-1")
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert got.checkpoint["channel_values"] == _checkpoint()["channel_values"]
    assert got.pending_writes == [("task-1", "text", f"{SECRET}-write"), ("task-1", "n", 7)]
    assert got.metadata == metadata

    expected = (
        graph_builder().compile(checkpointer=InMemorySaver()).invoke(START_STATE, _config("memory"))
    )
    graph = graph_builder().compile(checkpointer=saver)
    assert await graph.ainvoke(START_STATE, _config("async-graph")) == expected
    assert (await graph.aget_state(_config("async-graph"))).values == expected
    sync_graph = graph_builder().compile(checkpointer=sync_saver)
    assert sync_graph.invoke(START_STATE, _config("sync-graph")) == expected
    history = list(sync_graph.get_state_history(_config("sync-graph")))
    assert [s.values.get("count") for s in history] == [42, 42, 41, None]


@pytest.fixture
def sync_engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(_sync_url(db_url))
    yield engine
    engine.dispose()


@pytest.mark.parametrize("serde", [encrypting, Compressing], ids=["aes", "own-serde"])
async def test_no_channel_value_in_clear(
    engine: AsyncEngine, sync_engine: Engine, db_url: str, serde: Any
) -> None:
    """Under an `EncryptedSerializer`, and under a serde of the application's own that
    the probe finds hiding its plaintext: no checkpoint document holds a channel value,
    the secret is nowhere in the database, metadata is in clear and found by a filter."""
    saver = AsyncSQLAlchemySaver(engine, serde=serde())
    sync_saver = SQLAlchemySaver(sync_engine, serde=serde())
    assert not inlines_primitives(saver.serde)
    await _write_everything(saver, sync_saver)

    with sync_engine.connect() as conn:
        assert where(conn, SECRET) == set()
        assert where(conn, PUBLIC) == {("checkpoints", "metadata")}
        for document in conn.scalars(select(checkpoints.c.checkpoint)):
            assert document["channel_values"] == {}, document
    found = [t.config async for t in saver.alist(None, filter={"note": PUBLIC})]
    assert [c["configurable"]["thread_id"] for c in found] == ["direct"]


async def test_the_scan_finds_values_a_plain_serde_stores_in_clear(
    saver: AsyncSQLAlchemySaver, sync_engine: Engine
) -> None:
    """The control: with the default serde the same writes leave the secret readable
    (inline in the documents, as the official layout keeps them, and in blobs and
    writes), so the scan above can fail."""
    assert inlines_primitives(saver.serde)
    await _write_everything(saver, SQLAlchemySaver(sync_engine))
    with sync_engine.connect() as conn:
        assert {
            ("checkpoints", "checkpoint"),
            ("checkpoint_blobs", "blob"),
            ("checkpoint_writes", "blob"),
        } <= where(conn, SECRET)
        direct = conn.scalar(
            select(checkpoints.c.checkpoint).where(checkpoints.c.thread_id == "direct")
        )
        assert direct["channel_values"]["text"] == f"{SECRET}-direct"


async def test_the_official_saver_reads_encrypted_rows(pg_url: str) -> None:
    """`AsyncPostgresSaver` with the same `EncryptedSerializer` reads what we wrote:
    the same checkpoints, metadata, pending writes and graph state."""
    engine = create_async_engine(pg_url)
    sync_engine = create_engine(_sync_url(pg_url))
    try:
        await _read_by_the_official_saver(engine, sync_engine, pg_url)
    finally:
        sync_engine.dispose()
        await engine.dispose()


async def _read_by_the_official_saver(
    engine: AsyncEngine, sync_engine: Engine, db_url: str
) -> None:
    saver = AsyncSQLAlchemySaver(engine, serde=encrypting())
    await _write_everything(saver, SQLAlchemySaver(sync_engine, serde=encrypting()))
    url = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with AsyncPostgresSaver.from_conn_string(url, serde=encrypting()) as official:
        for thread in ("direct", "async-graph", "sync-graph"):
            ours = [t async for t in saver.alist(_config(thread))]
            theirs = [t async for t in official.alist(_config(thread))]
            assert len(ours) == len(theirs) > 0
            for mine, other in zip(ours, theirs, strict=True):
                assert mine.checkpoint == other.checkpoint
                assert mine.metadata == other.metadata
                assert mine.pending_writes == other.pending_writes
        graph = graph_builder().compile(checkpointer=official)
        state = await graph.aget_state(_config("async-graph"))
        assert state.values["text"] == f"{SECRET}-1-2"
        assert state.values["count"] == 42


class Unhashable(Compressing):
    """A serde that cannot be a dictionary key: decided on every `put`, not cached."""

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = None  # type: ignore[assignment]


async def test_an_unhashable_serde_is_probed_every_time(
    engine: AsyncEngine, sync_engine: Engine
) -> None:
    saver = AsyncSQLAlchemySaver(engine, serde=Unhashable())
    assert not inlines_primitives(saver.serde)
    metadata: Any = {"note": PUBLIC}
    stored = await saver.aput(_config("u"), _checkpoint(), metadata, {"text": "1", "n": "1"})
    got = await saver.aget_tuple(stored)
    assert got is not None
    assert got.checkpoint["channel_values"]["text"] == f"{SECRET}-direct"
    with sync_engine.connect() as conn:
        assert where(conn, SECRET) == set()
