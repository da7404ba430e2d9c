"""Databases, savers and timing for the side-by-side benchmark.

Each side gets a database of its own (both savers use the same table names): ours is
migrated with our Alembic revisions, the official one with `AsyncPostgresSaver.setup()`.
Every database is created fresh for the run and dropped at the end.
"""

from __future__ import annotations

import gc
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver

POOL_SIZE = 16
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def server_dsn(database: str = "postgres") -> str:
    """`postgresql://` DSN of the test server (CHECKPOINTER_TEST_PG or 127.0.0.1:5432)."""
    import os

    base = os.environ.get("CHECKPOINTER_TEST_PG") or "postgresql://postgres@127.0.0.1:5432"
    return (
        make_url(base)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


async def create_database(name: str) -> None:
    conn = await asyncpg.connect(server_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(server_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Side:
    """One saver under test, on its own database."""

    name: str
    saver: BaseCheckpointSaver[Any]
    database: str
    engine: AsyncEngine | None = None
    pool: AsyncConnectionPool[Any] | None = None
    baseline_bytes: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run an admin query on this side's database (sizes, ANALYZE, EXPLAIN)."""
        conn = await asyncpg.connect(server_dsn(self.database))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def table_bytes(self) -> int:
        rows = await self.sql(
            "SELECT sum(pg_total_relation_size(c.oid))::bigint AS n FROM pg_class c "
            "WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r' "
            "AND pg_table_is_visible(c.oid)",
            list(TABLES),
        )
        return int(rows[0]["n"] or 0)

    async def vacuumed_bytes(self) -> int:
        """`table_bytes` after a plain VACUUM (which also builds the free-space and
        visibility maps that autovacuum would create at some point)."""
        conn = await asyncpg.connect(server_dsn(self.database))
        try:
            for table in TABLES:
                await conn.execute(f"VACUUM {table}")
        finally:
            await conn.close()
        return await self.table_bytes()

    async def sizes(self) -> dict[str, int]:
        """Bytes per relation (heap with TOAST, each index) of the three tables."""
        rows = await self.sql(
            "SELECT c.relname AS name, pg_table_size(c.oid) AS n FROM pg_class c "
            "WHERE c.relname = ANY($1::text[]) AND pg_table_is_visible(c.oid) "
            "UNION ALL SELECT i.relname, pg_total_relation_size(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname = ANY($1::text[]) AND pg_table_is_visible(t.oid) ORDER BY 1",
            list(TABLES),
        )
        return {r["name"]: int(r["n"]) for r in rows}

    async def count_checkpoints(self) -> int:
        rows = await self.sql("SELECT count(*) AS n FROM checkpoints")
        return int(rows[0]["n"])


@asynccontextmanager
async def sides(tag: str, *, pool_size: int = POOL_SIZE) -> AsyncIterator[tuple[Side, Side]]:
    """Fresh databases with ours and the official saver set up, dropped on exit."""
    run = f"cp_bench_{uuid.uuid4().hex[:8]}_{tag}"
    ours_db, official_db = f"{run}_ours", f"{run}_official"
    async with AsyncExitStack() as stack:
        for name in (ours_db, official_db):
            await create_database(name)
            stack.push_async_callback(drop_database, name)

        engine = create_async_engine(
            make_url(server_dsn(ours_db)).set(drivername="postgresql+asyncpg"),
            pool_size=pool_size,
            max_overflow=0,
        )
        stack.push_async_callback(engine.dispose)
        ours_saver = AsyncSQLAlchemySaver(engine)
        await ours_saver.setup()

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            server_dsn(official_db),
            min_size=pool_size,
            max_size=pool_size,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        )
        await pool.open(wait=True)
        stack.push_async_callback(pool.close)
        official_saver = AsyncPostgresSaver(pool)
        await official_saver.setup()

        ours = Side("ours", ours_saver, ours_db, engine=engine)
        official = Side("official", official_saver, official_db, pool=pool)
        for side in (ours, official):
            side.baseline_bytes = await side.table_bytes()
        yield ours, official


async def settle(*all_sides: Side) -> None:
    """Start a workload from the same quiet state on both sides: `VACUUM ANALYZE` the
    tables (what autovacuum would otherwise do in the middle of the next workload,
    after the writes of the last one) and collect this process's garbage."""
    for side in all_sides:
        conn = await asyncpg.connect(server_dsn(side.database))
        try:
            for table in TABLES:
                await conn.execute(f"VACUUM ANALYZE {table}")
        finally:
            await conn.close()
    gc.collect()


# -- measuring -----------------------------------------------------------------


@dataclass
class Series:
    """Values of one metric for one side, one per round."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def low(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def high(self) -> float:
        return max(self.values) if self.values else float("nan")


@dataclass
class Metric:
    """A measured quantity of a workload, with the target it is held to.

    `higher_is_better` decides how the ratio ours/official is judged; `target` is the
    ratio (or an absolute check, see `check`) that must hold."""

    workload: str
    name: str
    unit: str
    higher_is_better: bool
    target: str = ""
    ours: Series = field(default_factory=Series)
    official: Series = field(default_factory=Series)
    check: Callable[[Metric], bool | None] | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        off = self.official.median
        return self.ours.median / off if off else float("nan")

    def met(self) -> bool | None:
        return self.check(self) if self.check else None


async def alternate(
    rounds: int,
    ours: Side,
    official: Side,
    measure: Callable[[Side, int], Awaitable[dict[str, float]]],
    metrics: dict[str, Metric],
) -> None:
    """Run `measure` on both sides, `rounds` times, swapping who goes first each round
    (the machine is shared and noisy: neither side always gets the warm or cold slot)."""
    for r in range(rounds):
        order = (ours, official) if r % 2 == 0 else (official, ours)
        for side in order:
            values = await measure(side, r)
            for key, value in values.items():
                series = metrics[key].ours if side is ours else metrics[key].official
                series.values.append(value)


Call = Callable[[], Awaitable[Any]]


BLOCK = 4
"""Consecutive calls per side in `interleave`. Single calls paired with the other
saver's made each of ours run on caches the official call had just churned through:
measured on the filter search, ours took 4.4 ms after an official call and 3.0 ms
after one of its own (client CPU 2.8 against 1.9 ms), a penalty only the faster side
pays, and that no application running one saver sees."""


async def interleave(
    rounds: int,
    ours: Side,
    official: Side,
    plan: Callable[[Side, int], dict[str, list[Call]]],
    metrics: dict[str, Metric],
    reduce: Callable[[list[float]], float] | None = None,
) -> None:
    """Latency workloads: `plan(side, round)` gives, per metric, the calls to time (the
    same arguments for both sides). Calls run in short blocks of `BLOCK`, ours and the
    official ones after each other in alternating order, so a burst of load on the shared
    machine hits both; each round records each side's p50 in microseconds (or `reduce`
    of the times)."""
    for r in range(rounds):
        mine, theirs = plan(ours, r), plan(official, r)
        times = {key: ([], []) for key in mine}  # type: dict[str, tuple[list[float], list[float]]]
        # Round-robin over the metrics too, so comparisons between them (depth 10,000
        # against depth 10) are not skewed by load drifting during the round.
        for b, i in enumerate(range(0, max(len(calls) for calls in mine.values()), BLOCK)):
            for key, calls in mine.items():
                order = (0, 1) if (b + r) % 2 == 0 else (1, 0)
                for k in order:
                    for call in (calls if k == 0 else theirs[key])[i : i + BLOCK]:
                        start = time.perf_counter()
                        await call()
                        times[key][k].append((time.perf_counter() - start) * 1e6)
        for key, (t_ours, t_official) in times.items():
            if reduce is None:
                metrics[key].ours.values.append(percentile(t_ours, 0.5))
                metrics[key].official.values.append(percentile(t_official, 0.5))
            else:
                metrics[key].ours.values.append(reduce(t_ours))
                metrics[key].official.values.append(reduce(t_official))


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]
