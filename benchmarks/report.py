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
from .workloads import describe, sizes

HERE = Path(__file__).resolve().parent


def fmt(x: float) -> str:
    if x != x:  # nan
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


UNITS = {"us": "µs", "steps/s": "steps/s", "turns/s": "turns/s", "bytes": "bytes"}


def verdict(m: Metric) -> str:
    met = m.met()
    if met is None:
        return ""
    return "met" if met else "**missed**"


def unit_label(m: Metric) -> str:
    return UNITS.get(m.unit, m.unit)


def table(metrics: Sequence[Metric]) -> str:
    """Markdown tables, a new one (and header) whenever the unit changes, so every
    figure column names its unit. Cells: the median of the rounds (min-max)."""
    lines: list[str] = []
    unit: str | None = None
    for m in metrics:
        if m.unit != unit:
            unit = m.unit
            label = unit_label(m)
            if lines:
                lines.append("")
            lines += [
                f"| workload | metric | ours ({label}), median (min-max) "
                f"| official ({label}), median (min-max) | ours/official | better "
                "| target | result |",
                "|---|---|---|---|---|---|---|---|",
            ]
        result = " ".join(x for x in (verdict(m), m.note) if x)
        lines.append(
            f"| {m.workload} | {m.name} "
            f"| {fmt(m.ours.median)} ({fmt(m.ours.low)}-{fmt(m.ours.high)}) "
            f"| {fmt(m.official.median)} ({fmt(m.official.low)}-{fmt(m.official.high)}) "
            f"| {m.ratio:.2f}x | {'higher' if m.higher_is_better else 'lower'} "
            f"| {m.target} | {result} |"
        )
    return "\n".join(lines)


def print_metrics(metrics: Sequence[Metric]) -> None:
    print(table(metrics), flush=True)


def header(quick: bool) -> str:
    """What this run does: the mode and every workload's size."""
    mode = "quick mode (`make bench-quick`)" if quick else "full mode (`make bench`)"
    lines = [f"Sizes, {mode}:", describe(sizes(quick))]
    if quick:
        lines.append(
            "\nQuick mode is a smoke run: smaller sizes and fewer rounds, so ratios are"
            " noisier; a target sized for the full run says so. `make bench` decides."
        )
    return "\n".join(lines)


def summary(metrics: Sequence[Metric]) -> str:
    judged = [m.met() for m in metrics if m.met() is not None]
    missed = [f"{m.workload}: {m.name}" for m in metrics if m.met() is False]
    line = f"targets: {judged.count(True)} met, {len(missed)} missed"
    return line + "".join(f"\n- missed: {name}" for name in missed)


def print_plans(extra: Mapping[str, Any]) -> None:
    """The query plans (and other long texts), after every table."""
    for key, value in extra.items():
        if isinstance(value, str):
            print(f"\n{key}:\n{value.rstrip()}", flush=True)


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
    metrics: Sequence[Metric],
    extra: Mapping[str, Any],
    *,
    quick: bool,
    elapsed: float,
    stem: str = "results",
) -> None:
    """`benchmarks/{stem}[-quick].md` and `.json` (`results-sqlite` for SQLite)."""
    info = await machine()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    suffix = (
        ("-quick" if quick else "")
        if stem == "results"
        else f"{stem[7:]}" + ("-quick" if quick else "")
    )
    lines = [
        f"# Benchmark results{' (quick mode)' if quick else ''}",
        "",
        f"Measured {stamp}: {info['nproc']} cores ({info['cpu']}), PostgreSQL "
        f"{info['postgresql']} on loopback, Python {info['python']}; load average at the "
        f"end {info['loadavg_at_end']}. Whole run {elapsed:.0f} s.",
        "",
        header(quick),
        "",
        table(metrics),
        "",
        summary(metrics),
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
    print_plans(extra)
    print(f"\n{summary(metrics)}", flush=True)
    print(f"\nwritten: benchmarks/results{suffix}.md and .json ({elapsed:.0f} s)", flush=True)
