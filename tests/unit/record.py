"""Record what every plan yields, is sent back and returns, on real databases, for the
unit tests to replay without one. Run by hand from the repository root:

    .venv/bin/python -m tests.unit.record                 # rewrite the recordings
    .venv/bin/python -m tests.unit.record --check-async   # compare the async executor's

It makes a PostgreSQL database of its own on the test server (see `tests/pg_server.py`,
dropped afterwards) and a SQLite file, runs the scenarios below through the real sync
saver (`SQLAlchemySaver`) with the `Planner`'s methods wrapped, so each plan's steps
pass through a recorder on their way to the executor, and rewrites
`tests/unit/recordings/<method>/<case>.<dialect>.json`. Ids, versions and timestamps are
fixed, so re-recording unchanged code changes nothing but the row order a database may
choose.

A recording holds the planner call (`method`, `args`), one entry per plan (`atomic`,
then `events`: each step's statement reference, params, fetch, last and the rows sent
back, or an emitted value; then what the plan returned or raised), and what the saver
call returned or raised (`result` / `raises`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Coroutine, Generator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from langgraph.checkpoint.serde.types import TASKS, _DeltaSnapshot
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.plans import Emit, Plan, Planner, Step
from checkpointer.statements import Statements

from ..conftest import _create_database, drop_database, pg_database_url
from .replay import METHODS, RECORDINGS
from .tagged import encode

T = TypeVar("T")

CALLED = ("keep_chain", "delta_history", "list_page", "thread_page", "thread_count", "sweep_batch")
"""Statements made by a call (per channel count or page shape): referenced by the call."""
SHAPED = ("list_page", "thread_page", "thread_count", "sweep_batch")
"""Calls with a shape and a filter, returning the statement and the filter's params."""


SAVER_METHODS = {"delta_history": "get_delta_channel_history"}
"""The saver method that runs a planner method, where their names differ."""


def cid(n: int) -> str:
    """Checkpoint id `n`: uuid6-shaped, ordered by `n` like real ones by time."""
    return f"1f0d3c00-{n:04x}-6000-8000-000000000000"


def version(n: int) -> str:
    return f"{n:032}.{0.25:016}"


def checkpoint(n: int, values: dict[str, Any], versions: dict[str, str], v: int = 4) -> Any:
    """A checkpoint document as LangGraph makes them (without `updated_channels`, which
    older versions did not have and nothing here reads)."""
    return {
        "v": v,
        "id": cid(n),
        "ts": f"2026-12-07T21:{n // 60:02d}:{n % 60:02d}+00:00",
        "channel_values": values,
        "channel_versions": versions,
        "versions_seen": {},
    }


def config(thread: str, n: int | None = None, ns: str = "") -> Any:
    out: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if n is not None:
        out["checkpoint_id"] = cid(n)
    return {"configurable": out}


