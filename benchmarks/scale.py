"""Scale (issue 17, item 4): the agent step from several processes on one PostgreSQL,
and the search and deep reads on a table grown to 1,000,000 checkpoints.

Processes: each side's saver runs in `PROCESSES` child processes (`python -m
benchmarks.scale worker ...`), each at concurrency 16 on a pool of `POOL`, started
together (each waits for a line on stdin once its pool is full); steps/s is all their
steps over the time from the first start to the last end.

A million checkpoints: the search and deep-thread rows of the 50,000-checkpoint
workloads are COPYed in and measured, then the table is grown on the server with
`INSERT ... SELECT` over `generate_series` (threads of 50 checkpoints shaped like
`workloads.thread_rows`: the same document and metadata keys, a user per thread, a
~40-byte `messages` blob per checkpoint, no writes, as the search rows), VACUUM
ANALYZEd and prewarmed, and the same calls measured again; the target is our p50 at
1,000,000 within 1.5x of ours at 50,000."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from .harness import Call, Metric, Side, interleave, server_dsn, sides
from .workloads import Population, config, load, prewarm, thread_rows

PROCESSES = 4
POOL = 4
"""Connections per process: 16 per side in all. The server's `max_connections` (100 on
this machine) is shared by everything running on it; 4 x 16 would not fit."""


@dataclass(frozen=True)
class ScaleSizes:
    threads: int  # agent step: threads per process per round
    steps: int
    rounds: int
    base: tuple[int, int]  # search rows: threads x checkpoints
    total: int  # checkpoints after growing the table
    calls: int


FULL = ScaleSizes(threads=64, steps=5, rounds=3, base=(1_000, 50), total=1_000_000, calls=15)
QUICK = ScaleSizes(threads=16, steps=3, rounds=2, base=(200, 50), total=100_000, calls=5)


# -- processes -------------------------------------------------------------------------


async def worker(kind: str, database: str, threads: int, steps: int) -> None:
    """One process: its saver on a pool of `POOL`, `threads` threads of `steps` agent steps
    at concurrency 16 once a line arrives on stdin; prints start, end, steps (JSON)."""
    from .workloads import run_agent_steps

    saver: Any
    close: Any
    if kind == "ours":
        from sqlalchemy.engine import make_url
        from sqlalchemy.ext.asyncio import create_async_engine

        from checkpointer import AsyncSQLAlchemySaver

        engine = create_async_engine(
            make_url(server_dsn(database)).set(drivername="postgresql+asyncpg"),
            pool_size=POOL,
            max_overflow=0,
        )
        saver, close = AsyncSQLAlchemySaver(engine), engine.dispose
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            server_dsn(database),
            min_size=POOL,
            max_size=POOL,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        )
        await pool.open(wait=True)
        saver, close = AsyncPostgresSaver(pool), pool.close
    await run_agent_steps(saver, 16, 2, 16)  # every pooled connection made, warm
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = time.time()
    await run_agent_steps(saver, threads, steps, 16)
    end = time.time()
    print(json.dumps({"start": start, "end": end, "steps": threads * steps}), flush=True)
    await close()


ROOT = str(Path(__file__).resolve().parent.parent)


async def _processes_round(side: Side, s: ScaleSizes) -> float:
    procs = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "benchmarks.scale", "worker", side.name, side.database),
            *(str(s.threads), str(s.steps)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(PROCESSES)
    ]
    for p in procs:
        assert p.stdout is not None
        line = await p.stdout.readline()
        assert line.strip() == b"ready", line
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        await p.stdin.drain()
    done: list[dict[str, float]] = []
    for p in procs:
        assert p.stdout is not None
        done.append(json.loads(await p.stdout.readline()))
        await p.wait()
    span = max(d["end"] for d in done) - min(d["start"] for d in done)
    return sum(d["steps"] for d in done) / span


async def processes_workload(ours: Side, official: Side, quick: bool) -> list[Metric]:
    s = QUICK if quick else FULL
    metric = Metric(
        "scale",
        f"agent step steps/s, {PROCESSES} processes x concurrency 16 "
        f"({s.threads} threads x {s.steps} steps each)",
        "steps/s",
        True,
        ">= 3.0x",
        check=lambda m: m.ratio >= 3.0,
    )
    for r in range(s.rounds):
        for side in (ours, official) if r % 2 == 0 else (official, ours):
            rate = await _processes_round(side, s)
            (metric.ours if side is ours else metric.official).values.append(rate)
    return [metric]


# -- a million checkpoints ---------------------------------------------------------------

GROW = """
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                         type, checkpoint, metadata)
SELECT 'bulk-' || t, '', ids.id, ids.parent, NULL,
       jsonb_build_object('v', 4, 'id', ids.id, 'ts', now()::text,
         'channel_values', jsonb_build_object('counter', i),
         'channel_versions', jsonb_build_object('messages', ids.v, 'counter', ids.v),
         'versions_seen', jsonb_build_object('agent', jsonb_build_object('messages', ids.v)),
         'updated_channels', '["messages", "counter"]'::jsonb),
       jsonb_build_object('source', 'loop', 'step', i, 'parents', '{}'::jsonb,
         'user_id', 'bulk-user-' || t)
FROM generate_series($1::int, $2::int - 1) t, generate_series(0, 49) i,
LATERAL (SELECT pg_temp.fmt(t * 50 + i) AS id,
                CASE WHEN i = 0 THEN NULL ELSE pg_temp.fmt(t * 50 + i - 1) END AS parent,
                lpad((i + 1)::text, 32, '0') || '.' || lpad(((t * 7 + i) % 9973)::text, 16, '0')
                  AS v) ids
