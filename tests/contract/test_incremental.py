"""`blob_encoding="incremental"`: every checkpoint reads back exactly what was written
(real LangGraph graphs against the saver without the option and `InMemorySaver`), every
operation that deletes keeps the bases its survivors need, two writers, a failed put and
a restart leave readable chains, and the option is safe to turn on and off. PostgreSQL
and SQLite, async and sync savers."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver, incremental, schema
from checkpointer.errors import BlobEncodingError
from checkpointer.migrations import upgrade

from .. import mysql_server
from ..conftest import _create_database, drop_database, pg_database_url

blobs, cp = schema.checkpoint_blobs, schema.checkpoints
INC = "incremental"

_rng = random.Random(7)
WORDS = ["".join(_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_rng.randint(2, 9)))
         for _ in range(3000)]  # fmt: skip


def words(seed: Any, size: int = 300) -> str:
    """~`size` characters of word salad, the same for the same seed (compresses like
    text, not like a repeated sentence)."""
    rng = random.Random(str(seed))
    return " ".join(rng.choice(WORDS) for _ in range(size // 5))[:size]


# -- databases ---------------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite", "mysql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[str, str]]:
    """Two migrated databases of one dialect (async URLs): one for the saver with the
    option, one for the saver without it."""
    if request.param == "sqlite":
        urls = []
        for name in ("a", "b"):
            url = f"sqlite+aiosqlite:///{tmp_path}/{name}.db"
            engine = create_engine(url.replace("+aiosqlite", ""))
            with engine.connect() as conn:
                upgrade(conn)
            engine.dispose()
            urls.append(url)
        yield urls[0], urls[1]
        return
    if request.param == "mysql":
        template = request.getfixturevalue("mysql_template")
        names = [mysql_server.new_name() for _ in range(2)]
        for name in names:
            mysql_server.create_database(name, template=template)
        try:
            yield mysql_server.url_string(names[0]), mysql_server.url_string(names[1])
        finally:
            for name in names:
                mysql_server.drop_database(name)
        return
    template = request.getfixturevalue("pg_template")
    names = [f"cp_inc_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names:
        _create_database(name, template=template)
    try:
        yield pg_database_url(names[0]), pg_database_url(names[1])
    finally:
        for name in names:
            drop_database(name)


def sync_url(url: str) -> str:
    sync = url.replace("+asyncpg", "+psycopg").replace("+aiosqlite", "")
    return sync.replace("+asyncmy", "+pymysql")


@pytest.fixture
async def engines(two_urls: tuple[str, str]) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    a, b = create_async_engine(two_urls[0]), create_async_engine(two_urls[1])
    yield a, b
    for e in (a, b):
        assert e.pool.checkedout() == 0, "a connection was left checked out"
        await e.dispose()


async def encoded_counts(engine: AsyncEngine) -> dict[str, int]:
    """Blob rows by encoding: full copies, deltas, plain rows."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(blobs.c.type, func.count()).group_by(blobs.c.type))).all()
    out = {"full": 0, "delta": 0, "plain": 0}
    for type_, n in rows:
        if type_ == incremental.FULL:
            out["full"] += n
        elif type_.startswith(incremental.DELTA):
            out["delta"] += n
        else:
            out["plain"] += n
    return out


# -- graphs ------------------------------------------------------------------------------


class Chat(TypedDict, total=False):
    messages: Annotated[list[Any], add_messages]
    turns: int


def chat_graph() -> StateGraph[Any]:
    def respond(state: Chat) -> dict[str, Any]:
        n = state.get("turns", 0) + 1
        return {"messages": [AIMessage(words(("ai", n)), id=f"ai-{n}")], "turns": n}

    builder = StateGraph(Chat)
    builder.add_node("respond", respond)
    builder.add_edge(START, "respond")
    builder.add_edge("respond", END)
    return builder


def extend(state: list[str], writes: Any) -> list[str]:
    return [*state, *(item for batch in writes for item in batch)]