class Recorder:
    """Wraps plans so their steps are recorded as the saver runs them."""

    def __init__(self, statements: Statements) -> None:
        self.statements = statements
        self.refs: dict[int, dict[str, Any]] = {}
        self.plans: list[dict[str, Any]] = []
        for name in dir(Statements):
            if isinstance(getattr(Statements, name, None), cached_property):
                value = getattr(statements, name)
                if isinstance(value, tuple):
                    for i, item in enumerate(value):
                        self.refs[id(item)] = {"attr": name, "index": i}
                elif value is not None:
                    self.refs[id(value)] = {"attr": name}

    @contextmanager
    def hooked(self) -> Iterator[None]:
        """Planner methods return recorded plans; called statements note their calls."""
        saved: dict[tuple[type, str], Any] = {}

        def plans(name: str, original: Any) -> Any:
            def method(planner: Planner, *args: Any, **kwargs: Any) -> Any:
                out = original(planner, *args, **kwargs)
                if name == "put":
                    return self.wrap(out[0]), out[1]
                if name == "prune":
                    return (self.wrap(p) for p in out)
                if name == "sweep":
                    return _RecordedSweep(out, self)
                return self.wrap(out)

            return method

        def called(name: str, original: Any) -> Any:
            def method(statements: Statements, *args: Any) -> Any:
                out = original(statements, *args)
                stmt = out[0] if name in SHAPED else out
                if name in SHAPED:
                    shape, filter = args
                    if dataclasses.is_dataclass(shape):
                        shape = dataclasses.asdict(shape)  # type: ignore[arg-type]
                    ref = {"call": name, "shape": shape, "filter": filter}
                else:
                    ref = {"call": name, "args": list(args)}
                self.refs[id(stmt)] = encode(ref)
                return out

            return method

        for name in METHODS:
            saved[(Planner, name)] = getattr(Planner, name)
            setattr(Planner, name, plans(name, saved[(Planner, name)]))
        for name in CALLED:
            saved[(Statements, name)] = getattr(Statements, name)
            setattr(Statements, name, called(name, saved[(Statements, name)]))
        try:
            yield
        finally:
            for (owner, name), original in saved.items():
                setattr(owner, name, original)

    def wrap(self, plan: Plan[Any]) -> Plan[Any]:
        entry: dict[str, Any] = {"atomic": plan.atomic, "events": []}
        self.plans.append(entry)
        return dataclasses.replace(plan, steps=self._steps(plan.steps, entry))

    def _steps(self, inner: Generator[Any, Any, Any], entry: dict[str, Any]) -> Any:
        events = entry["events"]
        try:
            item = next(inner)
            while True:
                if isinstance(item, Emit):
                    events.append({"emit": encode(item.value)})
                    item = inner.send((yield item))
                    continue
                assert isinstance(item, Step)
                event: dict[str, Any] = {"step": self.describe(item)}
                events.append(event)
                rows = yield item
                event["rows"] = None if rows is None else [encode(dict(r)) for r in rows]
                item = inner.send(rows)
        except StopIteration as done:
            entry["returns"] = encode(done.value)
            return done.value
        except Exception as error:
            entry["raises"] = {"type": type(error).__name__, "message": str(error)}
            raise

    def describe(self, step: Step) -> dict[str, Any]:
        ref = self.refs.get(id(step.statement))
        if ref is None:
            raise LookupError(f"a step's statement is no known Statements member: {step}")
        return {
            "statement": ref,
            "params": encode(step.params),
            "fetch": step.fetch,
            "last": step.last,
        }


class _RecordedSweep:
    """A `Sweep` whose plans are recorded, with its report."""

    def __init__(self, sweep: Any, recorder: Recorder) -> None:
        self.sweep, self.recorder = sweep, recorder

    def __iter__(self) -> Iterator[Plan[Any]]:
        return (self.recorder.wrap(p) for p in self.sweep)

    @property
    def report(self) -> Any:
        return self.sweep.report


