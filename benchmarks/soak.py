"""`make soak`: the agent-step workload (`aget_tuple` -> `aput` -> `aput_writes` per step,
as `benchmarks.workloads.agent_step`) at concurrency 16 for 20 minutes on a PostgreSQL
server of its own, with every backend killed every 30 s (`pg_terminate_backend`) and the
server restarted every 5 minutes. Reports failed calls (target 0), lost checkpoints
(every acknowledged `aput` must be readable at the end: target 0), and RSS and server
connections sampled every 10 s (target: flat within 10 %, first quarter against last).

    python -m benchmarks.soak [--minutes 20] [--driver asyncpg|psycopg] [--json PATH]

Exits 1 when a target is missed. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from statistics import mean
from typing import IO, Any

import psycopg
from langgraph.checkpoint.base import CheckpointTuple
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver
from checkpointer.schema import checkpoints
from tests.private_pg import PrivatePostgres  # the fault tests' server, run from the repo root

from .workloads import agent_step, config

DATABASE = "soak"
STEPS_PER_THREAD = 50
"""A worker starts a new thread after this many steps (checkpoints stay ~30 kB)."""
SLOW = 5.0
"""A call over this many seconds is reported as slow (target: none)."""


@dataclass
class Tally:
    """Calls, failures and acknowledged checkpoints, as the workers saw them."""

    calls: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    slow: Counter[str] = field(default_factory=Counter)
    max_seconds: float = 0.0
    steps: int = 0
    acked: IO[str] = field(default_factory=lambda: tempfile.TemporaryFile("w+"))  # noqa: SIM115
    """`thread_id<TAB>checkpoint_id` of every `aput` that returned, one a line: kept on
    disk, so the process's RSS measures the saver and not this record (in memory, 800,000
    acknowledgments of a 20-minute run grew it by about 70 MB)."""
    latest: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Per thread, (checkpoint id, step) of its last acknowledged `aput`."""


class Counting:
    """The saver, with each call counted and timed, and every returned `aput` noted."""

    def __init__(self, saver: AsyncSQLAlchemySaver, tally: Tally) -> None:
        self.saver = saver
        self.tally = tally

    def get_next_version(self, current: Any, channel: Any) -> Any:
        return self.saver.get_next_version(current, channel)

    async def _call(self, name: str, coro: Any) -> Any:
        t = self.tally
        t.calls[name] += 1
        start = time.monotonic()
        try:
            return await coro
        except Exception as exc:
            t.failed[name] += 1
            t.errors[f"{name}: {type(exc).__module__}.{type(exc).__name__}"] += 1
            raise
        finally:
            seconds = time.monotonic() - start
            t.max_seconds = max(t.max_seconds, seconds)
            if seconds > SLOW:
                t.slow[name] += 1

    async def aget_tuple(self, cfg: Any) -> CheckpointTuple | None:
        return await self._call("aget_tuple", self.saver.aget_tuple(cfg))  # type: ignore[no-any-return]

    async def aput(self, cfg: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        stored = await self._call("aput", self.saver.aput(cfg, checkpoint, metadata, versions))
        thread = stored["configurable"]["thread_id"]
        step = checkpoint["channel_values"]["counter"]
        checkpoint_id = stored["configurable"]["checkpoint_id"]
        self.tally.acked.write(f"{thread}\t{checkpoint_id}\n")
        self.tally.latest[thread] = (checkpoint_id, step)
        return stored

    async def aput_writes(self, cfg: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        await self._call("aput_writes", self.saver.aput_writes(cfg, writes, task_id, task_path))


async def _worker(saver: Counting, tally: Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        thread = f"soak-{uuid.uuid4().hex}"
        step = 0
        while step < STEPS_PER_THREAD and not stop.is_set():
            try:
                await agent_step(saver, thread, step)  # type: ignore[arg-type]
            except Exception:
                await asyncio.sleep(0.05)  # counted by `Counting`; the next step reads again
                continue
            tally.steps += 1
            step += 1


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        match = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(match.group(1)) / 1024 if match else float("nan")


def _admin(server: PrivatePostgres, sql: str) -> Any:
    """One query about the soak database on a fresh admin connection (None while the
    server is down)."""
    try:
        with psycopg.connect(server.dsn(), connect_timeout=3, autocommit=True) as conn:
            return conn.execute(sql, (DATABASE,)).fetchone()
    except psycopg.Error:
        return None


def _create_database(server: PrivatePostgres) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}"')  # our constant, not input


KILL = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s"
CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"


async def _faults(
    server: PrivatePostgres, args: argparse.Namespace, stop: asyncio.Event, log: list[str]
) -> None:
    start = time.monotonic()
    tick = 0
    while True:
        tick += 1
        at = start + tick * args.kill_every
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, at - time.monotonic()))
            return
        except asyncio.TimeoutError:
            pass
        elapsed = time.monotonic() - start
        if args.restart_every and tick * args.kill_every % args.restart_every == 0:
            await asyncio.to_thread(server.restart, args.down_for)
            log.append(f"{elapsed:7.1f}s restart ({args.down_for:.0f}s down)")
        else:
            row = await asyncio.to_thread(_admin, server, KILL)
            log.append(f"{elapsed:7.1f}s killed {row[0] if row else '?'} backends")