"""
GROW_BLOBS = """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT 'bulk-' || t, '', 'messages',
       lpad((i + 1)::text, 32, '0') || '.' || lpad(((t * 7 + i) % 9973)::text, 16, '0'),
       'msgpack', convert_to('message ' || i || ' of bulk-' || t || ' {"role": "ai"}', 'UTF8')
FROM generate_series($1::int, $2::int - 1) t, generate_series(0, 49) i
"""
FMT = """
CREATE OR REPLACE FUNCTION pg_temp.fmt(n bigint) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-'
          || substr(h, 17, 4) || '-' || substr(h, 21, 12)
   FROM (SELECT '1e' || lpad(to_hex(n), 30, '0') AS h) x $$
"""
"""Ids that sort before today's UUIDv6 ones (as checkpoints written long ago)."""


async def grow(side: Side, threads: int) -> float:
    """Add `threads` threads of 50 checkpoints on the server; seconds it took."""
    start = time.perf_counter()
    conn = await asyncpg.connect(server_dsn(side.database))
    try:
        await conn.execute(FMT)
        for low in range(0, threads, 2_000):
            high = min(threads, low + 2_000)
            await conn.execute(GROW, low, high)
            await conn.execute(GROW_BLOBS, low, high)
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        await prewarm(conn)
    finally:
        await conn.close()
    return time.perf_counter() - start


async def million_workload(ours: Side, quick: bool, rounds: int) -> list[Metric]:
    """Our p50s at the 50,000-checkpoint size, then at `total` (see the module doc)."""
    s = QUICK if quick else FULL
    n_threads, per_thread = s.base
    pops, threads = [], []
    for t in range(n_threads):
        thread_id = f"million-{t:05}-{uuid.uuid4().hex[:6]}"
        pop, ids = thread_rows(thread_id, per_thread, user_id=f"user-{t:05}", writes=False)
        pops.append(pop)
        threads.append((thread_id, ids))
    deep: dict[int, tuple[str, list[str]]] = {}
    for depth in (10, 10_000):
        thread_id = f"mdeep-{depth}-{uuid.uuid4().hex[:8]}"
        pop, ids = thread_rows(thread_id, depth, user_id=f"mdeep-{depth}")
        pops.append(pop)
        deep[depth] = (thread_id, ids)
    merged = Population(
        [r for p in pops for r in p.checkpoints],
        [r for p in pops for r in p.blobs],
        [r for p in pops for r in p.writes],
    )
    await load(ours, [merged])
    base = len(merged.checkpoints)
    saver = ours.saver

    async def collect(expected: int, *args: Any, **kwargs: Any) -> None:
        found = [t async for t in saver.alist(*args, **kwargs)]
        assert len(found) == expected, (len(found), expected)

    def plan(side: Side, r: int) -> dict[str, list[Call]]:
        import random

        rng = random.Random(r)
        picks = [rng.randrange(n_threads) for _ in range(s.calls)]
        get = saver.aget_tuple
        return {
            "filter": [
                partial(collect, per_thread, None, filter={"user_id": f"user-{t:05}"})
                for t in picks
            ],
            "thread10": [partial(collect, 10, config(threads[t][0]), limit=10) for t in picks],
            "latest": [partial(get, config(deep[10_000][0]))] * (s.calls * 4),
            "by id": [
                partial(get, config(deep[10_000][0], rng.choice(deep[10_000][1])))
                for _ in range(s.calls * 4)
            ],
        }

    names = {
        "filter": "alist(None, filter={user_id}) p50",
        "thread10": "alist(thread, limit=10) p50",
        "latest": "aget_tuple latest p50, 10,000-checkpoint thread",
        "by id": "aget_tuple by id p50, 10,000-checkpoint thread",
    }
    # both columns are ours: "ours" at `total`, "official" at the base size, so the
    # ratio is the growth, held to <= 1.5x
    metrics = {
        key: Metric(
            "scale",
            f"{label}, ours at {s.total:,} / ours at {base:,} checkpoints",
            "us",
            False,
            "<= 1.5x",
            check=lambda m: m.ratio <= 1.5,
        )
        for key, label in names.items()
    }
    small: dict[str, Metric] = {k: Metric("", "", "us", False) for k in metrics}
    await interleave(rounds, ours, ours, plan, small)
    seconds = await grow(ours, (s.total - base) // 50)
    grown: dict[str, Metric] = {k: Metric("", "", "us", False) for k in metrics}
    await interleave(rounds, ours, ours, plan, grown)
    total = await ours.count_checkpoints()
    for key, m in metrics.items():
        m.ours.values = grown[key].ours.values + grown[key].official.values
        m.official.values = small[key].ours.values + small[key].official.values
        m.note = (
            f"table grown to {total:,} checkpoints on the server in {seconds:.0f} s; "
            f"the official column is ours at {base:,}"
        )
    return list(metrics.values())


async def scale_workloads(quick: bool, rounds: int, only: set[str] | None) -> list[Metric]:
    """On databases of their own (the grown table must not slow the other workloads)."""
    out: list[Metric] = []
    async with sides("scale", pool_size=2) as (ours, official):
        if only is None or "processes" in only:
            out += await processes_workload(ours, official, quick)
        if only is None or "million" in only:
            out += await million_workload(ours, quick, rounds)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        asyncio.run(worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
