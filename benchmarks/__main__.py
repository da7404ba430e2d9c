"""`python -m benchmarks [--quick]`: our async saver against the official
`AsyncPostgresSaver`, side by side on the same PostgreSQL, in one run."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from . import report, workloads
from .harness import Metric, sides


async def main(quick: bool, only: set[str] | None) -> int:
    rounds = 2 if quick else 5
    started = time.perf_counter()
    metrics: list[Metric] = []
    extra: dict[str, object] = {}

    def wanted(name: str) -> bool:
        return only is None or name in only

    async with sides("main") as (ours, official):
        extra["statements"] = await workloads.statement_counts(ours)
        report.print_counts(extra["statements"])  # type: ignore[arg-type]
        if wanted("agent"):
            metrics += await workloads.agent_workload(ours, official, quick, rounds)
            report.print_metrics(metrics[-2:])
        if wanted("deep"):
            metrics += await workloads.deep_workload(ours, official, quick, rounds)
            report.print_metrics(metrics[-6:])
        if wanted("search"):
            metrics += await workloads.search_workload(ours, official, quick, rounds, extra)
            report.print_metrics(metrics[-3:])
            print(extra["filter plan (ours)"], flush=True)
        if wanted("graph"):
            metrics += await workloads.graph_workload(ours, official, quick, rounds)
            report.print_metrics(metrics[-1:])
        if wanted("delta"):
            metrics += await workloads.delta_workload(ours, official, quick, rounds)
            report.print_metrics(metrics[-1:])
    if wanted("storage"):
        metrics += await workloads.storage_workload(quick)
        report.print_metrics(metrics[-(3 if quick else 4) :])
    elapsed = time.perf_counter() - started
    await report.write(metrics, extra, quick=quick, elapsed=elapsed)
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, two rounds")
    parser.add_argument(
        "--only", action="append", help="run only these workloads (repeatable)", default=None
    )
    args = parser.parse_args()
    return asyncio.run(main(args.quick, set(args.only) if args.only else None))


if __name__ == "__main__":
    sys.exit(cli())