class Log(TypedDict, total=False):
    log: Annotated[list[str], DeltaChannel(extend, snapshot_frequency=4)]
    n: int
    until: int


def log_graph() -> StateGraph[Any]:
    def step(state: Log) -> dict[str, Any]:
        n = state.get("n", 0) + 1
        return {"log": [words(("log", n))], "n": n}

    def more(state: Log) -> str:
        return "step" if state["n"] < state["until"] else END

    builder = StateGraph(Log)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", more, ["step", END])
    return builder


def human(turn: int) -> dict[str, Any]:
    return {"messages": [HumanMessage(words(("human", turn)), id=f"h-{turn}")]}


async def run_chat(saver: BaseCheckpointSaver[Any], thread: str, turns: int) -> Any:
    graph = chat_graph().compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    for turn in range(turns):
        await graph.ainvoke(human(turn), config)
    # a fork: a new message from a checkpoint in the middle of the thread
    history = [s async for s in graph.aget_state_history(config)]
    middle = history[len(history) // 2].config
    await graph.ainvoke(human(10_000), middle)
    return graph


async def run_log(saver: BaseCheckpointSaver[Any], thread: str, steps: int) -> Any:
    graph = log_graph().compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    await graph.ainvoke({"until": steps // 2}, config)
    await graph.ainvoke({"until": steps}, config)
    return graph


async def state_history(graph: Any, saver: BaseCheckpointSaver[Any], thread: str) -> list[Any]:
    """Every checkpoint of the thread as the graph sees it (values, next, step, source,
    pending writes), newest first: ids differ between savers, contents must not."""
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    bound = graph.builder.compile(checkpointer=saver)
    out = []
    async for s in bound.aget_state_history(config):
        out.append(
            (
                s.values,
                s.next,
                s.metadata.get("step"),
                s.metadata.get("source"),
                [(t.name, t.error) for t in s.tasks],
            )
        )
    return out


async def raw_history(saver: BaseCheckpointSaver[Any], thread: str) -> list[Any]:
    out = []
    async for t in saver.alist({"configurable": {"thread_id": thread}}):
        writes = sorted((ch, repr(v)) for _, ch, v in t.pending_writes or [])
        out.append((t.checkpoint["channel_values"], t.metadata.get("step"), writes))
    return out


# -- exactness -----------------------------------------------------------------------------


async def test_real_graphs_read_back_exactly(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    """Every checkpoint of a 40-turn chat (with a fork) and of a 40-step DeltaChannel
    thread, read through the graph and through `alist`, equals what the saver without
    the option and `InMemorySaver` return; so does every checkpoint read by id by a
    saver that remembers nothing (its bases come from the database).
    Mutation: `base.decompress(frame)` -> `frame` in `Encoder.decode` -> fails."""
    inc_engine, plain_engine = engines
    inc = AsyncSQLAlchemySaver(inc_engine, blob_encoding=INC)
    plain = AsyncSQLAlchemySaver(plain_engine)
    memory = InMemorySaver()
    results = {}
    for name, saver in (("inc", inc), ("plain", plain), ("memory", memory)):
        chat = await run_chat(saver, "chat", 40)
        log = await run_log(saver, "log", 40)
        results[name] = (
            await state_history(chat, saver, "chat"),
            await state_history(log, saver, "log"),
            await raw_history(saver, "chat"),
        )
    assert len(results["inc"][0]) > 120
    assert results["inc"] == results["plain"]
    assert results["inc"][:2] == results["memory"][:2]
    counts = await encoded_counts(inc_engine)
    assert counts["delta"] > 20, counts  # the encoding was used
    assert counts["full"] > 2, counts
    plain_counts = await encoded_counts(plain_engine)
    assert plain_counts["full"] == plain_counts["delta"] == 0
    fresh = AsyncSQLAlchemySaver(inc_engine, blob_encoding=INC)
    async for t in inc.alist({"configurable": {"thread_id": "chat"}}):
        again = await AsyncSQLAlchemySaver(inc_engine, blob_encoding=INC).aget_tuple(t.config)
        assert again is not None
        assert again.checkpoint == t.checkpoint
        assert (await fresh.aget_tuple(t.config)).checkpoint == t.checkpoint  # type: ignore[union-attr]


def test_sync_saver_reads_back_exactly(two_urls: tuple[str, str]) -> None:
    """The sync saver with the option: a 30-turn chat equals `InMemorySaver`'s, checkpoint
    by checkpoint, and a second sync saver (another process's memory) reads it all."""
    engine = create_engine(sync_url(two_urls[0]))
    try:
        results = []
        for saver in (SQLAlchemySaver(engine, blob_encoding=INC), InMemorySaver()):
            graph = chat_graph().compile(checkpointer=saver)
            config: RunnableConfig = {"configurable": {"thread_id": "sync-chat"}}
            for turn in range(30):
                graph.invoke(human(turn), config)
            results.append([s.values for s in graph.get_state_history(config)])
        assert results[0] == results[1]
        other = SQLAlchemySaver(engine, blob_encoding=INC)
        graph = chat_graph().compile(checkpointer=other)
        config = {"configurable": {"thread_id": "sync-chat"}}
        assert [s.values for s in graph.get_state_history(config)] == results[1]
        with engine.connect() as conn:
            deltas = conn.scalar(
                select(func.count()).where(blobs.c.type.like(incremental.DELTA + "%"))
            )
        assert deltas
        assert deltas > 10
    finally:
        engine.dispose()


# -- operations ------------------------------------------------------------------------------


async def put_step(
    saver: AsyncSQLAlchemySaver,
    thread: str,
    step: int,
    parent: RunnableConfig | None,
    messages: list[Any],
    versions: dict[str, str],
    run_id: str = "run-0",
) -> RunnableConfig:
    """One agent step written directly: the message list grows by two."""
    seed = thread.split("/")[0]  # a copy's messages are its source's
    messages += [HumanMessage(words((seed, step, 0)), id=f"{step}-0")]
    messages += [AIMessage(words((seed, step, 1)), id=f"{step}-1")]
    versions["messages"] = saver.get_next_version(versions.get("messages"))
    checkpoint = Checkpoint(
        v=4,
        id=str(uuid6(clock_seq=step)),
        ts=datetime.now(timezone.utc).isoformat(),
        channel_values={"messages": list(messages), "step": step},
        channel_versions=dict(versions),
        versions_seen={},
        updated_channels=["messages"],
    )
    config = parent or {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    metadata: Any = {"source": "loop", "step": step, "run_id": run_id}
    return await saver.aput(config, checkpoint, metadata, {"messages": versions["messages"]})


async def grow(
    saver: AsyncSQLAlchemySaver, thread: str, steps: int, runs: int = 1
) -> list[RunnableConfig]:
    configs: list[RunnableConfig] = []
    messages: list[Any] = []
    versions: dict[str, str] = {}
    parent = None
    for step in range(steps):
        parent = await put_step(
            saver, thread, step, parent, messages, versions, f"{thread}-run-{step * runs // steps}"
        )
        configs.append(parent)
    return configs


async def all_readable(engine: AsyncEngine, thread: str) -> dict[str, Any]:
    """Every checkpoint of the thread, read one by one by a saver that remembers
    nothing: its messages (each checkpoint's list is the one before it plus two)."""
    saver = AsyncSQLAlchemySaver(engine, blob_encoding=INC)
    found = {}
    async for t in AsyncSQLAlchemySaver(engine, blob_encoding=INC).alist(
        {"configurable": {"thread_id": thread}}
    ):
        got = await saver.aget_tuple(t.config)
        assert got is not None
        assert got.checkpoint["channel_values"] == t.checkpoint["channel_values"]
        step = t.checkpoint["channel_values"]["step"]
        messages = t.checkpoint["channel_values"]["messages"]
        assert [m.id for m in messages] == [f"{s}-{i}" for s in range(step + 1) for i in (0, 1)]
        assert messages[-1].content == words((thread.split("/")[0], step, 1))
        found[t.config["configurable"]["checkpoint_id"]] = messages
    return found


async def bases_needed(engine: AsyncEngine, thread: str) -> int:
    """Kept delta rows whose base no checkpoint references directly: what a garbage
    collection that ignored bases would have deleted."""
    saver = AsyncSQLAlchemySaver(engine, blob_encoding=INC)
    referenced = set()
    async for t in saver.alist({"configurable": {"thread_id": thread}}):
        referenced.add(t.checkpoint["channel_versions"]["messages"])
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(blobs.c.version, blobs.c.type).where(blobs.c.thread_id == thread)
            )
        ).all()
    return sum(
        1
        for version, type_ in rows
        if version in referenced
        and (base := incremental.base_version(type_)) is not None
        and base not in referenced
    )


async def test_operations_keep_every_kept_checkpoint_readable(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """copy_thread, prune (keep_latest with keep_last 1 and 3, delete), delete_for_runs,
    sweeps (keep_latest, delete) and delete_thread on threads of 60 encoded steps: what
    they keep reads back exactly, by a saver that remembers nothing, and at least one
    kept delta's base was referenced by no kept checkpoint (the case that needs it).
    Mutations: `EncodedStatements` -> `Statements` in `for_dialect` -> fails; drop the
    parent check in `Encoder.encode` -> fails (a delta names a deleted thread's base)."""
    engine = engines[0]
    saver = AsyncSQLAlchemySaver(engine, blob_encoding=INC)
    await grow(saver, "src", 60, runs=3)
    source = await all_readable(engine, "src")
    assert len(source) == 60
    for target in ("src/copy", "src/keep1", "src/keep3", "src/gone", "src/swept"):
        await saver.acopy_thread("src", target)
    assert await all_readable(engine, "src/copy") == source

    await saver.aprune(["src/keep1"], keep_last=1)
    await saver.aprune(["src/keep3"], keep_last=3)
    protected = 0
    for thread, n in (("src/keep1", 1), ("src/keep3", 3)):
        kept = await all_readable(engine, thread)
        assert len(kept) == n
        assert all(source[k] == v for k, v in kept.items())
        protected += await bases_needed(engine, thread)
    assert protected > 0, "no kept delta needed a base outside the kept checkpoints"

    await saver.aprune(["src/gone"], strategy="delete")
    assert await all_readable(engine, "src/gone") == {}

    # three runs of 20 steps: delete the last, then the first (whose rows hold bases
    # of the middle run's deltas)
    await grow(saver, "runs", 60, runs=3)
    runs = await all_readable(engine, "runs")
    await saver.adelete_for_runs(["runs-run-2"])
    kept = await all_readable(engine, "runs")
    assert len(kept) == 40
    assert all(runs[k] == v for k, v in kept.items())
    await saver.adelete_for_runs(["runs-run-0"])
    kept = await all_readable(engine, "runs")
    assert len(kept) == 20
    assert all(runs[k] == v for k, v in kept.items())
    assert await bases_needed(engine, "runs") > 0

    future = datetime.now(timezone.utc) + timedelta(days=1)
    report = await saver.asweep(idle_for=timedelta(0), strategy="keep_latest", now=future)
    assert report.threads >= 1
    for thread in ("src", "src/copy", "src/swept", "runs"):
        kept = await all_readable(engine, thread)
        assert len(kept) == 1
        assert all((runs if thread == "runs" else source)[k] == v for k, v in kept.items())

    await saver.adelete_thread("src/copy")
    assert await all_readable(engine, "src/copy") == {}
    await saver.adelete_thread("src")
    # the same thread id again, from the saver that wrote it (its memory knew the old
    # thread, whose bases are gone), starting with a list large enough to encode
    messages: list[Any] = []
    for step in range(4):
        messages += [HumanMessage(words(("src", step, 0)), id=f"{step}-0")]
        messages += [AIMessage(words(("src", step, 1)), id=f"{step}-1")]
    versions: dict[str, str] = {}
    parent: RunnableConfig | None = None
    for step in range(4, 14):
        parent = await put_step(saver, "src", step, parent, messages, versions)
    assert len(await all_readable(engine, "src")) == 10

    await saver.asweep(idle_for=timedelta(0), strategy="delete", now=future)
    for thread in ("src", "src/swept", "runs"):
        assert await all_readable(engine, thread) == {}


async def test_two_writers_a_failed_put_and_a_restart(
    engines: tuple[AsyncEngine, AsyncEngine], two_urls: tuple[str, str]
) -> None:
    """Two savers on engines of their own (two processes' memories) extend one thread in
    turns and fork it concurrently; a put that fails at the checkpoint statement (after
    its blobs, on SQLite) is rolled back and not remembered; a new saver (a restart)
    carries on. A saver that remembers nothing reads every checkpoint exactly.
    Mutation: drop `head.base.version == version` in `Encoder._remembered` -> fails (a
    reader decodes one writer's delta with the other writer's base)."""
    import asyncio

    a = AsyncSQLAlchemySaver(engines[0], blob_encoding=INC)
    other_engine = create_async_engine(two_urls[0])
    b = AsyncSQLAlchemySaver(other_engine, blob_encoding=INC)
    try:
        messages: list[Any] = []
        versions: dict[str, str] = {}
        parent: RunnableConfig | None = None
        step = 0
        written = 0
        for turn in range(6):
            saver = a if turn % 2 == 0 else b
            latest = await saver.aget_tuple({"configurable": {"thread_id": "two"}})
            if latest is not None and turn % 3 == 0:  # the other writer's parent, unread
                parent = latest.config
            for _ in range(7):
                parent = await put_step(saver, "two", step, parent, messages, versions)
                step += 1
                written += 1
        # concurrent forks from one parent
        forks = []
        for saver in (a, b):
            forks.append(put_step(saver, "two", step, parent, list(messages), dict(versions)))
        await asyncio.gather(*forks)
        written += 2

        fail = {"on": False}

        @event.listens_for(engines[0].sync_engine, "before_cursor_execute")
        def crash(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if fail["on"] and "INSERT INTO checkpoints" in statement:
                raise RuntimeError("crash between statements")

        failed = 0
        for i in range(12):
            fail["on"] = i in (0, 8)  # 0: `a` did not write the parent: a full copy
            before = (dict(versions), list(messages))
            try:
                parent = await put_step(a, "two", step, parent, messages, versions)
                step += 1
                written += 1
            except RuntimeError:
                failed += 1
                versions.clear()
                versions.update(before[0])
                messages[:] = before[1]
        fail["on"] = False
        restarted = AsyncSQLAlchemySaver(create_async_engine(two_urls[0]), blob_encoding=INC)
        try:
            for _ in range(5):
                parent = await put_step(restarted, "two", step, parent, messages, versions)
                step += 1
                written += 1
        finally:
            await restarted.engine.dispose()
        found = await all_readable(engines[0], "two")
        assert failed == 2
        assert len(found) == written
        assert (await encoded_counts(engines[0]))["delta"] > 20
    finally:
        await other_engine.dispose()


# -- on and off -------------------------------------------------------------------------------


async def test_turning_on_and_off(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    """A database written without the option carries on with it (old rows unchanged);
    then a saver without the option refuses it at its first call, one that started
    before reads an encoded row and says why; `decode_blobs` rewrites every row plain,
    removes the setting, and the saver without the option reads everything again.
    Mutation: skip `_check_encoding` in `SaverBase._first_use` -> fails."""
    engine = engines[0]
    early = AsyncSQLAlchemySaver(engine)
    await grow(early, "on-off", 10)  # plain rows, before the option
    before = await raw_history(early, "on-off")
    inc = AsyncSQLAlchemySaver(engine, blob_encoding=INC)
    latest = await inc.aget_tuple({"configurable": {"thread_id": "on-off"}})
    assert latest is not None
    messages = list(latest.checkpoint["channel_values"]["messages"])
    versions = dict(latest.checkpoint["channel_versions"])
    parent: RunnableConfig = latest.config
    for step in range(10, 40):
        parent = await put_step(inc, "on-off", step, parent, messages, versions)
    assert (await raw_history(inc, "on-off"))[-10:] == before
    everything = await raw_history(inc, "on-off")
    assert (await encoded_counts(engine))["delta"] > 10

    with pytest.raises(BlobEncodingError, match='blob_encoding="incremental"'):
        await AsyncSQLAlchemySaver(engine).aget_tuple({"configurable": {"thread_id": "on-off"}})
    with pytest.raises(BlobEncodingError, match="decode-blobs"):
        await raw_history(early, "on-off")  # first use was before the setting existed
    with pytest.raises(ValueError, match="decode_blobs needs"):
        await early.adecode_blobs()

    rewritten = await inc.adecode_blobs(batch=7)
    assert rewritten > 20
    assert await encoded_counts(engine) == {
        "full": 0,
        "delta": 0,
        "plain": (await encoded_counts(engine))["plain"],
    }
    async with engine.connect() as conn:
        left = (await conn.execute(select(schema.checkpointer_settings))).all()
    assert left == []
    assert await raw_history(AsyncSQLAlchemySaver(engine), "on-off") == everything
    assert await raw_history(early, "on-off") == everything


async def test_official_saver_cannot_read_encoded_rows_until_decoded(pg_url: str) -> None:
    """What the docs say (PostgreSQL, where the official saver shares our tables): it
    fails on encoded rows, and reads the same values as ours once `decode_blobs`
    rewrote them."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    engine = create_async_engine(pg_url)
    inc = AsyncSQLAlchemySaver(engine, blob_encoding=INC)
    await grow(inc, "official", 30)
    ours = await raw_history(inc, "official")
    config: RunnableConfig = {"configurable": {"thread_id": "official"}}
    dsn = pg_url.replace("postgresql+asyncpg", "postgresql")
    async with AsyncPostgresSaver.from_conn_string(dsn) as official:
        with pytest.raises(Exception, match="incremental/"):
            await official.aget_tuple(config)
        await inc.adecode_blobs()
        got = []
        async for t in official.alist(config):
            got.append(t.checkpoint["channel_values"])
    await engine.dispose()
    assert got == [values for values, _, _ in ours]


async def test_delta_channel_history_survives_prune_and_sweep(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """A `DeltaChannel` thread (its snapshots stored as compressed full copies: between two
    snapshots the channel has versions without values, so no delta chain spans them)
    pruned to its last two
    checkpoints, then swept to its latest: the graph still reconstructs the same state
    as `InMemorySaver`'s, through `get_delta_channel_history`, from a saver that
    remembers nothing.
    Mutation: `serde_type, data = plain(type_, r["blob"])` -> `type_, r["blob"]` in
    `Encoder.decode` -> fails."""
    engine = engines[0]
    saver = AsyncSQLAlchemySaver(engine, blob_encoding=INC)
    memory = InMemorySaver()
    for s in (saver, memory):
        await run_log(s, "delta", 48)
    config: RunnableConfig = {"configurable": {"thread_id": "delta"}}
    expected = (await log_graph().compile(checkpointer=memory).aget_state(config)).values
    assert len(expected["log"]) == 48
    assert (await encoded_counts(engine))["full"] > 3  # snapshots: full copies, compressed
    await saver.aprune(["delta"], keep_last=2)
    fresh = log_graph().compile(checkpointer=AsyncSQLAlchemySaver(engine, blob_encoding=INC))
    assert (await fresh.aget_state(config)).values == expected
    future = datetime.now(timezone.utc) + timedelta(days=1)
    await saver.asweep(idle_for=timedelta(0), strategy="keep_latest", now=future)
    fresh = log_graph().compile(checkpointer=AsyncSQLAlchemySaver(engine, blob_encoding=INC))
    assert (await fresh.aget_state(config)).values == expected
