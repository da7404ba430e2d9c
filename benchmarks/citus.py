"""`python -m benchmarks --citus URL`: our async saver on Citus (the coordinator at URL,
tables distributed by `thread_id`) next to our saver on the plain PostgreSQL server of
the other workloads, on the same machine: agent steps and the real graph (ratios
Citus / PostgreSQL), the task count of each per-thread statement (`EXPLAIN` on the
coordinator) and the cross-thread filter search, which fans out to every shard.

The Citus side lives in a schema of its own in URL's database (created, distributed
and dropped by the run); the PostgreSQL side in a fresh database.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import asyncpg
from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver

from .harness import (
    POOL_SIZE,
    Call,
    Metric,
    Side,
    alternate,
    create_database,
    drop_database,
    interleave,
    server_dsn,
)
from .report import fmt
from .workloads import agent_step, config, run_agent_steps, run_graph, sizes


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def citus_sides(url: str) -> AsyncIterator[tuple[Side, Side]]:
    """(Citus, PostgreSQL): our saver on each, set up (and distributed on Citus)."""
    schema = f"cp_bench_{uuid.uuid4().hex[:8]}"
    plain_db = f"{schema}_plain"
    async with AsyncExitStack() as stack:
        admin = await asyncpg.connect(_dsn(url))
        try:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await admin.close()

        async def drop_schema() -> None:
            conn = await asyncpg.connect(_dsn(url))
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

        stack.push_async_callback(drop_schema)
        await create_database(plain_db)
        stack.push_async_callback(drop_database, plain_db)
        sides = []
        for name, target, saver_schema in (
            ("citus", make_url(url), schema),
            ("postgresql", make_url(server_dsn(plain_db)), None),
        ):
            engine = create_async_engine(
                target.set(drivername="postgresql+asyncpg"), pool_size=POOL_SIZE, max_overflow=0
            )
            stack.push_async_callback(engine.dispose)
            saver = AsyncSQLAlchemySaver(engine, schema=saver_schema)
            await saver.setup(distribute=True)
            sides.append(Side(name, saver, plain_db, engine=engine))
        yield sides[0], sides[1]


async def task_counts(citus: Side, url: str) -> dict[str, list[int]]:
    """Per statement of an agent step's calls: the `Task Count` of each distributed
    plan in its `EXPLAIN` on the coordinator (one task: one shard)."""
    assert citus.engine is not None
    saver = citus.saver
    assert isinstance(saver, AsyncSQLAlchemySaver)
    thread_id = f"tasks-{uuid.uuid4().hex}"
    await agent_step(saver, thread_id, 0)
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    calls: dict[str, Any] = {
        "agent step (aget_tuple; aput: blobs, checkpoint; aput_writes)": lambda: agent_step(
            saver, thread_id, 1
        ),
        "aget_tuple (latest)": lambda: saver.aget_tuple(config(thread_id)),
        "alist(thread, limit=10)": lambda: _drain(saver.alist(config(thread_id), limit=10)),
        "aget_delta_channel_history": lambda: saver.aget_delta_channel_history(
            config=config(thread_id), channels=["messages", "counter"]
        ),
        "alist(None, filter) (fan-out)": lambda: _drain(
            saver.alist(None, filter={"user_id": thread_id[:12]}, limit=10)
        ),
    }
    out: dict[str, list[int]] = {}
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(f'SET search_path = "{saver.schema}"')
        for name, call in calls.items():
            seen.clear()
            event.listen(citus.engine.sync_engine, "before_cursor_execute", record)
            try:
                await call()
            finally:
                event.remove(citus.engine.sync_engine, "before_cursor_execute", record)
            for i, (statement, params) in enumerate(seen):
                plan = await conn.fetch(f"EXPLAIN {statement}", *(params or ()))
                text = "\n".join(str(r[0]) for r in plan)
                out[f"{name} #{i + 1}"] = [int(n) for n in re.findall(r"Task Count: (\d+)", text)]
    finally:
        await conn.close()
    return out


async def _drain(items: Any) -> list[Any]:
    return [item async for item in items]


def _line(m: Metric) -> str:
    return (
        f"| {m.workload} | {m.name} | {fmt(m.ours.median)} ({fmt(m.ours.low)}-"
        f"{fmt(m.ours.high)}) | {fmt(m.official.median)} ({fmt(m.official.low)}-"
        f"{fmt(m.official.high)}) | {m.ratio:.2f}x |"
    )


async def run(url: str, quick: bool) -> int:
    size = sizes(quick)
    rounds = size.rounds
    started = time.perf_counter()
    async with citus_sides(url) as (citus, plain):
        counts = await task_counts(citus, url)
        print("Task count per statement on Citus (EXPLAIN on the coordinator):")
        for name, tasks in counts.items():
            print(f"- {name}: {', '.join(map(str, tasks)) or 'not distributed'}")
        print(flush=True)

        c1_threads, c1_steps = size.c1
        c16_threads, c16_steps = size.c16
        graph_threads, turns, concurrency = size.graph
        c1 = Metric("agent step", "steps/s, concurrency 1 (interleaved)", "steps/s", True)
        c16 = Metric(
            "agent step", f"steps/s, concurrency 16 ({c16_threads} x {c16_steps})", "", True
        )
        graph = Metric(
            "real graph", f"turns/s, {graph_threads} x {turns}, c{concurrency}", "", True
        )
        search = Metric("search", "alist(None, filter={user_id}) p50, fan-out", "us", False)
        for side in (citus, plain):
            await run_agent_steps(side.saver, 16, 3, 16)  # warm every pooled connection
            await run_graph(side.saver, 2, 1, 2)

        def steps(side: Side, r: int) -> dict[str, list[Call]]:
            ids = [f"agent-{uuid.uuid4().hex}" for _ in range(c1_threads)]
            return {
                "c1": [partial(agent_step, side.saver, t, s) for t in ids for s in range(c1_steps)]
            }

        def per_second(times_us: list[float]) -> float:
            return len(times_us) / (sum(times_us) / 1e6)

        await interleave(rounds, citus, plain, steps, {"c1": c1}, reduce=per_second)

        async def many(side: Side, _: int) -> dict[str, float]:
            return {"c16": await run_agent_steps(side.saver, c16_threads, c16_steps, 16)}

        await alternate(rounds, citus, plain, many, {"c16": c16})

        async def turns_per_second(side: Side, _: int) -> dict[str, float]:
            return {"graph": await run_graph(side.saver, graph_threads, turns, concurrency)}

        await alternate(min(rounds, 3), citus, plain, turns_per_second, {"graph": graph})

        # the search: agent threads of one user each (metadata user_id), on both sides
        users = [f"agent-{uuid.uuid4().hex[:6]}" for _ in range(100 if quick else 400)]

        async def fill(side: Side) -> None:
            semaphore = asyncio.Semaphore(16)

            async def thread(user: str) -> None:
                async with semaphore:
                    for s in range(5):
                        await agent_step(side.saver, user + uuid.uuid4().hex, s)

            await asyncio.gather(*(thread(u) for u in users))

        for side in (citus, plain):
            await fill(side)

        def searches(side: Side, r: int) -> dict[str, list[Call]]:
            picks = [random.Random(r * 100 + i).choice(users) for i in range(size.search_calls)]
            return {
                "search": [
                    partial(_drain, side.saver.alist(None, filter={"user_id": u})) for u in picks
                ]
            }

        await interleave(rounds, citus, plain, searches, {"search": search})
    print("| workload | metric | Citus median (min-max) | PostgreSQL median (min-max) | ratio |")
    print("|---|---|---|---|---|")
    for m in (c1, c16, graph, search):
        print(_line(m))
    print(f"\n(whole run {time.perf_counter() - started:.0f} s)", flush=True)
    return 0
