"""Operations at scale (issue 19, item 5): the thread list and count, and a sweep of idle
threads beside a running agent workload, with the official saver's
`prune(strategy="delete")` on the same threads for comparison.

Both sides are loaded with the same threads (`thread_rows`: 5 checkpoints each, a blob
and three writes per checkpoint). The sweep selects threads idle before `now`: the
loaded ids are made at load time, so `now` is set a minute after the load and
`idle_for=0` makes every loaded thread idle; `limit` bounds the sweep to `sweep`
threads, the oldest first, and the official saver prunes those same threads."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from checkpointer import AsyncSQLAlchemySaver

from .harness import Metric, percentile, sides
from .workloads import Population, agent_step, load, thread_rows


@dataclass(frozen=True)
class OpsSizes:
    threads: int
    per_thread: int
    sweep: int
    calls: int
    agent_calls: int


FULL = OpsSizes(threads=100_000, per_thread=5, sweep=10_000, calls=50, agent_calls=400)
QUICK = OpsSizes(threads=5_000, per_thread=5, sweep=1_000, calls=20, agent_calls=100)


def _absolute(limit_ms: float) -> Any:
    return lambda m: m.ours.median <= limit_ms


async def _p50_ms(call: Any, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return percentile(times, 0.5)


async def _agent_p99(saver: Any, stop: asyncio.Event | None, n: int) -> float:
    """p99 (ms) of agent steps on 4 threads at once: `n` steps, or until `stop`."""
    times: list[float] = []

    async def worker() -> None:
        thread = f"ops-agent-{uuid.uuid4().hex}"
        step = 0
        while (stop is None and len(times) < n) or (stop is not None and not stop.is_set()):
            start = time.perf_counter()
            await agent_step(saver, thread, step)
            times.append((time.perf_counter() - start) * 1000)
            step += 1

    await asyncio.gather(*(worker() for _ in range(4)))
    return percentile(times, 0.99)


async def operations_workload(quick: bool) -> list[Metric]:
    """On databases of its own: the sweep must find only the threads loaded here."""
    async with sides("ops") as (ours, official):
        return await _measure(ours, official, QUICK if quick else FULL)


async def _measure(ours: Any, official: Any, s: OpsSizes) -> list[Metric]:
    merged = Population([], [], [])
    for t in range(s.threads):
        pop, _ = thread_rows(f"ops-{t:06}", s.per_thread, user_id=f"user-{t % 1000:03}")
        merged.checkpoints.extend(pop.checkpoints)
        merged.blobs.extend(pop.blobs)
        merged.writes.extend(pop.writes)
    for side in (ours, official):
        await load(side, [merged])
    del merged
    saver = ours.saver
    assert isinstance(saver, AsyncSQLAlchemySaver)
    label = f"{s.threads:,} threads x {s.per_thread}"
    first = Metric("operations", f"alist_threads first page ({label}), p50", "ms", False,
                   "<= 10 ms", check=_absolute(10))  # fmt: skip
    deep = Metric("operations", "alist_threads page after 50,000 threads, p50", "ms", False,
                  "<= 10 ms", check=_absolute(10))  # fmt: skip
    count = Metric("operations", "acount_threads(filter={user_id}), p50", "ms", False,
                   "<= 100 ms", check=_absolute(100))  # fmt: skip
    first.ours.values.append(await _p50_ms(lambda: saver.alist_threads(limit=50), s.calls))
    cursor = None
    for _ in range(min(50_000, s.threads // 2) // 50):
        cursor = (await saver.alist_threads(limit=50, cursor=cursor)).cursor
    deep.ours.values.append(
        await _p50_ms(lambda: saver.alist_threads(limit=50, cursor=cursor), s.calls)
    )
    count.ours.values.append(
        await _p50_ms(lambda: saver.acount_threads(filter={"user_id": "user-007"}), s.calls)
    )

    alone = await _agent_p99(saver, None, s.agent_calls)
    now = datetime.now(timezone.utc) + timedelta(minutes=1)
    stop = asyncio.Event()
    beside = asyncio.create_task(_agent_p99(saver, stop, 0))
    start = time.perf_counter()
    report = await saver.asweep(idle_for=timedelta(0), now=now, limit=s.sweep)
    swept_in = time.perf_counter() - start
    stop.set()
    during = await beside
    rate = Metric("operations", f"asweep delete {s.sweep:,} idle threads", "threads/s", True,
                  ">= 2,000/s; official: prune(delete)",
                  check=lambda m: m.ours.median >= 2000)  # fmt: skip
    rate.ours.values.append(report.threads / swept_in)
    swept = [f"ops-{t:06}" for t in range(s.sweep)]  # loaded oldest first
    start = time.perf_counter()
    await official.saver.aprune(swept, strategy="delete")
    rate.official.values.append(len(swept) / (time.perf_counter() - start))
    latency = Metric("operations", "agent step p99 during the sweep / without", "ratio", False,
                     "<= 2x", check=lambda m: m.ours.median <= 2)  # fmt: skip
    latency.ours.values.append(during / alone if alone else float("nan"))
    latency.note = f"p99 {alone:.1f} ms alone, {during:.1f} ms beside the sweep"
    rate.note = f"{report.threads:,} threads, {report.checkpoints:,} checkpoints removed"
    return [first, deep, count, rate, latency]
