"""`python -m benchmarks --rtt`: the agent step and the real graph with 1 ms of
round-trip time between the savers and PostgreSQL (issue 17, item 3).

Both savers (and the harness's own admin connections) reach the server through
`benchmarks.proxy`, a process of its own that delays each read by 0.5 ms each way.
Round trips per step are the client-to-server reads the proxy counted during each
side's timed run, divided by its steps (turns for the graph): the same measure for
both savers, taken on the path being timed (our statement events would switch our
fast path off)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from .harness import Metric, Side, alternate, server_dsn, sides
from .proxy import Proxy
from .workloads import at_least, run_agent_steps, run_graph, sizes

DELAY = 0.0005
"""Seconds each way: 1 ms of round-trip time."""


def trips_metric(name: str) -> Metric:
    return Metric("1 ms RTT", f"round trips per {name} (proxy reads)", "trips", False)


async def rtt_workload(quick: bool, rounds: int) -> list[Metric]:
    size = sizes(quick)
    direct = make_url(server_dsn())
    proxy = Proxy(f"{direct.host}:{direct.port or 5432}", DELAY)
    saved = os.environ.get("CHECKPOINTER_TEST_PG")
    os.environ["CHECKPOINTER_TEST_PG"] = direct.set(port=proxy.port).render_as_string(
        hide_password=False
    )
    try:
        async with sides("rtt") as (ours, official):
            return await _measure(ours, official, proxy, size, rounds)
    finally:
        if saved is None:
            os.environ.pop("CHECKPOINTER_TEST_PG", None)
        else:
            os.environ["CHECKPOINTER_TEST_PG"] = saved
        proxy.close()


async def _measure(
    ours: Side, official: Side, proxy: Proxy, size: Any, rounds: int
) -> list[Metric]:
    c1_threads, c1_steps = size.c1
    c16_threads, c16_steps = size.c16
    g_threads, g_turns, g_conc = size.graph
    c1 = Metric("1 ms RTT", f"agent step steps/s, concurrency 1 ({c1_threads} x {c1_steps})",
                "steps/s", True, ">= 1.1x", check=at_least(1.1))  # fmt: skip
    c16 = Metric("1 ms RTT", f"agent step steps/s, concurrency 16 ({c16_threads} x {c16_steps})",
                 "steps/s", True, ">= 8.0x", check=at_least(8.0))  # fmt: skip
    graph = Metric("1 ms RTT", f"real graph turns/s ({g_threads} x {g_turns}, concurrency "
                   f"{g_conc})", "turns/s", True, ">= 1.0x", check=at_least(1.0))  # fmt: skip
    trips = {
        "c1": trips_metric("agent step, concurrency 1"),
        "c16": trips_metric("agent step, concurrency 16"),
        "graph": trips_metric("graph turn"),
    }
    for side in (ours, official):
        await run_agent_steps(side.saver, 16, 2, 16)  # every pooled connection made

    def counted(key: str, work: int, run: Callable[[Side], Any]) -> Any:
        async def measure(side: Side, _: int) -> dict[str, float]:
            before = proxy.counts()["up"]
            rate = await run(side)
            return {key: rate, f"{key} trips": (proxy.counts()["up"] - before) / work}

        return measure

    await alternate(
        rounds,
        ours,
        official,
        counted(
            "c1", c1_threads * c1_steps, lambda s: run_agent_steps(s.saver, c1_threads, c1_steps, 1)
        ),
        {"c1": c1, "c1 trips": trips["c1"]},
    )
    await alternate(
        rounds,
        ours,
        official,
        counted(
            "c16",
            c16_threads * c16_steps,
            lambda s: run_agent_steps(s.saver, c16_threads, c16_steps, 16),
        ),
        {"c16": c16, "c16 trips": trips["c16"]},
    )
    await alternate(
        min(rounds, 3),
        ours,
        official,
        counted(
            "graph", g_threads * g_turns, lambda s: run_graph(s.saver, g_threads, g_turns, g_conc)
        ),
        {"graph": graph, "graph trips": trips["graph"]},
    )
    return [c1, c16, graph, *trips.values()]
