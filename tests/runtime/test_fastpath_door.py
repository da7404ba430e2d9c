"""The fast path's door (`checkpointer.fastpath`): chosen once per saver by a probe,
switched off by `fast_path=False`, stepping aside (to `Connection`) for anyone who
observes statements, and each private attribute it reads guarded: removed, the saver
logs one INFO line and works through `Connection`."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver, fastpath

from .test_fastpath import checkpoint, config, connections_made, greenlets_spawned, write_thread


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(pg_url, pool_size=2, max_overflow=0)
    yield made
    await made.dispose()


def fast_path_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "checkpointer" and r.levelno == logging.INFO and "fast path" in r.getMessage()
    ]


async def test_fast_path_false_runs_every_call_through_connection(engine: AsyncEngine) -> None:
    fast = AsyncSQLAlchemySaver(engine)
    await write_thread(fast, f"t-{uuid.uuid4().hex}", 1)
    with connections_made(engine.sync_engine) as made:
        await write_thread(fast, f"t-{uuid.uuid4().hex}", 2)
    assert made == []
    plain = AsyncSQLAlchemySaver(engine, fast_path=False)
    with connections_made(engine.sync_engine) as made:
        await write_thread(plain, f"t-{uuid.uuid4().hex}", 2)
    assert len(made) >= 4  # schema check, then two puts and two writes


def test_sync_fast_path_false_runs_every_call_through_connection(pg_url: str) -> None:
    sync = create_engine(pg_url.replace("+asyncpg", "+psycopg"))
    try:
        made_by: dict[bool, int] = {}
        for wanted in (True, False):
            saver = SQLAlchemySaver(sync, fast_path=wanted)
            thread = f"t-{uuid.uuid4().hex}"
            with connections_made(sync) as made:
                parent = config(thread)
                for step in range(3):
                    new = {"messages": saver.get_next_version(None if step == 0 else str(step))}
                    parent = saver.put(parent, checkpoint(step, new), {}, new)  # type: ignore[arg-type]
                assert saver.get_tuple(config(thread)) is not None
            made_by[wanted] = len(made)
        assert made_by[True] <= 1  # the schema check
        assert made_by[False] >= 5
    finally:
        sync.dispose()


# -- stepping aside for whoever observes statements --------------------------------


def _listener(name: str, seen: list[str]) -> Callable[..., Any]:
    def record(*args: Any) -> None:
        seen.append(name)

    return record


ENGINE_EVENTS = [
    "before_execute",
    "after_execute",
    "before_cursor_execute",
    "after_cursor_execute",
    "do_execute",
]


@pytest.mark.parametrize("name", ENGINE_EVENTS)
async def test_a_statement_listener_sees_every_statement(engine: AsyncEngine, name: str) -> None:
    """With the listener on, the calls go through `Connection` and it fires for each
    of them (`do_execute` returning None lets the dialect run the statement); once it
    is removed, the fast path is back."""
    saver = AsyncSQLAlchemySaver(engine)
    thread = f"t-{uuid.uuid4().hex}"
    await write_thread(saver, thread, 1)
    seen: list[str] = []
    fn = _listener(name, seen)
    event.listen(engine.sync_engine, name, fn)
    try:
        with connections_made(engine.sync_engine) as made:
            await write_thread(saver, thread, 2)  # two puts, two writes
            assert await saver.aget_tuple(config(thread)) is not None
    finally:
        event.remove(engine.sync_engine, name, fn)
    assert len(made) >= 5
    assert len(seen) >= 5
    with connections_made(engine.sync_engine) as made:
        await write_thread(saver, thread, 1)
    assert made == []


async def test_a_handle_error_listener_sees_the_error(engine: AsyncEngine) -> None:
    saver = AsyncSQLAlchemySaver(engine)
    thread = f"t-{uuid.uuid4().hex}"
    last = await write_thread(saver, thread, 1)
    errors: list[Any] = []

    def on_error(context: Any) -> None:
        errors.append(context.original_exception)

    event.listen(engine.sync_engine, "handle_error", on_error)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE checkpoint_writes RENAME TO moved")
        with pytest.raises(Exception, match="checkpoint"):
            await saver.aput_writes(last, [("a", 1)], "task")
    finally:
        event.remove(engine.sync_engine, "handle_error", on_error)
    assert len(errors) == 1


async def test_echo_logs_the_fast_path_statements(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`echo` set when the engine is made, or on the engine after the saver was made:
    either way each call's statement is logged (through `Connection`)."""
    for when in ("created", "later"):
        engine = create_async_engine(pg_url, echo=when == "created")
        try:
            saver = AsyncSQLAlchemySaver(engine)
            thread = f"t-{uuid.uuid4().hex}"
            await write_thread(saver, thread, 1)
            engine.sync_engine.echo = True
            caplog.clear()
            assert not logging.getLogger("sqlalchemy.engine").isEnabledFor(logging.INFO)
            await write_thread(saver, thread, 1)
            logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy")]
            assert any("INSERT INTO checkpoint_writes" in m for m in logged), when
            assert any("INSERT INTO checkpoints" in m for m in logged), when
            engine.sync_engine.echo = False
            with connections_made(engine.sync_engine) as made:
                await write_thread(saver, thread, 1)
            assert made == []
        finally:
            await engine.dispose()


