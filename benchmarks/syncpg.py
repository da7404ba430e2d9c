"""The sync savers on PostgreSQL (issue 17, item 2): `SQLAlchemySaver` on psycopg 3
against the official `PostgresSaver`, each on a pool of 16 (`QueuePool` for ours,
`psycopg_pool.ConnectionPool` for the official one, with the same connection settings
as the async benchmark's), called from OS threads: concurrency N is N threads.

The agent step is the async benchmark's own (`workloads.agent_step`) run on the sync
savers: `Blocking`'s coroutines never suspend, so `call` runs one to its end with a
single `send` (no event loop, about a microsecond per call on both sides)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from checkpointer import SQLAlchemySaver

from .harness import POOL_SIZE, Metric, Side, alternate
from .workloads import agent_step, at_least, build_graph, message, sizes


def call(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The result of a coroutine that never suspends (a `Blocking` saver's)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a sync saver's coroutine suspended")


class Blocking:
    """A sync saver behind the async methods `agent_step` calls."""

    def __init__(self, saver: BaseCheckpointSaver[Any]) -> None:
        self.saver = saver
        self.get_next_version = saver.get_next_version

    async def aget_tuple(self, c: Any) -> Any:
        return self.saver.get_tuple(c)

    async def aput(self, *args: Any) -> Any:
        return self.saver.put(*args)

    async def aput_writes(self, *args: Any, **kw: Any) -> Any:
        return self.saver.put_writes(*args, **kw)


@contextmanager
def sync_sides(
    ours_dsn: str, official_dsn: str, *, pool_size: int = POOL_SIZE
) -> Iterator[tuple[SQLAlchemySaver, PostgresSaver, Engine, ConnectionPool[Any]]]:
    """Both sync savers set up on existing databases (`ours_dsn`, `official_dsn`: plain
    `postgresql://` DSNs, which may point at a proxy), pools filled, closed on exit."""
    with ExitStack() as stack:
        engine = create_engine(
            make_url(ours_dsn).set(drivername="postgresql+psycopg"),
            pool_size=pool_size,
            max_overflow=0,
        )
        stack.callback(engine.dispose)
        ours = SQLAlchemySaver(engine)
        ours.setup()
        pool: ConnectionPool[Any] = ConnectionPool(
            official_dsn,
            min_size=pool_size,
            max_size=pool_size,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        )
        pool.open(wait=True)
        stack.callback(pool.close)
        official = PostgresSaver(pool)  # type: ignore[arg-type]
        official.setup()
        yield ours, official, engine, pool


def threaded_steps(saver: BaseCheckpointSaver[Any], threads: int, steps: int, n: int) -> float:
    """Steps/s of `threads` threads of `steps` agent steps from `n` OS threads."""
    ids = [f"sync-{uuid.uuid4().hex}" for _ in range(threads)]
    shim: Any = Blocking(saver)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not ids:
                    return
                thread_id = ids.pop()
            for step in range(steps):
                call(agent_step(shim, thread_id, step))

    workers = [threading.Thread(target=worker) for _ in range(n)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * steps / (time.perf_counter() - start)


def threaded_graph(
    saver: BaseCheckpointSaver[Any], threads: int, turns: int, concurrency: int
) -> float:
    """Turns/s of the 4-node graph (`graph.invoke`), `concurrency` threads at once."""
    graph = build_graph().compile(checkpointer=saver)

    def conversation(thread_id: str) -> None:
        cfg: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        for turn in range(turns):
            graph.invoke({"messages": [message(turn, 0, True)]}, cfg)

    ids = [f"graph-{uuid.uuid4().hex}" for _ in range(threads)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(conversation, ids))
    return threads * turns / (time.perf_counter() - start)


async def sync_workload(
    ours: Side, official: Side, quick: bool, rounds: int, tag: str = ""
) -> list[Metric]:
    """Agent step at 1 and 16 threads, and the real graph, on the sync savers (`ours`
    and `official` are the async sides' databases; the sync savers get their own
    pools on them)."""
    from .harness import server_dsn

    size = sizes(quick)
    c1 = Metric(
        "sync PostgreSQL",
        f"agent step steps/s, 1 thread ({size.c1[0] * 2} threads x {size.c1[1]} steps){tag}",
        "steps/s",
        True,
        ">= 1.0x",
        check=at_least(1.0),
    )
    c16 = Metric(
        "sync PostgreSQL",
        f"agent step steps/s, 16 threads ({size.c16[0]} threads x {size.c16[1]} steps){tag}",
        "steps/s",
        True,
        ">= 2.0x",
        check=at_least(2.0),
    )
    g_threads, g_turns, g_conc = size.graph
    graph = Metric(
        "sync PostgreSQL",
        f"real graph turns/s ({g_threads} threads x {g_turns} turns, {g_conc} threads){tag}",
        "turns/s",
        True,
        ">= 1.0x",
        check=at_least(1.0),
    )
    with sync_sides(server_dsn(ours.database), server_dsn(official.database)) as (
        sync_ours,
        sync_official,
        _,
        _,
    ):
        savers = {ours.name: sync_ours, official.name: sync_official}
        for saver in savers.values():
            threaded_steps(saver, 16, 3, 16)  # warm: every pooled connection used
            threaded_graph(saver, 2, 1, 2)

        async def measure(side: Side, _: int) -> dict[str, float]:
            saver = savers[side.name]
            return {
                "c1": threaded_steps(saver, size.c1[0] * 2, size.c1[1], 1),
                "c16": threaded_steps(saver, size.c16[0], size.c16[1], 16),
            }

        async def measure_graph(side: Side, _: int) -> dict[str, float]:
            return {"graph": threaded_graph(savers[side.name], g_threads, g_turns, g_conc)}

        await alternate(rounds * 2, ours, official, measure, {"c1": c1, "c16": c16})
        await alternate(min(rounds, 3), ours, official, measure_graph, {"graph": graph})
    return [c1, c16, graph]
