"""MySQL/MariaDB, side by side: our `AsyncSQLAlchemySaver` (asyncmy, a pool of 16)
against the peer `langgraph-checkpoint-mysql` (its `AsyncMySaver` on an asyncmy pool of
16, autocommit, as its docs show), each on a database of its own on the same server, in
one run (`python -m benchmarks --backend mysql [--quick]`). The server comes from
CHECKPOINTER_TEST_MYSQL (default: root at 127.0.0.1:3306, MariaDB on this machine).

Workloads: the agent step at concurrency 1 and 16, deep reads (latest, an old
checkpoint by id, a page of 10) on threads of 10 / 200 / 1,000 checkpoints, the real
graph, and bytes on disk per checkpoint. Where the peer fails a call, its metric has
no figure and the note says why (its `aget_tuple` folds a checkpoint's blobs into one
`JSON_ARRAYAGG`, which MariaDB cuts at `group_concat_max_len` (about 1 MB here), so
reads fail once a checkpoint's values pass that).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import asyncmy
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.mysql.asyncmy import AsyncMySaver
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver

from . import workloads
from .harness import Call, Metric, Side, alternate, interleave
from .workloads import agent_step, at_least, at_most, config, run_agent_steps, sizes

POOL = 16
DEPTHS = {False: (10, 200, 1_000), True: (10, 100, 300)}
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def server() -> URL:
    url = make_url(os.environ.get("CHECKPOINTER_TEST_MYSQL") or "mysql://root@127.0.0.1:3306")
    return url.set(drivername="mysql+pymysql", database=None)


def _admin(sql: str) -> list[Any]:
    engine = create_engine(server(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql))
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def table_bytes(database: str) -> int:
    """Data and index bytes InnoDB reports for the three tables (after ANALYZE)."""
    names = ", ".join(f"'{t}'" for t in TABLES)
    for t in TABLES:
        _admin(f"ANALYZE TABLE `{database}`.`{t}`")
    rows = _admin(
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES "
        f"WHERE table_schema = '{database}' AND table_name IN ({names})"
    )
    return int(rows[0][0])


@asynccontextmanager
async def sides(tag: str) -> AsyncIterator[tuple[Side, Side]]:
    """Fresh databases with ours (Alembic) and the peer (its `setup()`), dropped on exit."""
    run = f"cp_bench_{uuid.uuid4().hex[:8]}_{tag}"
    ours_db, peer_db = f"{run}_ours", f"{run}_peer"
    async with AsyncExitStack() as stack:
        for name in (ours_db, peer_db):
            _admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            stack.callback(_admin, f"DROP DATABASE IF EXISTS `{name}`")
        engine = create_async_engine(
            server().set(drivername="mysql+asyncmy", database=ours_db),
            pool_size=POOL,
            max_overflow=0,
            pool_reset_on_return=None,  # what `from_conn_string` gives (docs/mysql.md)
        )
        stack.push_async_callback(engine.dispose)
        ours_saver = AsyncSQLAlchemySaver(engine)
        await ours_saver.setup()
        url = server()
        pool = await asyncmy.create_pool(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            db=peer_db,
            autocommit=True,
            minsize=POOL,
            maxsize=POOL,
        )

        async def close() -> None:
            pool.close()
            await pool.wait_closed()

        stack.push_async_callback(close)
        peer_saver = AsyncMySaver(pool)  # type: ignore[arg-type]
        await peer_saver.setup()
        await ours_saver.aget_tuple(config("warm"))
        yield (
            Side("ours", ours_saver, ours_db, engine=engine),
            Side("official", peer_saver, peer_db),
        )


async def agent(ours: Side, peer: Side, quick: bool, rounds: int) -> list[Metric]:
    size = sizes(quick)
    c1_threads, c1_steps = size.c1
    c16_threads, c16_steps = size.c16
    c1 = Metric(
        "agent step",
        f"steps/s, concurrency 1 ({c1_threads} threads x {c1_steps} steps, interleaved)",
        "steps/s",
        True,
        ">= 1.0x",
        check=at_least(1.0),
    )
    c16 = Metric(
        "agent step",
        f"steps/s, concurrency 16 ({c16_threads} threads x {c16_steps} steps)",
        "steps/s",
        True,
        ">= 2.0x",
        check=at_least(2.0),
    )
    for side in (ours, peer):
        await run_agent_steps(side.saver, 16, 3, 16)

    def plan(side: Side, r: int) -> dict[str, list[Call]]:
        ids = [f"agent-{uuid.uuid4().hex}" for _ in range(c1_threads)]
        return {"c1": [partial(agent_step, side.saver, t, s) for t in ids for s in range(c1_steps)]}

    await interleave(rounds, ours, peer, plan, {"c1": c1}, reduce=workloads.per_second)

    async def measure(side: Side, _: int) -> dict[str, float]:
        return {"c16": await run_agent_steps(side.saver, c16_threads, c16_steps, 16)}

    await alternate(rounds * 2, ours, peer, measure, {"c16": c16})
    return [c1, c16]


async def _deep_thread(saver: BaseCheckpointSaver[Any], depth: int) -> list[CheckpointTuple]:
    """A thread of `depth` agent steps written through `saver` (messages grow by two a
    step: about 600 bytes of channel value per step)."""
    thread_id = f"deep-{depth}-{uuid.uuid4().hex}"
    written: list[CheckpointTuple] = []
    latest: CheckpointTuple | None = None
    for step in range(depth):
        latest = await agent_step(saver, thread_id, step, latest)
        written.append(latest)
    return written


async def deep(ours: Side, peer: Side, quick: bool, rounds: int) -> list[Metric]:
    calls = sizes(quick).deep_calls
    metrics: dict[str, Metric] = {}
    threads: dict[tuple[str, int], list[CheckpointTuple]] = {}
    failed: dict[str, str] = {}
    for depth in DEPTHS[quick]:
        for kind, what in (
            ("latest", "aget_tuple, latest"),
            ("old", "aget_tuple, the first checkpoint by id"),
            ("page", "alist, limit 10"),
        ):
            metrics[f"{kind}{depth}"] = Metric(
                "deep reads",
                f"{what}, thread of {depth:,} checkpoints",
                "us",
                False,
                "<= 1.0x",
                check=at_most(1.0),
            )
        for side in (ours, peer):
            threads[(side.name, depth)] = await _deep_thread(side.saver, depth)

    async def page(saver: BaseCheckpointSaver[Any], c: Any) -> None:
        [t async for t in saver.alist(c, limit=10)]

    def plan(side: Side, _: int) -> dict[str, list[Call]]:
        out: dict[str, list[Call]] = {}
        for depth in DEPTHS[quick]:
            written = threads[(side.name, depth)]
            latest = config(written[-1].config["configurable"]["thread_id"])
            out[f"latest{depth}"] = [partial(side.saver.aget_tuple, latest)] * calls
            out[f"old{depth}"] = [partial(side.saver.aget_tuple, written[0].config)] * calls
            out[f"page{depth}"] = [partial(page, side.saver, latest)] * calls
        return out

    # A call that fails on one side is dropped from both, with its reason.
    for key in list(metrics):
        for side in (ours, peer):
            call = plan(side, 0)[key][0]
            try:
                await call()
            except Exception as error:
                failed[key] = f"{side.name}: {type(error).__name__}: {str(error)[:160]}"
    working = {k: m for k, m in metrics.items() if k not in failed}

    def plan_working(side: Side, r: int) -> dict[str, list[Call]]:
        return {k: v for k, v in plan(side, r).items() if k in working}

    await interleave(rounds, ours, peer, plan_working, working)
    for key, reason in failed.items():
        metrics[key].note = f"not measured, failed on {reason}"
        metrics[key].check = None
    return list(metrics.values())


async def graph(ours: Side, peer: Side, quick: bool, rounds: int) -> list[Metric]:
    return await workloads.graph_workload(ours, peer, quick, rounds)


async def storage(quick: bool) -> list[Metric]:
    threads, steps = sizes(quick).storage
    metric = Metric(
        "storage",
        f"bytes per checkpoint after agent steps ({threads} threads x {steps} steps, "
        "InnoDB data + indexes)",
        "bytes",
        False,
        "<= 1.0x",
        check=at_most(1.0),
    )
    async with sides("storage") as (ours, peer):
        for side in (ours, peer):
            base = table_bytes(side.database)
            await run_agent_steps(side.saver, threads, steps, 1)
            used = table_bytes(side.database) - base
            (metric.ours if side is ours else metric.official).values.append(
                used / (threads * steps)
            )
    return [metric]


async def run(
    quick: bool, only: set[str] | None, show: Callable[[Sequence[Metric]], None]
) -> list[Metric]:
    rounds = sizes(quick).rounds
    metrics: list[Metric] = []

    def wanted(name: str) -> bool:
        return only is None or name in only

    async with sides("main") as (ours, peer):
        for name, work in (("agent", agent), ("deep", deep), ("graph", graph)):
            if wanted(name):
                new = await work(ours, peer, quick, rounds)
                show(new)
                metrics += new
    if wanted("storage"):
        new = await storage(quick)
        show(new)
        metrics += new
    return metrics


async def conformance() -> dict[str, str]:
    """The conformance suite's result for ours and for the peer, on fresh databases."""
    from langgraph.checkpoint.conformance import checkpointer_test, validate

    out: dict[str, str] = {}
    async with sides("conformance") as (ours, peer):
        for side in (ours, peer):

            @checkpointer_test(name=side.name)
            async def factory(saver: Any = side.saver) -> AsyncIterator[Any]:
                yield saver

            report = await validate(factory)
            states = []
            for name, result in report.results.items():
                if result is None or not result.detected:
                    states.append(f"{name}: not implemented")
                elif not result.passed:
                    states.append(f"{name}: {len(result.failures)} failed")
            out[side.name] = f"{report.conformance_level()}" + (
                f" ({'; '.join(states)})" if states else ", every capability passed"
            )
    await asyncio.sleep(0)
    return out
