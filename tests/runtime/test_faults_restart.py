"""Lost connections ride through (issue 16, items 1, 2 and 9): a server restarted mid-run,
every backend terminated over and over, idle pooled connections killed. Each runs on a
PostgreSQL of the test's own (`tests/private_pg.py`), never the shared one.

The workload is the issue's: a 3-node LangGraph `StateGraph` with `add_messages`, 20
threads x 10 turns (invocations) at concurrency 8, asyncpg and psycopg, 3 runs each.
Invocations are asserted to be in flight when the fault lands; afterwards each thread's
final state must be exactly what its last acknowledged invocation returned, and every
acknowledged invocation's messages a prefix of it (nothing lost)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from typing_extensions import TypedDict

from checkpointer import AsyncSQLAlchemySaver, Retry, SQLAlchemySaver
from checkpointer.migrations import upgrade
from checkpointer.schema import checkpoints

from ..private_pg import PrivatePostgres
from .test_fastpath import checkpoint, config

DRIVERS = ["asyncpg", "psycopg"]
THREADS, TURNS, CONCURRENCY = 20, 10, 8
NODES = ("plan", "act", "reply")
SLOW = 5.0
"""No saver call may take longer (seconds) while backends are terminated."""


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_db(private_pg: PrivatePostgres) -> str:
    name = private_pg.create_database(f"cp_{uuid.uuid4().hex[:12]}")
    engine = create_engine(private_pg.database_url(name, "psycopg"))
    with engine.connect() as conn:
        upgrade(conn)
    engine.dispose()
    return name


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _node(name: str) -> Callable[[Chat], dict[str, Any]]:
    def run(state: Chat) -> dict[str, Any]:
        turn = sum(1 for m in state["messages"] if m.type == "human")
        last = state["messages"][-1]
        return {"messages": [AIMessage(f"{name}({last.content})", id=f"{name}-{turn}")]}

    return run


def chat_graph(saver: AsyncSQLAlchemySaver) -> Any:
    """plan -> act -> reply, each adding one message (ids explicit, so deterministic)."""
    builder = StateGraph(Chat)
    for name in NODES:
        builder.add_node(name, _node(name))
    builder.add_edge(START, NODES[0])
    builder.add_edge(NODES[0], NODES[1])
    builder.add_edge(NODES[1], NODES[2])
    builder.add_edge(NODES[2], END)
    return builder.compile(checkpointer=saver)


def _timed_saver(saver: AsyncSQLAlchemySaver, slowest: list[float]) -> None:
    """Time every saver call the graph makes (the slowest kept in `slowest[0]`)."""

    def wrap(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return await method(*args, **kwargs)
            finally:
                slowest[0] = max(slowest[0], time.monotonic() - started)

        return timed

    for name in ("aget_tuple", "aput", "aput_writes"):
        setattr(saver, name, wrap(getattr(saver, name)))


class GraphWorkload:
    """THREADS threads of TURNS invocations at CONCURRENCY, counting failures, the
    slowest saver call and the invocations in flight, and keeping what each
    acknowledged invocation returned."""

    def __init__(self, saver: AsyncSQLAlchemySaver, run: str, turns: int = TURNS) -> None:
        self.saver = saver
        self.graph = chat_graph(saver)
        self.run = run
        self.turns = turns
        self.failures: list[BaseException] = []
        self.acknowledged: dict[str, list[list[AnyMessage]]] = {}
        self.in_flight = 0
        self.slowest = [0.0]
        _timed_saver(saver, self.slowest)

    def config(self, thread: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread}}

    async def thread(self, n: int, gate: asyncio.Semaphore) -> None:
        thread = f"{self.run}-{n}"
        results = self.acknowledged.setdefault(thread, [])
        for turn in range(self.turns):
            async with gate:
                self.in_flight += 1
                try:
                    asked = HumanMessage(f"{thread} turn {turn}", id=f"human-{turn + 1}")
                    out = await self.graph.ainvoke({"messages": [asked]}, self.config(thread))
                    results.append(out["messages"])
                except Exception as error:
                    self.failures.append(error)
                finally:
                    self.in_flight -= 1
            await asyncio.sleep(0.01)

    async def main(self) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)
        await asyncio.gather(*(self.thread(n, gate) for n in range(THREADS)))

    async def lost(self) -> list[str]:
        """Threads whose final state is not what their last acknowledged invocation
        returned, or misses the messages of an earlier one."""
        wrong = []
        for thread, results in self.acknowledged.items():
            state = await self.graph.aget_state(self.config(thread))
            final = state.values.get("messages", [])
            ids = [m.id for m in final]
            expected = [
                f"{kind}-{t}" for t in range(1, len(results) + 1) for kind in ("human", *NODES)
            ]
            if (
                not results
                or final != results[-1]
                or ids != expected
                or any(final[: len(r)] != r for r in results)
            ):
                wrong.append(thread)
        return wrong

    def check(self) -> None:
        kinds = sorted({f"{type(e).__name__}: {e}"[:160] for e in self.failures})
        assert self.failures == [], f"{len(self.failures)} failed: {kinds}"
        assert sum(map(len, self.acknowledged.values())) == THREADS * self.turns


async def _when_in_flight(work: GraphWorkload, task: asyncio.Future[None] | None = None) -> None:
    while work.in_flight == 0:
        assert task is None or not task.done(), "the workload ended before the fault"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_restart_mid_run_fails_no_call_and_loses_nothing(
    private_pg: PrivatePostgres,
    private_db: str,
    driver: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three runs, each with invocations in flight when the server stops, for 2, 5 and
    8 s (the default policy rides up to ~12 s): 0 failed, 0 lost, WARNINGs name the
    cause."""
    engine = create_async_engine(private_pg.database_url(private_db, driver), pool_size=8)
    try:
        for run, down_for in enumerate((2.0, 5.0, 8.0)):
            saver = AsyncSQLAlchemySaver(engine)
            work = GraphWorkload(saver, f"restart-{run}-{uuid.uuid4().hex[:6]}")
            with caplog.at_level(logging.WARNING, logger="checkpointer"):
                task = asyncio.ensure_future(work.main())
                await asyncio.sleep(0.2)
                await _when_in_flight(work, task)
                restart = asyncio.ensure_future(asyncio.to_thread(private_pg.restart, down_for))
                assert work.in_flight > 0
                await restart
                await task
            work.check()
            assert await work.lost() == []
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings
        assert all("connection lost" in w for w in warnings)
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


