"""`python -m benchmarks.thread_index [--quick]`: candidates for the thread-list index.

Revision 0004 added a partial index on root checkpoints `(checkpoint_id, thread_id)`
for `alist_threads`, `acount_threads` and sweeps; it costs storage. This measures each
candidate on one database of `threads x 5` checkpoints (the operations workload's
rows): its size, the first page and the page after half the threads (p50 of 50
calls), a filtered count, a dry-run sweep; and, on fresh databases, the storage rows
of `make bench` (agent steps, one thread after 10/100/500 steps) against the
official saver's tables. Not part of `make bench`: a one-off for choosing the index
(revision 0006 records the choice)."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver

from . import harness, workloads
from .harness import create_database, drop_database, percentile, server_dsn
from .workloads import Population, load, thread_rows

INDEX = "checkpoints_root_id_idx"
CANDIDATES: dict[str, str | None] = {
    "0004: (checkpoint_id, thread_id)": "(checkpoint_id, thread_id) WHERE checkpoint_ns = ''",
    "0006: (checkpoint_id)": "(checkpoint_id) WHERE checkpoint_ns = ''",
    "(checkpoint_id) fillfactor 100": (
        "(checkpoint_id) WITH (fillfactor = 100) WHERE checkpoint_ns = ''"
    ),
    "none": None,
}
"""Each with revision 0006's partial run-id index."""


async def use(database: str, definition: str | None) -> int:
    """Replace the thread-list index by `definition` (none: drop it); its bytes."""
    conn = await asyncpg.connect(server_dsn(database))
    try:
        await conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
        if definition is None:
            return 0
        await conn.execute(f"CREATE INDEX {INDEX} ON checkpoints {definition}")
        await conn.execute("ANALYZE checkpoints")
        return int(await conn.fetchval(f"SELECT pg_total_relation_size('{INDEX}')"))
    finally:
        await conn.close()


async def p50_ms(call: Any, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return percentile(times, 0.5)


async def speed(threads: int, calls: int, passes: int = 2) -> None:
    database = f"cp_idx_{uuid.uuid4().hex[:8]}"
    await create_database(database)
    url = server_dsn(database).replace("postgresql://", "postgresql+asyncpg://")
    engine = create_async_engine(url, pool_size=4)
    try:
        saver = AsyncSQLAlchemySaver(engine)
        await saver.setup()
        merged = Population([], [], [])
        for t in range(threads):
            pop, _ = thread_rows(f"ops-{t:06}", 5, user_id=f"user-{t % 1000:03}", writes=False)
            merged.checkpoints.extend(pop.checkpoints)
            merged.blobs.extend(pop.blobs)
        side = harness.Side("ours", saver, database)
        await load(side, [merged])
        del merged
        now = datetime.now(timezone.utc) + timedelta(minutes=1)
        print(f"{threads:,} threads x 5 checkpoints; p50 of {calls} calls, ms")
        print("| index | bytes | first page | page after half | count filter | dry sweep 1,000 |")
        print("|---|---|---|---|---|---|")
        cursor = None
        done: set[str] = set()
        for name, definition in [*CANDIDATES.items()] * passes:
            size = await use(database, definition)
            await engine.dispose()  # no plan cached against the dropped index
            if definition is None and name in done:
                continue  # each call scans and sorts the table: once is enough
            done.add(name)
            n = 3 if definition is None else calls
            first = await p50_ms(lambda: saver.alist_threads(limit=50), n)
            if cursor is None:  # data, whatever the index: found once
                for _ in range(threads // 2 // 50):
                    cursor = (await saver.alist_threads(limit=50, cursor=cursor)).cursor
            after = await p50_ms(lambda c=cursor: saver.alist_threads(limit=50, cursor=c), n)
            count = await p50_ms(
                lambda: saver.acount_threads(filter={"user_id": "user-007"}), max(3, n // 5)
            )
            sweep = await p50_ms(
                lambda: saver.asweep(idle_for=timedelta(0), now=now, limit=1000, dry_run=True),
                3,
            )
            print(
                f"| {name} | {size:,} | {first:.2f} | {after:.2f} | {count:.1f} | {sweep:.1f} |",
                flush=True,
            )
    finally:
        await engine.dispose()
        await drop_database(database)


async def storage(quick: bool, verbose: bool = False) -> None:
    """The storage rows of `make bench` with each candidate in place of 0004's index."""
    print("\nstorage, ours/official (make bench's storage workload)")
    print("| index | per checkpoint | one thread " + " / ".join(
        str(m) for m in workloads.sizes(quick).marks) + " |")  # fmt: skip
    print("|---|---|---|")
    original = workloads.sides  # type: ignore[attr-defined]
    for name, definition in CANDIDATES.items():

        @asynccontextmanager
        async def patched(
            tag: str, *, pool_size: int = harness.POOL_SIZE, d: str | None = definition
        ) -> AsyncIterator[tuple[harness.Side, harness.Side]]:
            async with original(tag, pool_size=pool_size) as (ours, official):
                await use(ours.database, d)
                ours.baseline_bytes = await ours.table_bytes()
                yield ours, official

        workloads.sides = patched  # type: ignore[attr-defined]
        try:
            extra: dict[str, Any] = {}
            metrics = await workloads.storage_workload(quick, extra)
        finally:
            workloads.sides = original  # type: ignore[attr-defined]
        ratios = [f"{m.ratio:.3f}" for m in metrics]
        print(f"| {name} | {ratios[0]} | {' / '.join(ratios[1:])} |", flush=True)
        if verbose:
            for key, sizes in extra.items():
                print(f"  {key}: {sizes}")


async def main(quick: bool, only: str | None, verbose: bool = False) -> None:
    if only in (None, "speed"):
        await speed(5_000 if quick else 100_000, 10 if quick else 50)
    if only in (None, "storage"):
        await storage(quick, verbose)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.thread_index")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("speed", "storage"))
    parser.add_argument("--verbose", action="store_true", help="bytes per relation")
    args = parser.parse_args()
    asyncio.run(main(args.quick, args.only, args.verbose))
