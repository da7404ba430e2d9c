"""The fast path (`checkpointer.fastpath`): on PostgreSQL, autocommit plans run on the
pooled DBAPI cursor when nobody listens to the engine's statements. These tests prove
it is taken, returns what `Connection` returns, leaves pooled connections as it found
them, and fails the way `Connection` fails."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from sqlalchemy import Engine, bindparam, create_engine, event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SchemaNotReadyError, SQLAlchemySaver
from checkpointer.plans import Plan, Step
from checkpointer.schema import checkpoints

from ..conftest import pg_database_url
from ..ops_support import count_statements

ASYNC_DRIVERS = ["asyncpg", "psycopg"]


@contextmanager
def connections_made(engine: Engine) -> Iterator[list[object]]:
    """Every SQLAlchemy `Connection` made on `engine` (`engine_connect` does not turn
    the direct path off; statement events would)."""
    made: list[object] = []

    def seen(conn: Any) -> None:
        made.append(conn)

    event.listen(engine, "engine_connect", seen)
    try:
        yield made
    finally:
        event.remove(engine, "engine_connect", seen)


@pytest.fixture(params=ASYNC_DRIVERS)
async def engine(request: pytest.FixtureRequest, pg_url: str) -> AsyncIterator[AsyncEngine]:
    url = pg_url.replace("+asyncpg", f"+{request.param}")
    made = create_async_engine(url, pool_size=1, max_overflow=0)
    yield made
    await made.dispose()


def config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint(step: int, versions: dict[str, str]) -> Checkpoint:
    made = empty_checkpoint()
    made["id"] = str(uuid6(clock_seq=step))
    made["channel_values"] = {
        "messages": [f"message {i}" for i in range(step + 1)],
        "n": step,
        "blob": b"\x00\xffbytes",
        "text": "nul \x00 and ünïcode",
    }
    made["channel_versions"] = dict(versions)
    return made


async def write_thread(saver: AsyncSQLAlchemySaver, thread_id: str, steps: int) -> RunnableConfig:
    parent = config(thread_id)
    versions: dict[str, str] = {}
    for step in range(steps):
        changed = ["messages", "n"] + (["blob", "text"] if step == 0 else [])
        new = {ch: saver.get_next_version(versions.get(ch)) for ch in changed}
        versions.update(new)
        metadata: Any = {"step": step, "source": "loop", "user": "ü\x00"}
        parent = await saver.aput(parent, checkpoint(step, versions), metadata, new)
        await saver.aput_writes(parent, [("a", {"step": step}), ("b", [1, 2])], f"task-{step}")
    return parent


def comparable(item: CheckpointTuple | None) -> Any:
    assert item is not None
    return (item.config, item.checkpoint, item.metadata, item.parent_config, item.pending_writes)


async def test_direct_path_is_taken_and_reads_what_connection_reads(engine: AsyncEngine) -> None:
    saver = AsyncSQLAlchemySaver(engine)
    thread = f"t-{uuid.uuid4().hex}"
    with connections_made(engine.sync_engine) as made:
        last = await write_thread(saver, thread, 5)
        direct_latest = await saver.aget_tuple(config(thread))
        direct_by_id = await saver.aget_tuple(last)
        direct_list = [c async for c in saver.alist(config(thread))]
        direct_filtered = [c async for c in saver.alist(None, filter={"step": 3})]
    # the schema check is the only Connection: every put, write and read went direct
    assert len(made) <= 1
    if engine.dialect.driver == "asyncpg":
        # ... and to asyncpg itself: the adapter's cursor prepared none of them
        async with engine.connect() as conn:
            adapter = (await conn.get_raw_connection()).dbapi_connection
            prepared = list(adapter._prepared_statement_cache or ())  # type: ignore[union-attr]
        assert not [sql for sql in prepared if "checkpoint_writes" in sql], prepared

    with count_statements(engine.sync_engine) as sent, connections_made(engine.sync_engine) as made:
        via_connection = await saver.aget_tuple(config(thread))
        by_id = await saver.aget_tuple(last)
        listed = [c async for c in saver.alist(config(thread))]
        filtered = [c async for c in saver.alist(None, filter={"step": 3})]
    assert len(made) >= 4
    assert len(sent) >= 4

    assert comparable(direct_latest) == comparable(via_connection)
    assert comparable(direct_by_id) == comparable(by_id)
    assert [comparable(c) for c in direct_list] == [comparable(c) for c in listed]
    assert [comparable(c) for c in direct_filtered] == [comparable(c) for c in filtered]
    assert len(direct_list) == 5
    assert len(direct_filtered) == 1
    assert direct_latest is not None
    assert direct_latest.checkpoint["channel_values"]["blob"] == b"\x00\xffbytes"
    assert direct_latest.checkpoint["channel_values"]["text"] == "nul \x00 and ünïcode"
    assert direct_latest.metadata["user"] == "ü"  # type: ignore[typeddict-item]  # NUL dropped
    assert [w[1:] for w in direct_latest.pending_writes or ()] == [
        ("a", {"step": 4}),
        ("b", [1, 2]),
    ]

    # the listener is gone: back on the direct path
    with connections_made(engine.sync_engine) as made:
        assert comparable(await saver.aget_tuple(config(thread))) == comparable(via_connection)
    assert made == []


async def test_pooled_connection_is_returned_transactional(engine: AsyncEngine) -> None:
    """The pool holds one connection: after direct calls (autocommit), the host app's
    own transactions on it still roll back."""
    saver = AsyncSQLAlchemySaver(engine)
    await write_thread(saver, f"t-{uuid.uuid4().hex}", 2)
    async with engine.connect() as conn:
        assert await conn.get_isolation_level() == "READ COMMITTED"
        await conn.execute(text("CREATE TABLE host_rows (n int)"))
        await conn.commit()
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO host_rows VALUES (1)"))
        await conn.rollback()
    await write_thread(saver, f"t-{uuid.uuid4().hex}", 1)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM host_rows"))).scalar() == 0


async def test_database_errors_are_wrapped_like_connection_errors(engine: AsyncEngine) -> None:
    saver = AsyncSQLAlchemySaver(engine)
    thread = f"t-{uuid.uuid4().hex}"
    last = await write_thread(saver, thread, 1)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE checkpoint_writes"))
    with pytest.raises(SchemaNotReadyError) as raised:
        await saver.aput_writes(last, [("a", 1)], "task")
    assert isinstance(raised.value.__cause__, DBAPIError)
    with pytest.raises(SchemaNotReadyError):
        await saver.aget_tuple(config(thread))


async def test_lost_connection_is_invalidated_and_replaced(engine: AsyncEngine) -> None:
    saver = AsyncSQLAlchemySaver(engine, retry=False)  # retried: tests/runtime/test_faults_*
    thread = f"t-{uuid.uuid4().hex}"
    await write_thread(saver, thread, 2)
    await _kill_backends(engine.url.database)
    with pytest.raises(DBAPIError) as raised:
        await saver.aget_tuple(config(thread))
    assert raised.value.connection_invalidated
    assert "connection was lost" in str(raised.value)
    latest = await saver.aget_tuple(config(thread))  # a new connection from the pool
    assert latest is not None
    assert latest.metadata["step"] == 1


async def test_cancelled_call_discards_its_connection(engine: AsyncEngine) -> None:
    """A call cancelled while its statement waits leaves no connection in an unknown
    state in the pool: the next call (same pool of one) works."""
    saver = AsyncSQLAlchemySaver(engine)
    thread = f"t-{uuid.uuid4().hex}"
    await write_thread(saver, thread, 2)
    locker = create_engine(engine.url.set(drivername="postgresql+psycopg"))
    try:
        with locker.begin() as conn:
            conn.execute(text("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE"))
            call = asyncio.ensure_future(saver.aget_tuple(config(thread)))
            await asyncio.sleep(0.5)
            assert not call.done()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        latest = await asyncio.wait_for(saver.aget_tuple(config(thread)), 10)
        assert latest is not None
        assert latest.metadata["step"] == 1
    finally:
        locker.dispose()


async def test_a_statement_the_direct_path_cannot_run_does_not_hold_two_connections(
    pg_url: str,
) -> None:
    """A step with expanding parameters goes to a `Connection`: the direct connection is
    given back first, so a plan on a pool of one does not wait for itself."""
    engine = create_async_engine(pg_url, pool_size=1, max_overflow=0, pool_timeout=2)
    try:
        saver = AsyncSQLAlchemySaver(engine)
        await write_thread(saver, "t-a", 1)
        ids = select(checkpoints.c.thread_id).where(
            checkpoints.c.thread_id.in_(bindparam("ids", expanding=True))
        )
        one = select(func.count()).select_from(checkpoints)

        def steps() -> Any:
            first = yield Step(one, {}, fetch=True)
            found = yield Step(ids, {"ids": ["t-a", "t-b"]}, fetch=True)
            last = yield Step(one, {}, fetch=True)
            return [first, found, last]

        with connections_made(engine.sync_engine) as made:
            first, found, last = await saver._run(Plan(steps()))
        assert len(made) == 1  # the expanding step only
        assert [dict(r) for r in found] == [{"thread_id": "t-a"}]
        assert first == last
        assert engine.pool.checkedout() == 0
    finally:
        await engine.dispose()


async def test_schema_is_applied_on_the_direct_path(fresh_pg: str) -> None:
    """With `search_path` pointing nowhere, only schema-qualified statements work."""
    url = pg_database_url(fresh_pg)
    engine = create_async_engine(url, connect_args={"server_settings": {"search_path": "nowhere"}})
    try:
        saver = AsyncSQLAlchemySaver(engine, schema="tenant")
        await saver.setup()
        thread = f"t-{uuid.uuid4().hex}"
        with connections_made(engine.sync_engine) as made:
            await write_thread(saver, thread, 3)
            assert len([c async for c in saver.alist(config(thread))]) == 3
        assert made == []
    finally:
        await engine.dispose()


async def test_engine_schema_translation_keeps_connection(pg_url: str) -> None:
    """An engine with its own `schema_translate_map` is served through `Connection`,
    which applies it."""
    engine = create_async_engine(pg_url)
    try:
        translated = engine.execution_options(schema_translate_map={"other": "elsewhere"})
        saver = AsyncSQLAlchemySaver(translated)
        with connections_made(engine.sync_engine) as made:
            await write_thread(saver, f"t-{uuid.uuid4().hex}", 2)
        assert len(made) >= 4
    finally:
        await engine.dispose()


async def test_echo_and_handle_error_keep_connection(pg_url: str) -> None:
    """`echo` logs statements and `handle_error` listeners see failures only through
    `Connection`, so either keeps every call there."""
    engine = create_async_engine(pg_url, echo=True)
    try:
        saver = AsyncSQLAlchemySaver(engine)
        with connections_made(engine.sync_engine) as made:
            await write_thread(saver, f"t-{uuid.uuid4().hex}", 1)
        assert len(made) >= 2
        engine.sync_engine.echo = False

        def on_error(context: object) -> None:
            pass

        event.listen(engine.sync_engine, "handle_error", on_error)
        with connections_made(engine.sync_engine) as made:
            await write_thread(saver, f"t-{uuid.uuid4().hex}", 1)
        assert len(made) >= 2
        event.remove(engine.sync_engine, "handle_error", on_error)
        with connections_made(engine.sync_engine) as made:
            await write_thread(saver, f"t-{uuid.uuid4().hex}", 1)
        assert made == []
    finally:
        await engine.dispose()


def test_sync_saver_on_psycopg_goes_direct(pg_url: str) -> None:
    engine = create_engine(pg_url.replace("+asyncpg", "+psycopg"), pool_size=1, max_overflow=0)
    try:
        saver = SQLAlchemySaver(engine)
        thread = f"t-{uuid.uuid4().hex}"
        with connections_made(engine) as made:
            parent = config(thread)
            versions: dict[str, str] = {}
            for step in range(3):
                new = {"messages": saver.get_next_version(versions.get("messages"))}
                versions.update(new)
                parent = saver.put(parent, checkpoint(step, versions), {"step": step}, new)  # type: ignore[typeddict-unknown-key]
                saver.put_writes(parent, [("a", step)], "task")
            latest = saver.get_tuple(config(thread))
            listed = list(saver.list(config(thread)))
        assert len(made) <= 1
        with count_statements(engine):
            assert comparable(saver.get_tuple(config(thread))) == comparable(latest)
        assert len(listed) == 3
        with engine.connect() as conn:
            assert conn.get_isolation_level() == "READ COMMITTED"
    finally:
        engine.dispose()


async def test_asyncpg_statements_too_long_for_its_cache_stay_prepared(pg_url: str) -> None:
    """asyncpg prepares a statement longer than `max_cacheable_statement_size` afresh on
    every call (an extra round trip, planned again); those take the adapter's cursor,
    whose own cache keeps them prepared, and read the same."""
    engine = create_async_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        saver = AsyncSQLAlchemySaver(engine)
        thread = f"t-{uuid.uuid4().hex}"
        last = await write_thread(saver, thread, 3)
        channels = ["messages", "n", "blob", "text", "a"]
        with connections_made(engine.sync_engine) as made:
            long = await saver.aget_delta_channel_history(config=last, channels=channels)
            short = await saver.aget_delta_channel_history(config=last, channels=["messages"])
        assert made == []  # both went direct
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            limit = raw.dbapi_connection._connection._config.max_cacheable_statement_size  # type: ignore[union-attr]
            prepared = list(raw.dbapi_connection._prepared_statement_cache or ())  # type: ignore[union-attr]
        walks = [sql for sql in prepared if "RECURSIVE walk" in sql]
        assert [len(sql) > limit for sql in walks] == [True]  # the long one only
        assert short["messages"] == long["messages"]
        assert [w[2] for w in long["a"]["writes"]] == [{"step": 0}, {"step": 1}]  # the parent up
        assert long["n"]["seed"] == 1
    finally:
        await engine.dispose()


@contextmanager
def greenlets_spawned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every `greenlet_spawn` the async saver makes (our own call sites, counted)."""
    from checkpointer import aio, fastpath

    spawned: list[object] = []
    real = aio.greenlet_spawn

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        spawned.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(aio, "greenlet_spawn", counting)
    monkeypatch.setattr(fastpath, "greenlet_spawn", counting)
    try:
        yield spawned
    finally:
        monkeypatch.setattr(aio, "greenlet_spawn", real)
        monkeypatch.setattr(fastpath, "greenlet_spawn", real)