async def _sampler(
    server: PrivatePostgres,
    engine: AsyncEngine,
    tally: Tally,
    every: float,
    stop: asyncio.Event,
    samples: list[dict[str, Any]],
) -> None:
    start = time.monotonic()
    last_steps = 0
    while True:
        try:
            await asyncio.wait_for(stop.wait(), every)
            return
        except asyncio.TimeoutError:
            pass
        row = await asyncio.to_thread(_admin, server, CONNECTIONS)
        samples.append(
            {
                "t": round(time.monotonic() - start),
                "rss_mb": round(_rss_mb(), 1),
                "server_connections": row[0] if row else None,
                "pool_checked_out": engine.pool.checkedout(),  # type: ignore[attr-defined]
                "steps_per_s": round((tally.steps - last_steps) / every, 1),
            }
        )
        last_steps = tally.steps
        s = samples[-1]
        print(
            f"  {s['t']:5d}s  rss {s['rss_mb']:7.1f} MB  connections {s['server_connections']}"
            f"  checked out {s['pool_checked_out']}  {s['steps_per_s']} steps/s"
            f"  failed {sum(tally.failed.values())}",
            flush=True,
        )


async def _lost(saver: AsyncSQLAlchemySaver, engine: AsyncEngine, tally: Tally) -> dict[str, int]:
    """Acknowledged checkpoints missing from the table, and latest ones that read back
    wrong (each thread's last acknowledged checkpoint, read by id)."""
    tally.acked.seek(0)
    acked = {tuple(line.rstrip("\n").split("\t", 1)) for line in tally.acked}
    stored: set[tuple[str, str]] = set()
    async with engine.connect() as conn:
        result = await conn.stream(select(checkpoints.c.thread_id, checkpoints.c.checkpoint_id))
        async for thread_id, checkpoint_id in result:
            stored.add((thread_id, checkpoint_id))
    wrong = 0
    for thread, (checkpoint_id, step) in tally.latest.items():
        got = await saver.aget_tuple(config(thread, checkpoint_id))
        if got is None or got.checkpoint["channel_values"].get("counter") != step:
            wrong += 1
    return {"acknowledged": len(acked), "missing": len(acked - stored), "wrong_latest": wrong}


def _quarter_ratio(values: list[float]) -> float | None:
    """Mean of the last quarter over the mean of the first (None if too few samples)."""
    n = len(values) // 4
    if n == 0:
        return None
    first, last = mean(values[:n]), mean(values[-n:])
    return round(last / first, 3) if first else None


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    retries = Counter[str]()

    class _Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            retries[record.levelname] += 1

    logging.getLogger("checkpointer").addHandler(_Count(logging.WARNING))
    loop_errors = Counter[str]()
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, ctx: loop_errors.update([str(ctx.get("message"))[:80]])
    )

    server = await asyncio.to_thread(PrivatePostgres)
    try:
        await asyncio.to_thread(_create_database, server)
        url = server.dsn(DATABASE).replace("postgresql://", f"postgresql+{args.driver}://")
        engine = create_async_engine(url, pool_size=args.concurrency, max_overflow=4)
        saver = AsyncSQLAlchemySaver(engine)
        await saver.setup()
        tally, stop = Tally(), asyncio.Event()
        samples: list[dict[str, Any]] = []
        faults: list[str] = []
        counting = Counting(saver, tally)
        print(
            f"soak: {args.minutes} min, concurrency {args.concurrency}, {args.driver}, "
            f"backends killed every {args.kill_every}s, restart every {args.restart_every}s "
            f"(server on port {server.port})",
            flush=True,
        )
        started = time.monotonic()
        tasks = [
            asyncio.create_task(_worker(counting, tally, stop)) for _ in range(args.concurrency)
        ]
        helpers = [
            asyncio.create_task(_faults(server, args, stop, faults)),
            asyncio.create_task(_sampler(server, engine, tally, args.sample_every, stop, samples)),
        ]
        await asyncio.sleep(args.minutes * 60)
        stop.set()
        await asyncio.gather(*helpers)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)  # each finishes its step
        duration = time.monotonic() - started
        lost = await _lost(saver, engine, tally)
        checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
        await engine.dispose()
    finally:
        await asyncio.to_thread(server.close)
    rss = [s["rss_mb"] for s in samples]
    conns = [float(s["server_connections"]) for s in samples if s["server_connections"] is not None]
    report = {
        "minutes": args.minutes,
        "driver": args.driver,
        "concurrency": args.concurrency,
        "duration_s": round(duration),
        "steps": tally.steps,
        "calls": dict(tally.calls),
        "failed_calls": sum(tally.failed.values()),
        "failed_by_call": dict(tally.failed),
        "errors": dict(tally.errors.most_common()),
        "calls_over_5s": sum(tally.slow.values()),
        "max_call_s": round(tally.max_seconds, 2),
        "lost": lost,
        "pool_checked_out_at_end": checked_out,
        "checkpointer_log_records": dict(retries),
        "loop_exception_handler_calls": dict(loop_errors),
        "rss_last_over_first_quarter": _quarter_ratio(rss),
        "connections_last_over_first_quarter": _quarter_ratio(conns),
        "faults": faults,
        "samples": samples,
    }
    flat = [report["rss_last_over_first_quarter"], report["connections_last_over_first_quarter"]]
    report["targets_met"] = (
        report["failed_calls"] == 0
        and lost["missing"] == 0
        and lost["wrong_latest"] == 0
        and report["calls_over_5s"] == 0
        and all(r is not None and 0.9 <= r <= 1.1 for r in flat)
    )
    return report


def _print(report: dict[str, Any]) -> None:
    keys = [k for k in report if k not in ("samples", "faults")]
    print("\nsoak report")
    for k in keys:
        print(f"  {k}: {report[k]}")
    print("  faults:")
    for line in report["faults"]:
        print(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--driver", choices=["asyncpg", "psycopg"], default="asyncpg")
    parser.add_argument("--kill-every", type=int, default=30, help="seconds")
    parser.add_argument("--restart-every", type=int, default=300, help="seconds (0: never)")
    parser.add_argument("--down-for", type=float, default=3.0, help="seconds per restart")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args))
    _print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if report["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
