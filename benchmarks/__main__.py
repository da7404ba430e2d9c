"""`python -m benchmarks [--quick]`: our async saver against the official
`AsyncPostgresSaver`, side by side on the same PostgreSQL, in one run."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from . import incremental, operations, report, syncpg, workloads
from .harness import Metric, settle, sides


async def main(
    quick: bool, only: set[str] | None, backend: str = "postgresql", rtt: bool = False
) -> int:
    rounds = workloads.sizes(quick).rounds
    print(report.header(quick), end="\n\n", flush=True)
    started = time.perf_counter()
    if rtt:
        from . import network

        found = await network.rtt_workload(quick, rounds)
        report.print_metrics(found)
        elapsed = time.perf_counter() - started
        await report.write(found, {}, quick=quick, elapsed=elapsed, stem="results-rtt")
        return 0
    if backend == "sqlite":
        from . import sqlite

        found = await sqlite.run(quick, only, report.print_metrics)
        if only is None or "incremental" in only:
            new = await incremental.incremental_workload("sqlite", quick, rounds)
            report.print_metrics(new)
            found += new
        elapsed = time.perf_counter() - started
        await report.write(found, {}, quick=quick, elapsed=elapsed, stem="results-sqlite")
        return 0
    if backend == "mysql":
        from . import mysql

        found = await mysql.run(quick, only, report.print_metrics)
        peer: dict[str, object] = {"peer": "langgraph-checkpoint-mysql (columns 'official')"}
        if only is None or "conformance" in only:
            peer["conformance"] = await mysql.conformance()
            print(f"conformance: {peer['conformance']}", flush=True)
        elapsed = time.perf_counter() - started
        await report.write(found, peer, quick=quick, elapsed=elapsed, stem="results-mysql")
        return 0
    metrics: list[Metric] = []
    extra: dict[str, object] = {}

    def wanted(name: str) -> bool:
        return only is None or name in only

    def timed(name: str, began: float) -> None:
        print(f"[{name}: {time.perf_counter() - began:.1f} s]\n", flush=True)

    async with sides("main") as (ours, official):
        extra["statements per call (ours)"] = await workloads.statement_counts(ours)
        report.print_counts(extra["statements per call (ours)"])  # type: ignore[arg-type]
        runs: list[tuple[str, Any]] = [
            ("agent", lambda: workloads.agent_workload(ours, official, quick, rounds)),
            ("deep", lambda: workloads.deep_workload(ours, official, quick, rounds)),
            ("search", lambda: workloads.search_workload(ours, official, quick, rounds, extra)),
            ("graph", lambda: workloads.graph_workload(ours, official, quick, rounds)),
            ("delta", lambda: workloads.delta_workload(ours, official, quick, rounds)),
        ]
        for name, run in runs:
            if wanted(name):
                await settle(ours, official)
                began = time.perf_counter()
                new = await run()
                metrics += new
                report.print_metrics(new)
                timed(name, began)
    if wanted("storage"):
        began = time.perf_counter()
        new = await workloads.storage_workload(quick, extra)
        metrics += new
        report.print_metrics(new)
        timed("storage", began)
    if wanted("sync"):
        began = time.perf_counter()
        # databases of its own, the async savers' pools at 2: the sync savers' two pools
        # of 16 beside the main ones' would take 64 of the server's connections
        async with sides("sync", pool_size=2) as (ours, official):
            new = await syncpg.sync_workload(ours, official, quick, rounds)
        metrics += new
        report.print_metrics(new)
        timed("sync", began)
    if wanted("processes") or wanted("million"):
        from . import scale

        began = time.perf_counter()
        new = await scale.scale_workloads(quick, rounds, only)
        metrics += new
        report.print_metrics(new)
        timed("scale", began)
    if wanted("incremental"):
        began = time.perf_counter()
        new = await incremental.incremental_workload("postgresql", quick, rounds)
        metrics += new
        report.print_metrics(new)
        timed("incremental", began)
    if wanted("operations"):
        began = time.perf_counter()
        new = await operations.operations_workload(quick)
        metrics += new
        report.print_metrics(new)
        timed("operations", began)
    elapsed = time.perf_counter() - started
    await report.write(metrics, extra, quick=quick, elapsed=elapsed)
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, two rounds")
    parser.add_argument(
        "--only", action="append", help="run only these workloads (repeatable)", default=None
    )
    parser.add_argument(
        "--backend",
        choices=("postgresql", "sqlite", "mysql"),
        default="postgresql",
        help="postgresql: the async savers on PostgreSQL (default); sqlite: ours against "
        "the official SQLite savers, async and sync, and two processes on one file "
        "(--only: agent, deep, search, graph, delta, storage, sync, processes, incremental); "
        "mysql: ours against langgraph-checkpoint-mysql on MariaDB/MySQL (--only: agent, "
        "deep, graph, storage, conformance)",
    )
    parser.add_argument(
        "--rtt",
        action="store_true",
        help="the agent step and the real graph through a proxy adding 1 ms of round-trip "
        "time (benchmarks.proxy), both async savers",
    )
    parser.add_argument(
        "--citus",
        metavar="URL",
        default=None,
        help="instead: our saver on the Citus coordinator at URL next to plain PostgreSQL "
        "(agent step, real graph, task counts, the fan-out filter search)",
    )
    args = parser.parse_args()
    only = set(args.only) if args.only else None
    if args.citus:
        from . import citus

        return asyncio.run(citus.run(args.citus, args.quick))
    return asyncio.run(main(args.quick, only, args.backend, args.rtt))


if __name__ == "__main__":
    sys.exit(cli())