async def test_asyncpg_calls_take_no_greenlet_from_an_idle_pool(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an idle connection in SQLAlchemy's async pool, puts, writes and reads run on
    the event loop itself; pre-ping or a pool listener (either may do I/O at checkout)
    sends every call back through a greenlet, and the listener sees each checkout."""
    engine = create_async_engine(pg_url, pool_size=2, max_overflow=0)
    pinged = create_async_engine(pg_url, pool_size=2, max_overflow=0, pool_pre_ping=True)
    try:
        saver = AsyncSQLAlchemySaver(engine)
        thread = f"t-{uuid.uuid4().hex}"
        await write_thread(saver, thread, 2)
        with greenlets_spawned(monkeypatch) as spawned:
            last = await write_thread(saver, thread, 3)
            assert (await saver.aget_tuple(last)) is not None
        assert spawned == []

        checkouts: list[object] = []

        def on_checkout(*args: Any) -> None:
            checkouts.append(args)

        event.listen(engine.sync_engine.pool, "checkout", on_checkout)
        with greenlets_spawned(monkeypatch) as spawned:
            await write_thread(saver, thread, 1)
        event.remove(engine.sync_engine.pool, "checkout", on_checkout)
        assert len(spawned) == len(checkouts) == 2

        other = AsyncSQLAlchemySaver(pinged)
        await write_thread(other, thread, 1)
        with greenlets_spawned(monkeypatch) as spawned:
            await write_thread(other, f"t-{uuid.uuid4().hex}", 1)
        assert len(spawned) == 2
    finally:
        await engine.dispose()
        await pinged.dispose()


@pytest.mark.parametrize("cause", ["killed", "recycled"])
async def test_a_stale_idle_connection_is_reconnected_without_warnings(
    pg_url: str, cause: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle connection that must reconnect (its server process was killed, or it
    is past `pool_recycle`) is replaced in a greenlet, quietly, and later calls take
    the event-loop path again."""
    recycle, size = (1, 2) if cause == "recycled" else (-1, 1)
    engine = create_async_engine(pg_url, pool_size=size, max_overflow=0, pool_recycle=recycle)
    try:
        saver = AsyncSQLAlchemySaver(engine, retry=False)  # a retry would hide the failure
        thread = f"t-{uuid.uuid4().hex}"
        # side by side, so the pool holds `size` connections, all of which go stale
        await asyncio.gather(*(write_thread(saver, f"{thread}-{i}", 2) for i in range(size)))
        await write_thread(saver, thread, 2)
        assert engine.sync_engine.pool.checkedin() == size  # type: ignore[attr-defined]
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if cause == "killed":
                await _kill_backends(engine.url.database)
                with pytest.raises(DBAPIError) as raised:
                    await saver.aget_tuple(config(thread))
                assert raised.value.connection_invalidated
            else:
                await asyncio.sleep(1.2)
            latest = await saver.aget_tuple(config(thread))  # reconnects
            with greenlets_spawned(monkeypatch) as spawned:
                again = await saver.aget_tuple(config(thread))
        assert latest is not None
        assert comparable(again) == comparable(latest)
        assert spawned == []  # back on the event loop
        assert [str(w.message) for w in seen] == []
    finally:
        await engine.dispose()


async def _kill_backends(database: str | None) -> None:
    admin = create_engine(pg_database_url("postgres", "psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).all()
        assert killed, "no connection to kill"
    finally:
        admin.dispose()