class Session:
    """One dialect's recordings: each case runs one saver call with the recorder on."""

    def __init__(self, saver: Any, dialect: str, out: Path) -> None:
        self.saver: Any = saver  # called with the recorded (untyped) arguments
        self.dialect, self.out = dialect, out
        self.recorder = Recorder(saver.plans.statements)
        self.written: list[Path] = []

    def case(self, method: str, name: str, args: dict[str, Any], call: Callable[[], Any]) -> None:
        self.recorder.plans = []
        out: dict[str, Any] = {"dialect": self.dialect, "method": method, "args": encode(args)}
        with self.recorder.hooked():
            try:
                result = call()
                if method != "list_checkpoints":  # its result is what the plan emitted
                    out["result"] = encode(result)
                else:
                    list(result)
            except Exception as error:
                out["raises"] = {"type": type(error).__name__, "message": str(error)}
        out["plans"] = self.recorder.plans
        path = self.out / method / f"{name}.{self.dialect}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(out))
        self.written.append(path)

    # -- saver calls, one per planner method ------------------------------------------

    def put(
        self,
        name: str,
        cfg: dict[str, Any],
        cp: Any,
        metadata: dict[str, Any],
        new_versions: dict[str, str],
    ) -> None:
        args: dict[str, Any] = {"config": cfg, "checkpoint": cp, "metadata": metadata}
        args["new_versions"] = new_versions
        self.case("put", name, args, lambda: self.saver.put(**args))

    def put_writes(
        self,
        name: str,
        cfg: dict[str, Any],
        writes: list[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        args: dict[str, Any] = {"config": cfg, "writes": writes, "task_id": task_id}
        args["task_path"] = task_path
        self.case("put_writes", name, args, lambda: self.saver.put_writes(**args))

    def get_tuple(self, name: str, cfg: dict[str, Any]) -> None:
        self.case("get_tuple", name, {"config": cfg}, lambda: self.saver.get_tuple(cfg))

    def list(self, name: str, cfg: dict[str, Any] | None, **kwargs: Any) -> None:
        args = {"config": cfg, **kwargs}
        self.case("list_checkpoints", name, args, lambda: self.saver.list(cfg, **kwargs))

    def run(self, method: str, name: str, **args: Any) -> None:
        call = getattr(self.saver, SAVER_METHODS.get(method, method))
        self.case(method, name, args, lambda: call(**args))


def scenarios(s: Session) -> None:
    """Every planner method, each on the rows the cases before it left behind."""
    v = version
    # put: blobs (a dict, bytes), an inline value, a version without a value (an
    # "empty" blob); then inline values only; then a DeltaChannel snapshot marker
    s.put(
        "with_blobs",
        config("main"),
        checkpoint(
            1,
            {"count": 1, "doc": {"a": [1, 2]}, "raw": b"\x00\x01"},
            {"count": v(1), "doc": v(1), "raw": v(1), "idle": v(1)},
        ),
        {"source": "input", "step": -1},
        {"count": v(1), "doc": v(1), "raw": v(1), "idle": v(1)},
    )
    s.put(
        "inline_only",
        config("main", 1),
        checkpoint(2, {"count": 2}, {"count": v(2), "doc": v(1), "raw": v(1), "idle": v(1)}),
        {"source": "loop", "step": 0},
        {"count": v(2)},
    )
    s.put(
        "delta_snapshot",
        config("main", 2),
        checkpoint(
            3,
            {"count": 3, "log": _DeltaSnapshot(["a", "b"])},
            {"count": v(3), "doc": v(1), "raw": v(1), "idle": v(1), "log": v(3)},
        ),
        {"source": "loop", "step": 1, "counters_since_delta_snapshot": {"log": 0}},
        {"count": v(3), "log": v(3)},
    )
    # put_writes: ordinary writes; special channels (fixed negative idx, the last of two
    # writes to one special channel stands); nothing to write
    s.put_writes(
        "ordinary",
        config("main", 2),
        [("doc", {"x": 1}), ("count", 5)],
        "task-a",
        "~__pregel_pull, a",
    )
    s.put_writes(
        "special",
        config("main", 3),
        [("__error__", "boom"), ("__interrupt__", ["why"]), ("__error__", "again")],
        "task-b",
    )
    s.put_writes("empty", config("main", 3), [], "task-c")
    # get_tuple
    s.get_tuple("latest", config("main"))
    s.get_tuple("by_id", config("main", 2))
    s.get_tuple("missing", config("main", 99))
    # a format-1 checkpoint whose parent holds pending sends
    s.put(
        "old_format_parent",
        config("old"),
        checkpoint(10, {}, {"count": v(1)}, v=1),
        {"source": "input", "step": -1},
        {"count": v(1)},
    )
    s.put_writes(
        "old_format_sends", config("old", 10), [(TASKS, "send-1"), (TASKS, "send-2")], "task-s"
    )
    s.put(
        "old_format_child",
        config("old", 10),
        checkpoint(11, {"count": 2}, {"count": v(2)}, v=1),
        {"source": "loop", "step": 0},
        {"count": v(2)},
    )
    s.get_tuple("old_format_sends", config("old", 11))
    # list: 65 small checkpoints, so pages of LIST_CHUNK (64) are crossed
    for i in range(65):
        cp = checkpoint(100 + i, {}, {})
        tag = {"tag": "rare"} if i in (3, 64) else {}
        s.saver.put(config("many", 100 + i - 1 if i else None), cp, {"step": i, **tag}, {})
    s.list("thread_across_pages", config("many"))
    s.list("before_limit", config("main"), before=config("main", 3), limit=1)
    s.list("filter_all_threads", None, filter={"tag": "rare"})
    s.list("checkpoint_id", config("main", 2))
    s.list("limit_zero", config("main"), limit=0)
    # delta history: a snapshot seed (blob), an inline seed (value), writes on the way
    s.saver.put(
        config("delta"),
        checkpoint(200, {"log": _DeltaSnapshot(["s0"]), "n": 7}, {"log": v(1), "n": v(1)}),
        {"step": -1, "counters_since_delta_snapshot": {"log": 0}},
        {"log": v(1), "n": v(1)},
    )
    s.saver.put_writes(config("delta", 200), [("log", "w1"), ("n", 8)], "task-d1")
    s.saver.put(
        config("delta", 200),
        checkpoint(201, {"n": 8}, {"log": v(2), "n": v(2)}),
        {"step": 0, "counters_since_delta_snapshot": {"log": 1}},
        {"log": v(2), "n": v(2)},
    )
    s.saver.put_writes(config("delta", 201), [("log", "w2"), ("log", "w3")], "task-d2", "~b")
    s.saver.put(
        config("delta", 201),
        checkpoint(202, {"n": 8}, {"log": v(3), "n": v(2)}),
        {"step": 1, "counters_since_delta_snapshot": {"log": 2}},
        {"log": v(3)},
    )
    s.run(
        "delta_history",
        "seeds_and_writes",
        config=config("delta", 202),
        channels=["log", "n", "absent"],
    )
    s.run("delta_history", "no_channels", config=config("delta"), channels=[])
    # copy_thread: to an empty thread, then to one that has rows
    s.run("copy_thread", "empty_target", source_thread_id="delta", target_thread_id="copy")
    s.run("copy_thread", "target_not_empty", source_thread_id="main", target_thread_id="copy")
    # delete_for_runs: one run's checkpoints go, another run's stay; an unknown run
    s.saver.put(
        config("runs"),
        checkpoint(300, {"doc": [1]}, {"doc": v(1)}),
        {"run_id": "run-a"},
        {"doc": v(1)},
    )
    s.saver.put_writes(config("runs", 300), [("doc", [2])], "task-r")
    s.saver.put(
        config("runs", 300),
        checkpoint(301, {"doc": [3]}, {"doc": v(2)}),
        {"run_id": "run-b"},
        {"doc": v(2)},
    )
    s.run("delete_for_runs", "one_run", run_ids=["run-a", "run-unknown"])
    s.run("delete_for_runs", "unknown_run", run_ids=["run-unknown"])
    # prune keep_latest: a delta chain kept back to its snapshot, a format-1 head's
    # parent kept for its sends, a namespace with one checkpoint left alone
    s.saver.put(config("delta", 202, "child"), checkpoint(203, {}, {}), {"step": 0}, {})
    s.saver.put(
        config("delta", 202),
        checkpoint(204, {"n": 9}, {"log": v(4), "n": v(3)}),
        {"step": 2, "counters_since_delta_snapshot": {"log": 3}},
        {"log": v(4), "n": v(3)},
    )
    s.run("prune", "keep_latest", thread_ids=["delta", "old", "nobody"], strategy="keep_latest")
    s.run("prune", "delete", thread_ids=["copy", "runs", "copy"], strategy="delete")
    # prune keep_last: the two newest of a delta chain, each with its chain
    s.run("prune", "keep_last_2", thread_ids=["delta", "old"], strategy="keep_latest", keep_last=2)
    # threads: a page, the next one by cursor, filtered, bounded by time; counts
    s.run("list_threads", "first_page", limit=2)
    s.run("list_threads", "filtered", filter={"run_id": "run-b"})
    s.run("list_threads", "next_page", limit=2, cursor=_cursor(cid(301), "runs"))
    s.run(
        "list_threads",
        "bounded",
        updated_before=datetime(2030, 1, 1, tzinfo=timezone.utc),
        updated_after=datetime(2020, 1, 1, tzinfo=timezone.utc),
    )
    s.run("count_threads", "all")
    s.run("count_threads", "filtered", filter={"source": "loop"})
    # stats (byte figures and dead rows are the database's and change on re-recording)
    s.run("stats", "top_2", top=2)
    s.run("stats", "no_top", top=0)
    # sweep: everything is idle at a fixed clock; a dry run, keep_latest, delete
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    idle = timedelta(days=1)
    s.run("sweep", "dry_run", idle_for=idle, now=now, dry_run=True, keep={"run_id": "run-b"})
    s.run("sweep", "keep_latest", idle_for=idle, now=now, strategy="keep_latest", limit=2)
    s.run("sweep", "delete", idle_for=idle, now=now, keep={"run_id": "run-b"})
    s.run("sweep", "nothing_idle", idle_for=timedelta(days=36500), now=now)
    # delete_thread
    s.run("delete_thread", "main", thread_id="main")


def _cursor(checkpoint_id: str, thread_id: str) -> str:
    from checkpointer.reports import encode_cursor

    return encode_cursor(checkpoint_id, thread_id)


def _dump(out: dict[str, Any]) -> str:
    """JSON with one line per event, so a re-recording's diff shows which ones changed."""

    def compact(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    lines = ["{"]
    for key in ("dialect", "method", "args", "result", "raises"):
        if key in out:
            lines.append(f" {compact(key)}: {compact(out[key])},")
    lines.append(' "plans": [')
    for n, plan in enumerate(out["plans"]):
        head = {k: v for k, v in plan.items() if k != "events"}
        lines.append(f'  {compact(head)[:-1]}, "events": [')
        lines += [f"   {compact(e)}," for e in plan["events"]]
        if plan["events"]:
            lines[-1] = lines[-1][:-1]
        lines.append("  ]}" + ("," if n < len(out["plans"]) - 1 else ""))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _record(url: str, dialect: str, out: Path) -> list[Path]:
    engine = create_engine(url)
    try:
        saver = SQLAlchemySaver(engine)
        saver.setup()
        session = Session(saver, dialect, out)
        scenarios(session)
        return session.written
    finally:
        engine.dispose()


def _record_async(url: str, dialect: str, out: Path) -> list[Path]:
    """The same scenarios through `AsyncSQLAlchemySaver` (asyncpg, aiosqlite), its
    loop in a thread of its own, called through the saver's sync bridges."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def start() -> tuple[AsyncEngine, AsyncSQLAlchemySaver]:
        engine = create_async_engine(url)
        saver = AsyncSQLAlchemySaver(engine)
        await saver.setup()
        return engine, saver

    engine, saver = on_loop(start())
    try:
        session = Session(saver, dialect, out)
        scenarios(session)
        return session.written
    finally:
        on_loop(engine.dispose())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def _run(out: Path, run_async: bool) -> list[Path]:
    record = _record_async if run_async else _record
    name = f"cp_unit_record_{uuid.uuid4().hex[:8]}"
    _create_database(name)
    try:
        written = record(
            pg_database_url(name, "asyncpg" if run_async else "psycopg"), "postgresql", out
        )
    finally:
        drop_database(name)
    with tempfile.TemporaryDirectory() as tmp:
        driver = "sqlite+aiosqlite" if run_async else "sqlite"
        written += record(f"{driver}:///{tmp}/record.db", "sqlite", out)
    return written


def _same(a: Any, b: Any) -> bool:
    """Equal recordings, rows compared as a multiset (a union's row order is the
    database's choice)."""

    def canonical(rec: Any) -> Any:
        for plan in rec["plans"]:
            for event in plan["events"]:
                if event.get("rows"):
                    event["rows"] = sorted(json.dumps(r, sort_keys=True) for r in event["rows"])
        return rec

    return bool(canonical(a) == canonical(b))


def main(argv: list[str]) -> int:
    """Rewrite the recordings; with `--check-async`, record through the async saver
    into a temporary directory instead and report where it differs from them."""
    if argv == ["--check-async"]:
        with tempfile.TemporaryDirectory() as tmp:
            written = _run(Path(tmp), run_async=True)
            differ = []
            for path in written:
                committed = RECORDINGS / path.relative_to(tmp)
                if not committed.exists() or not _same(
                    json.loads(path.read_text()), json.loads(committed.read_text())
                ):
                    differ.append(path.relative_to(tmp))
            print(f"{len(written)} recorded through AsyncSQLAlchemySaver, {len(differ)} differ")
            for name in differ:
                print(f"  differs: {name}")
            return 1 if differ else 0
    if argv:
        print(__doc__)
        return 2
    if RECORDINGS.exists():
        shutil.rmtree(RECORDINGS)
    for path in _run(RECORDINGS, run_async=False):
        print(f"{path.stat().st_size:7,d}  {path.relative_to(RECORDINGS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
