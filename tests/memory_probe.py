"""Peak extra memory of one `put`/`aput` of a large `bytes` channel value, measured in a
process of its own (run by `tests/runtime/test_memory.py`, or by hand):

    python -m tests.memory_probe KIND URL [MB] [put|put_writes]

KIND is `asyncpg`, `psycopg`, `psycopg-async`, `sqlite`, `aiosqlite` (our savers) or
`official-pg` (langgraph-checkpoint-postgres, for comparison). Prints one JSON line:
the value's size, the resident set before the call (value built, a small warm-up call
done, so imports and the connection are paid) and the peak during it, in bytes.

The peak is the kernel's high-water mark (`VmHWM`), reset just before the call by
writing "5" to /proc/self/clear_refs (Linux >= 4.0), so it counts every buffer the
call allocates, the driver's included, whichever allocator made it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import sys
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

MB = 2**20


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    assert match, field
    return int(match.group(1)) * 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _checkpoint(value: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"big": value}
    checkpoint["channel_versions"] = {"big": "1"}
    config = {"configurable": {"thread_id": "memory", "checkpoint_ns": ""}}
    return config, checkpoint, {"big": "1"}


def _value(size: int) -> bytes:
    # Incompressible, and every page touched so it is resident before we measure.
    return os.urandom(size)


def _before() -> int:
    gc.collect()
    _reset_peak()
    return _status("VmRSS")


CALL = "put"
"""`put` (a checkpoint whose channel holds the value) or `put_writes` (a task's write
of the value to a checkpoint)."""


def _sync(kind: str, url: str, size: int) -> dict[str, int]:
    from sqlalchemy import create_engine

    from checkpointer import SQLAlchemySaver

    engine = create_engine(url)
    saver = SQLAlchemySaver(engine)
    stored = saver.put(*_checkpoint(b"warm-up"), {"big": "1"})
    saver.put_writes(stored, [("big", b"warm-up")], "task")
    big = _value(size)
    config, checkpoint, versions = _checkpoint(big)
    before = _before()
    if CALL == "put_writes":
        saver.put_writes(stored, [("big", big)], "task")
    else:
        saver.put(config, checkpoint, {}, versions)
    peak = _status("VmHWM")
    engine.dispose()
    return {"size": size, "before": before, "peak": peak}


async def _async(kind: str, url: str, size: int) -> dict[str, int]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from checkpointer import AsyncSQLAlchemySaver

    engine = create_async_engine(url)
    saver = AsyncSQLAlchemySaver(engine)
    stored = await saver.aput(*_checkpoint(b"warm-up"), {"big": "1"})
    await saver.aput_writes(stored, [("big", b"warm-up")], "task")
    big = _value(size)
    config, checkpoint, versions = _checkpoint(big)
    before = _before()
    if CALL == "put_writes":
        await saver.aput_writes(stored, [("big", big)], "task")
    else:
        await saver.aput(config, checkpoint, {}, versions)
    peak = _status("VmHWM")
    await engine.dispose()
    return {"size": size, "before": before, "peak": peak}


async def _official(url: str, size: int) -> dict[str, int]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        await saver.setup()
        await saver.aput(*_checkpoint(b"warm-up"), {"big": "1"})
        big = _value(size)
        config, checkpoint, versions = _checkpoint(big)
        before = _before()
        await saver.aput(config, checkpoint, {}, versions)
        peak = _status("VmHWM")
    return {"size": size, "before": before, "peak": peak}


def measure(kind: str, url: str, size: int) -> dict[str, int]:
    if kind in ("psycopg", "sqlite"):
        return _sync(kind, url, size)
    if kind in ("asyncpg", "psycopg-async", "aiosqlite"):
        return asyncio.run(_async(kind, url, size))
    if kind == "official-pg":
        return asyncio.run(_official(url, size))
    raise SystemExit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    kind, url = sys.argv[1], sys.argv[2]
    size = int(sys.argv[3]) * MB if len(sys.argv) > 3 else 200 * MB
    CALL = sys.argv[4] if len(sys.argv) > 4 else "put"
    print(json.dumps(measure(kind, url, size)))
