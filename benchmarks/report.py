"""Tables on stdout and in `benchmarks/results*.md` / `.json`."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg

from .harness import Metric, server_dsn

HERE = Path(__file__).resolve().parent


def fmt(x: float) -> str:
    if x != x:  # nan
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def verdict(m: Metric) -> str:
    met = m.met()
    if met is None:
        return ""
    return "met" if met else "**missed**"


def table(metrics: Sequence[Metric]) -> str:
    lines = [
        "| workload | metric | ours median (min-max) | official median (min-max) "
        "| ours/official | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in metrics:
        better = "higher" if m.higher_is_better else "lower"
        lines.append(
            f"| {m.workload} | {m.name} ({better} is better) "
            f"| {fmt(m.ours.median)} ({fmt(m.ours.low)}-{fmt(m.ours.high)}) "
            f"| {fmt(m.official.median)} ({fmt(m.official.low)}-{fmt(m.official.high)}) "
            f"| {m.ratio:.2f}x | {m.target} | {verdict(m)}{(' ' + m.note) if m.note else ''} |"
        )
    return "\n".join(lines)


def print_metrics(metrics: Sequence[Metric]) -> None:
    print(table(metrics), flush=True)


def print_counts(counts: Mapping[str, int]) -> None:
    print("statements per call (ours, SQLAlchemy before_cursor_execute):", flush=True)
    for name, n in counts.items():
        print(f"  {name}: {n}", flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def machine() -> dict[str, Any]:
    conn = await asyncpg.connect(server_dsn())
    try:
        pg = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "postgresql": pg,
        "python": platform.python_version(),
        "loadavg_at_end": [round(x, 2) for x in load],
    }


async def write(
    metrics: Sequence[Metric], extra: Mapping[str, Any], *, quick: bool, elapsed: float
) -> None:
    info = await machine()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    suffix = "-quick" if quick else ""
    lines = [
        f"# Benchmark results{' (quick mode)' if quick else ''}",
        "",
        f"Measured {stamp}: {info['nproc']} cores ({info['cpu']}), PostgreSQL "
        f"{info['postgresql']} on loopback, Python {info['python']}; load average at the "
        f"end {info['loadavg_at_end']}. Whole run {elapsed:.0f} s.",
        "",
        table(metrics),
        "",
    ]
    for key, value in extra.items():
        lines.append(f"## {key}")
        lines.append("")
        if isinstance(value, Mapping):
            lines += [f"- {k}: {v}" for k, v in value.items()]
        else:
            lines += ["```", str(value).rstrip(), "```"]
        lines.append("")
    (HERE / f"results{suffix}.md").write_text("\n".join(lines))
    data = {
        "measured": stamp,
        "machine": info,
        "elapsed_s": elapsed,
        "metrics": [
            {
                "workload": m.workload,
                "metric": m.name,
                "unit": m.unit,
                "higher_is_better": m.higher_is_better,
                "ours": m.ours.values,
                "official": m.official.values,
                "ratio": m.ratio,
                "target": m.target,
                "met": m.met(),
            }
            for m in metrics
        ],
        "extra": {
            k: v if isinstance(v, (dict, list, int, float)) else str(v) for k, v in extra.items()
        },
    }
    (HERE / f"results{suffix}.json").write_text(json.dumps(data, indent=2, default=str))
    print(f"\nwritten: benchmarks/results{suffix}.md and .json ({elapsed:.0f} s)", flush=True)