def _terminate_all(private_pg: PrivatePostgres, database: str) -> int:
    admin = create_engine(private_pg.admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
            )
    finally:
        admin.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
async def test_backends_terminated_six_times_fail_no_call_none_slow(
    private_pg: PrivatePostgres, private_db: str, driver: str
) -> None:
    """Three runs, each with every backend terminated 6 times while invocations are in
    flight: 0 failed, 0 lost, no saver call over 5 s."""
    engine = create_async_engine(private_pg.database_url(private_db, driver), pool_size=8)
    try:
        for run in range(3):
            saver = AsyncSQLAlchemySaver(engine)
            work = GraphWorkload(saver, f"kill-{run}-{uuid.uuid4().hex[:6]}")
            task = asyncio.ensure_future(work.main())
            killed = 0
            for _ in range(6):
                await _when_in_flight(work, task)
                killed += await asyncio.to_thread(_terminate_all, private_pg, private_db)
                await asyncio.sleep(0.1)
            await task
            assert killed > 0
            work.check()
            assert work.slowest[0] < SLOW
            assert await work.lost() == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
async def test_killed_idle_pooled_connections_fail_no_later_call(
    private_pg: PrivatePostgres, private_db: str, driver: str
) -> None:
    """Three runs: a pool of 5 left idle after a run of the graph, every connection
    killed, then 8 invocations in a row: none fails, nothing lost. And the pool is
    invalidated as a whole, so even with retry off only the first saver call fails."""
    engine = create_async_engine(private_pg.database_url(private_db, driver), pool_size=5)
    try:
        saver = AsyncSQLAlchemySaver(engine)
        for run in range(3):
            work = GraphWorkload(saver, f"idle-{run}-{uuid.uuid4().hex[:6]}", turns=2)
            await work.main()
            work.check()
            assert engine.sync_engine.pool.checkedin() == 5  # type: ignore[attr-defined]
            assert await asyncio.to_thread(_terminate_all, private_pg, private_db) == 5
            thread = f"{work.run}-0"
            for turn in range(2, 10):
                asked = HumanMessage(f"{thread} turn {turn}", id=f"human-{turn + 1}")
                out = await work.graph.ainvoke({"messages": [asked]}, work.config(thread))
                work.acknowledged[thread].append(out["messages"])
            assert await work.lost() == []
    finally:
        await engine.dispose()
    engine = create_async_engine(private_pg.database_url(private_db, driver), pool_size=5)
    saver = AsyncSQLAlchemySaver(engine, retry=False)
    thread = f"idle-{uuid.uuid4().hex[:8]}"
    try:
        await saver.aput(config(thread), checkpoint(0, {"n": "1"}), {}, {})  # type: ignore[typeddict-item]
        await asyncio.gather(*(saver.aget_tuple(config(thread)) for _ in range(5)))
        assert engine.sync_engine.pool.checkedin() == 5  # type: ignore[attr-defined]
        assert await asyncio.to_thread(_terminate_all, private_pg, private_db) == 5
        failed, messages = 0, []
        for _ in range(8):
            try:
                assert await saver.aget_tuple(config(thread)) is not None
            except DBAPIError as error:
                messages.append(str(error))
                failed += 1
        assert failed <= 1
        assert all("connection was lost" in m for m in messages)
    finally:
        await engine.dispose()


def test_the_sync_saver_rides_a_restart(private_pg: PrivatePostgres, private_db: str) -> None:
    """psycopg, sync, 4 threads writing while the server restarts: 0 failed, 0 lost."""
    engine = create_engine(private_pg.database_url(private_db, "psycopg"), pool_size=4)
    saver = SQLAlchemySaver(engine, retry=Retry(deadline=20.0))
    failures: list[BaseException] = []
    in_flight = threading.Semaphore(0)
    written: dict[str, int] = {}

    def writer(n: int) -> None:
        thread, parent, versions = f"sync-{n}-{uuid.uuid4().hex[:6]}", None, {}
        parent = config(thread)
        for step in range(25):
            in_flight.release()
            try:
                new = {"messages": saver.get_next_version(versions.get("messages"))}
                versions.update(new)
                parent = saver.put(parent, checkpoint(step, versions), {"step": step}, new)  # type: ignore[arg-type, typeddict-item]
                written[thread] = step + 1
            except Exception as error:
                failures.append(error)
            time.sleep(0.05)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    assert in_flight.acquire(timeout=10)
    private_pg.restart(2.0)
    for worker in workers:
        worker.join(60)
    try:
        assert failures == []
        with engine.connect() as conn:
            for thread, count in written.items():
                stored = conn.execute(
                    select(func.count()).where(checkpoints.c.thread_id == thread)
                ).scalar_one()
                assert stored == count
    finally:
        engine.dispose()
