"""SQLite, side by side: our savers against the official `AsyncSqliteSaver`
(aiosqlite) and `SqliteSaver` (sqlite3), each on a file of its own in a temporary
directory, paired in one run (`python -m benchmarks --backend sqlite [--quick]`).

Both sides run with the settings their `setup()` leaves: WAL (ours switches a file
still in the default rollback journal at first use, the official saver in `setup()`)
and SQLite's default `synchronous=FULL`, so every commit is one fsync on both. Deep
threads are written through each saver's own `put` (the two store different layouts)
from a loader connection with `synchronous=OFF`, which only speeds the loading.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from sqlalchemy import create_engine, event
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver

from . import workloads
from .harness import Call, Metric, Side, alternate, interleave
from .workloads import agent_step, at_least, at_most, config, sizes

ROOT = Path(__file__).resolve().parent.parent

DEPTHS = {False: (10, 1_000, 10_000), True: (10, 100, 1_000)}
"""Deep-thread depths, full and quick."""


@asynccontextmanager
async def async_sides(folder: str) -> AsyncIterator[tuple[Side, Side]]:
    """Ours on aiosqlite (an `AsyncEngine` with its default pool) and the official
    saver on one aiosqlite connection, as its docs show."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{folder}/ours.db")
    ours = AsyncSQLAlchemySaver(engine)
    await ours.setup()
    conn = await aiosqlite.connect(f"{folder}/official.db")
    official = AsyncSqliteSaver(conn)
    await official.setup()
    await ours.aget_tuple(config("warm"))  # first use: journal mode, trial statement
    try:
        yield (
            Side("ours", ours, f"{folder}/ours.db", engine=engine),
            Side("official", official, f"{folder}/official.db"),
        )
    finally:
        await conn.close()
        await engine.dispose()


@contextmanager
def sync_sides(folder: str) -> Iterator[tuple[Side, Side]]:
    """Ours on sqlite3 (an `Engine`, default pool) and the official `SqliteSaver` on
    one connection shared by all threads (`check_same_thread=False`, as its docs say)."""
    engine = create_engine(f"sqlite:///{folder}/ours-sync.db")
    ours = SQLAlchemySaver(engine)
    ours.setup()
    conn = sqlite3.connect(f"{folder}/official-sync.db", check_same_thread=False)
    official = SqliteSaver(conn)
    official.setup()
    ours.get_tuple(config("warm"))
    try:
        yield (
            Side("ours", ours, f"{folder}/ours-sync.db"),
            Side("official", official, f"{folder}/official-sync.db"),
        )
    finally:
        conn.close()
        engine.dispose()


class Blocking:
    """A sync saver behind the async methods `agent_step` calls, so the same step runs
    on both kinds of saver (each call blocks its thread's own event loop)."""

    def __init__(self, saver: BaseCheckpointSaver[Any]) -> None:
        self.saver = saver
        self.get_next_version = saver.get_next_version

    async def aget_tuple(self, c: Any) -> Any:
        return self.saver.get_tuple(c)

    async def aput(self, *args: Any) -> Any:
        return self.saver.put(*args)

    async def aput_writes(self, *args: Any, **kw: Any) -> Any:
        return self.saver.put_writes(*args, **kw)