async def test_the_sqlalchemy_logger_level_logs_the_fast_path_statements(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """SQL logging switched on through Python's `logging` (`engine.echo` stays None)."""
    saver = AsyncSQLAlchemySaver(engine)
    thread = f"t-{uuid.uuid4().hex}"
    await write_thread(saver, thread, 1)
    assert engine.echo is False or engine.echo is None
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        await write_thread(saver, thread, 1)
        assert await saver.aget_tuple(config(thread)) is not None
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    assert any("INSERT INTO checkpoint_writes" in m for m in logged)
    assert any("FROM checkpoints" in m for m in logged)
    with connections_made(engine.sync_engine) as made:
        await write_thread(saver, thread, 1)
    assert made == []


# -- the probe: versions and private attributes ------------------------------------


def _owner(dotted: str, engine: AsyncEngine) -> Any:
    """The object that defines a probed attribute (a class in the MRO, or a module)."""
    if dotted == "sqlalchemy.pool.Pool":
        return engine.sync_engine.pool
    return fastpath._resolve(dotted)


def _defining(target: Any, name: str) -> list[Any]:
    """Every class in the MRO that defines `name` (the object itself if no class)."""
    if isinstance(target, type):
        return [c for c in target.__mro__ if name in vars(c)]
    return [target]


@pytest.mark.parametrize(("where", "name"), fastpath.PROBED, ids=[n for _, n in fastpath.PROBED])
async def test_a_missing_private_attribute_keeps_the_saver_on_connection(
    engine: AsyncEngine,
    where: str,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Removed when the saver is made (and put back, as the packages themselves need
    it), the attribute costs the fast path: one INFO line names it, and every call
    goes through `Connection`, correctly."""
    owners = _defining(_owner(where, engine), name)
    with monkeypatch.context() as patched, caplog.at_level(logging.INFO, logger="checkpointer"):
        for owner in owners:
            patched.delattr(owner, name)
        saver = AsyncSQLAlchemySaver(engine)
    lines = fast_path_lines(caplog)
    assert len(lines) == 1
    assert name in lines[0]
    thread = f"t-{uuid.uuid4().hex}"
    with connections_made(engine.sync_engine) as made:
        last = await write_thread(saver, thread, 2)
        latest = await saver.aget_tuple(config(thread))
    assert len(made) >= 5
    assert latest is not None
    assert latest.config["configurable"]["checkpoint_id"] == last["configurable"]["checkpoint_id"]


@pytest.mark.parametrize("version", ["2.0.54", "2.1.4", "2.2.0"])
async def test_an_untested_sqlalchemy_keeps_the_saver_on_connection(
    engine: AsyncEngine,
    version: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """2.0.30-2.0.54 and 2.1.0-2.1.4 fail every event-loop checkout from a pool whose
    overflow is full; versions past the range were never run."""
    with monkeypatch.context() as patched, caplog.at_level(logging.INFO, logger="checkpointer"):
        patched.setattr(sqlalchemy, "__version__", version)
        saver = AsyncSQLAlchemySaver(engine)
    assert [version in line for line in fast_path_lines(caplog)] == [True]
    with connections_made(engine.sync_engine) as made:
        await write_thread(saver, f"t-{uuid.uuid4().hex}", 1)
    assert len(made) >= 2


async def test_a_failed_trial_keeps_the_saver_on_connection(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The trial statement at first use must read back what it sent."""
    saver = AsyncSQLAlchemySaver(engine)
    real = fastpath.FastPath.converted

    def wrong(self: Any, compiled: Any, rows: Any, names: Any) -> Any:
        return (
            [{"trial": 8}]
            if compiled.compiled.statement is fastpath.TRIAL
            else real(self, compiled, rows, names)
        )

    monkeypatch.setattr(fastpath.FastPath, "converted", wrong)
    monkeypatch.setattr(fastpath.FastPath, "named_rows", (), raising=False)
    with (
        caplog.at_level(logging.INFO, logger="checkpointer"),
        connections_made(engine.sync_engine) as made,
    ):
        await write_thread(saver, f"t-{uuid.uuid4().hex}", 2)
    lines = fast_path_lines(caplog)
    assert len(lines) == 1
    assert "trial" in lines[0]
    assert len(made) >= 5


async def test_no_greenlet_when_the_pool_overflow_is_full(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both pooled connections made (`max_overflow=0`: the overflow is full), each call
    still takes an idle one on the event loop. SQLAlchemy 2.0.30-2.0.54 and 2.1.0-2.1.4
    awaited the pool's queue there, failing every such checkout."""
    saver = AsyncSQLAlchemySaver(engine)
    thread = f"t-{uuid.uuid4().hex}"
    await asyncio.gather(*(write_thread(saver, f"{thread}-{i}", 2) for i in range(2)))
    pool: Any = engine.sync_engine.pool
    assert pool.checkedin() == 2
    assert pool.overflow() == 0
    with greenlets_spawned(monkeypatch) as spawned:
        await write_thread(saver, thread, 3)
        assert await saver.aget_tuple(config(thread)) is not None
    assert spawned == []