def threaded_steps(saver: BaseCheckpointSaver[Any], threads: int, steps: int, n: int) -> float:
    """Steps/s of `threads` threads of `steps` agent steps from `n` OS threads."""
    ids = [f"sync-{uuid.uuid4().hex}" for _ in range(threads)]
    shim: Any = Blocking(saver)
    lock = threading.Lock()

    def worker() -> None:
        loop = asyncio.new_event_loop()
        try:
            while True:
                with lock:
                    if not ids:
                        return
                    thread_id = ids.pop()
                for step in range(steps):
                    loop.run_until_complete(agent_step(shim, thread_id, step))
        finally:
            loop.close()

    workers = [threading.Thread(target=worker) for _ in range(n)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * steps / (time.perf_counter() - start)


def retarget(metrics: list[Metric], prefix: str, target: float | None = 1.0) -> list[Metric]:
    """Name the workload's backend; SQLite's targets are parity (>= 1.0x / <= 1.0x)."""
    for m in metrics:
        m.workload = f"{prefix}: {m.workload}"
        if target is not None and m.target:
            m.target = f">= {target}x" if m.higher_is_better else f"<= {target}x"
            m.check = at_least(target) if m.higher_is_better else at_most(target)
    return metrics


async def deep_workload(ours: Side, official: Side, quick: bool, rounds: int) -> list[Metric]:
    """`aget_tuple` latest on threads of three depths, and a page of `alist` (10
    newest) on the deepest; threads written through each saver's own `put`."""
    depths = DEPTHS[quick]
    calls = sizes(quick).deep_calls
    threads = {d: f"deep-{d}-{uuid.uuid4().hex[:8]}" for d in depths}
    for side in (ours, official):
        loader = _loader(side)
        for depth, thread_id in threads.items():
            for step in range(depth):
                # latest=None: every checkpoint the same size (no growing message list),
                # so a read's cost shows depth alone
                await agent_step(loader, thread_id, step, None)
    metrics = {
        f"latest {d}": Metric(
            "deep threads",
            f"aget_tuple latest p50, {d:,} checkpoints",
            "us",
            False,
            "<= 1.0x",
            check=at_most(1.0),
        )
        for d in depths
    }
    metrics["page"] = Metric(
        "list pages",
        f"alist(limit=10) p50, {depths[-1]:,}-checkpoint thread",
        "us",
        False,
        "<= 1.0x",
        check=at_most(1.0),
    )

    async def page(side: Side) -> None:
        got = [t async for t in side.saver.alist(config(threads[depths[-1]]), limit=10)]
        assert len(got) == 10

    def plan(side: Side, r: int) -> dict[str, list[Call]]:
        out: dict[str, list[Call]] = {
            f"latest {d}": [partial(side.saver.aget_tuple, config(t))] * calls
            for d, t in threads.items()
        }
        out["page"] = [partial(page, side)] * calls
        return out

    await interleave(rounds, ours, official, plan, metrics)
    deep, shallow = metrics[f"latest {depths[-1]}"], metrics[f"latest {depths[0]}"]
    growth = deep.ours.median / shallow.ours.median
    deep.note = f"ours {depths[-1]:,}/{depths[0]} = {growth:.2f}x (target <= 1.2x)"
    return list(metrics.values())


def _loader(side: Side) -> Any:
    """A sync saver on the side's file with `synchronous=OFF`, to write deep threads
    quickly (the measured savers keep their settings)."""
    if side.name == "ours":
        engine = create_engine(f"sqlite:///{side.database}")
        event.listen(engine, "connect", lambda c, _: c.execute("PRAGMA synchronous=OFF"))
        return Blocking(SQLAlchemySaver(engine))
    conn = sqlite3.connect(side.database, check_same_thread=False)
    conn.execute("PRAGMA synchronous=OFF")
    return Blocking(SqliteSaver(conn))


async def search_workload(ours: Side, official: Side, quick: bool, rounds: int) -> list[Metric]:
    """`alist(None, filter={"user_id": ...})` over many short threads."""
    n_threads = 100 if quick else 500
    users = [f"usr-{i:07}-" for i in range(n_threads)]  # a thread id's first 12 characters
    for side in (ours, official):
        loader = _loader(side)
        for user in users:
            latest = None
            for step in range(5):
                latest = await agent_step(loader, f"{user}{uuid.uuid4().hex}", step, latest)
    metric = Metric(
        "search",
        f"alist(filter=user_id) p50, {n_threads * 5:,} checkpoints",
        "us",
        False,
        "<= 1.0x",
        check=at_most(1.0),
    )

    async def search(side: Side, user: str) -> None:
        # agent_step's metadata user_id is the thread id's first 12 characters
        got = [t async for t in side.saver.alist(None, filter={"user_id": user})]
        assert len(got) == 5, len(got)

    def plan(side: Side, r: int) -> dict[str, list[Call]]:
        return {"search": [partial(search, side, u) for u in users[: sizes(quick).search_calls]]}

    await interleave(rounds, ours, official, plan, {"search": metric})
    return [metric]


def storage(ours: Side, official: Side) -> list[Metric]:
    """Bytes of the database file (WAL checkpointed into it) per checkpoint."""
    metric = Metric(
        "storage",
        "file bytes per checkpoint, after the runs above",
        "bytes",
        False,
        "<= 1.0x",
        check=at_most(1.0),
    )
    for side in (ours, official):
        conn = sqlite3.connect(side.database)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
        conn.close()
        per = os.path.getsize(side.database) / max(count, 1)
        (metric.ours if side is ours else metric.official).values.append(per)
    return [metric]


async def sync_workload(ours: Side, official: Side, quick: bool, rounds: int) -> list[Metric]:
    """The sync savers from OS threads: agent step at 1 and 16 threads, `get_tuple`."""
    size = sizes(quick)
    c1 = Metric("agent step", "steps/s, 1 thread", "steps/s", True, ">= 1.0x", check=at_least(1.0))
    c16 = Metric(
        "agent step", "steps/s, 16 threads", "steps/s", True, ">= 1.0x", check=at_least(1.0)
    )
    get = Metric(
        "get_tuple",
        "get_tuple latest p50, 20-checkpoint thread",
        "us",
        False,
        "<= 1.0x",
        check=at_most(1.0),
    )
    for side in (ours, official):
        threaded_steps(side.saver, 16, 2, 16)  # warm

    async def measure(side: Side, _: int) -> dict[str, float]:
        return {
            "c1": threaded_steps(side.saver, size.c1[0], size.c1[1], 1),
            "c16": threaded_steps(side.saver, size.c16[0], size.c16[1], 16),
        }

    await alternate(rounds * 2, ours, official, measure, {"c1": c1, "c16": c16})
    thread_ids = {}
    for side in (ours, official):
        thread_ids[side.name] = f"get-{uuid.uuid4().hex}"
        threaded_steps_one(side.saver, thread_ids[side.name], 20)

    async def one(side: Side) -> None:
        side.saver.get_tuple(config(thread_ids[side.name]))

    def plan(side: Side, r: int) -> dict[str, list[Call]]:
        return {"get": [partial(one, side)] * size.deep_calls}

    await interleave(rounds, ours, official, plan, {"get": get})
    return [c1, c16, get]


def threaded_steps_one(saver: BaseCheckpointSaver[Any], thread_id: str, steps: int) -> None:
    """`steps` agent steps on one thread, from a thread of its own (off the loop)."""
    worker = threading.Thread(target=_steps_one, args=(saver, thread_id, steps))
    worker.start()
    worker.join()


def _steps_one(saver: BaseCheckpointSaver[Any], thread_id: str, steps: int) -> None:
    loop = asyncio.new_event_loop()
    try:
        latest = None
        for step in range(steps):
            shim: Any = Blocking(saver)
            latest = loop.run_until_complete(agent_step(shim, thread_id, step, latest))
    finally:
        loop.close()


# -- two processes on one file --------------------------------------------------------

WORKER = """
import asyncio, sys, uuid
sys.path.insert(0, {root!r})
from benchmarks.sqlite import process_worker
asyncio.run(process_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def process_worker(kind: str, path: str, threads: int, steps: int) -> None:
    """One of the processes: `threads` threads of `steps` agent steps, 4 at a time;
    prints the wall-clock times its steps began and ended."""
    if kind == "ours":
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        saver: Any = AsyncSQLAlchemySaver(engine)
        try:
            began = time.time()
            await workloads.run_agent_steps(saver, threads, steps, 4)
            print(began, time.time())
        finally:
            await engine.dispose()
        return
    async with aiosqlite.connect(path) as conn:
        began = time.time()
        await workloads.run_agent_steps(AsyncSqliteSaver(conn), threads, steps, 4)
        print(began, time.time())


async def two_processes(folder: str, quick: bool, rounds: int) -> list[Metric]:
    """Two processes writing one file at once: steps/s of both together; every
    checkpoint must be there and no process may fail ("database is locked")."""
    threads, steps = (4, 5) if quick else (8, 10)
    metric = Metric(
        "two processes",
        f"steps/s, 2 processes x {threads} threads x {steps} steps, one file",
        "steps/s",
        True,
        ">= 1.0x",
        check=at_least(1.0),
    )
    root = str(ROOT)
    for r in range(rounds):
        for kind in ("ours", "official") if r % 2 == 0 else ("official", "ours"):
            path = f"{folder}/two-{kind}-{r}.db"
            await _setup(kind, path)
            script = WORKER.format(root=root)
            procs = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    script,
                    kind,
                    path,
                    str(threads),
                    str(steps),
                    stdout=asyncio.subprocess.PIPE,
                )
                for _ in range(2)
            ]
            outs = [await p.communicate() for p in procs]
            codes = [p.returncode for p in procs]
            # each worker prints when its steps began and ended (after its imports, which
            # are not what is measured); the two overlap as they start together
            spans = [tuple(map(float, out.split())) for out, _ in outs if out.strip()]
            elapsed = max(e for _, e in spans) - min(b for b, _ in spans) if spans else 0.0
            if any(codes):
                raise RuntimeError(f"{kind}: a writer process failed ({codes})")
            conn = sqlite3.connect(path)
            count = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
            conn.close()
            if count != 2 * threads * steps:
                metric.note += f" {kind} round {r}: {count} checkpoints;"
            series = metric.ours if kind == "ours" else metric.official
            series.values.append(2 * threads * steps / elapsed)
    return [metric]


async def _setup(kind: str, path: str) -> None:
    if kind == "ours":
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        saver = AsyncSQLAlchemySaver(engine)
        await saver.setup()
        await saver.aget_tuple(config("warm"))  # journal mode switched once
        await engine.dispose()
        return
    async with aiosqlite.connect(path) as conn:
        await AsyncSqliteSaver(conn).setup()


async def run(
    quick: bool, only: set[str] | None, print_metrics: Callable[[list[Metric]], None]
) -> list[Metric]:
    """Every SQLite workload (or those in `only`), async then sync then two processes."""
    rounds = sizes(quick).rounds
    metrics: list[Metric] = []

    def wanted(name: str) -> bool:
        return only is None or name in only

    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as folder:
        async with async_sides(folder) as (ours, official):
            runs: list[tuple[str, Any]] = [
                ("agent", lambda: workloads.agent_workload(ours, official, quick, rounds)),
                ("deep", lambda: deep_workload(ours, official, quick, rounds)),
                ("search", lambda: search_workload(ours, official, quick, rounds)),
                ("graph", lambda: workloads.graph_workload(ours, official, quick, rounds)),
                ("delta", lambda: workloads.delta_workload(ours, official, quick, rounds)),
            ]
            for name, job in runs:
                if wanted(name):
                    new = retarget(await job(), "SQLite async")
                    print_metrics(new)
                    metrics += new
            if wanted("storage"):
                new = retarget(storage(ours, official), "SQLite async")
                print_metrics(new)
                metrics += new
        if wanted("sync"):
            with sync_sides(folder) as (ours, official):
                new = retarget(await sync_workload(ours, official, quick, rounds), "SQLite sync")
                print_metrics(new)
                metrics += new
        if wanted("processes"):
            new = retarget(await two_processes(folder, quick, rounds), "SQLite")
            print_metrics(new)
            metrics += new
    return metrics
