"""Drive plans without a database: send each plan the rows a real run sent it (see
`record.py`) and compare what it yields, returns or raises with that run's."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from sqlalchemy.sql.base import Executable

from checkpointer.plans import Emit, Plan, Planner, Rows, Step
from checkpointer.statements import PageShape, Statements, ThreadShape, for_dialect

from .tagged import decode, encode

RECORDINGS = Path(__file__).parent / "recordings"

METHODS = (
    "put",
    "put_writes",
    "delete_thread",
    "get_tuple",
    "list_checkpoints",
    "delete_for_runs",
    "copy_thread",
    "prune",
    "delta_history",
    "list_threads",
    "count_threads",
    "sweep",
    "stats",
)
"""Every `Planner` method that makes plans."""

DIALECTS = ("postgresql", "sqlite")


@dataclass
class Trace:
    """What one plan did when driven: what it yielded, then returned or raised."""

    yielded: list[Step | Emit] = field(default_factory=list)
    returned: Any = None
    raised: BaseException | None = None

    @property
    def steps(self) -> list[Step]:
        return [item for item in self.yielded if isinstance(item, Step)]

    @property
    def emitted(self) -> list[Any]:
        return [item.value for item in self.yielded if isinstance(item, Emit)]


def drive(plan: Plan[Any], rows: Iterable[Rows | None]) -> Trace:
    """Run `plan`, sending the next of `rows` after each step (None after an emit), as
    an executor would; stops early if the rows run out (the plan yielded more steps
    than were recorded: the trace then ends on that step)."""
    trace = Trace()
    feed = iter(rows)
    sent: Rows | None = None
    while True:
        try:
            item = plan.steps.send(sent)
        except StopIteration as done:
            trace.returned = done.value
            return trace
        except Exception as error:  # the plan's own error, e.g. ThreadNotEmptyError
            trace.raised = error
            return trace
        trace.yielded.append(item)
        if isinstance(item, Emit):
            sent = None
            continue
        try:
            sent = next(feed)
        except StopIteration:
            return trace


def params(step: Step) -> dict[str, Any]:
    """A step's params when they are one mapping (not an executemany list)."""
    assert isinstance(step.params, Mapping), f"{step} has no single params mapping"
    return dict(step.params)


def planner(dialect: str) -> Planner:
    """A planner like the saver's: the dialect's statements, LangGraph's default serde."""
    return Planner(for_dialect(dialect), JsonPlusSerializer())


def recordings(method: str) -> list[dict[str, Any]]:
    """Every recording of one planner method, both dialects."""
    paths = sorted((RECORDINGS / method).glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no recordings for {method}: run python -m tests.unit.record")
    return [{**json.loads(p.read_text()), "id": p.stem} for p in paths]


def recording(method: str, case: str, dialect: str) -> dict[str, Any]:
    path = RECORDINGS / method / f"{case}.{dialect}.json"
    return {**json.loads(path.read_text()), "id": path.stem}


def make_plans(p: Planner, rec: dict[str, Any]) -> tuple[Iterable[Plan[Any]], Any]:
    """Call the recorded planner method on `p`: its plans, and for `put` the config it
    returns alongside. `prune` and `sweep` make their plans as they are run: iterate
    them while driving each (a sweep's next batch depends on the last one's rows)."""
    out = getattr(p, rec["method"])(**decode(rec["args"]))
    if rec["method"] == "put":
        return [out[0]], out[1]
    if rec["method"] in ("prune", "sweep"):
        return out, None
    return [out], None


def recorded_rows(entry: dict[str, Any]) -> Iterator[Rows | None]:
    """The rows a recorded plan was sent after each of its steps."""
    for event in entry["events"]:
        if "step" in event:
            yield decode(event["rows"])


def resolve(statements: Statements, ref: dict[str, Any]) -> Executable:
    """The statement a recorded reference names, from this process's `Statements`."""
    if "attr" in ref:
        value = getattr(statements, ref["attr"])
        return value[ref["index"]] if "index" in ref else value  # type: ignore[no-any-return]
    if ref["call"] == "list_page":
        shape = PageShape(**ref["shape"])
        return statements.list_page(shape, decode(ref["filter"]))[0]
    if ref["call"] in ("thread_page", "thread_count"):
        bounds = ThreadShape(**ref["shape"])
        return getattr(statements, ref["call"])(bounds, decode(ref["filter"]))[0]  # type: ignore[no-any-return]
    if ref["call"] == "sweep_batch":
        return statements.sweep_batch(ref["shape"], decode(ref["filter"]))[0]
    return getattr(statements, ref["call"])(*ref["args"])  # type: ignore[no-any-return]


def replay(rec: dict[str, Any]) -> list[Trace]:
    """Drive the plans of a recording on its rows and assert each yielded what the real
    run's did (same statement object, params, fetch and last; same emitted values) and
    returned or raised the same. Returns the traces for further checks."""
    p = planner(rec["dialect"])
    plans, _ = make_plans(p, rec)
    traces: list[Trace] = []
    made = iter(plans)
    for n, entry in enumerate(rec["plans"]):
        plan = next(made, None)
        assert plan is not None, f"{rec['id']}: plan count {n}, recorded {len(rec['plans'])}"
        where = f"{rec['id']} plan {n}"
        assert plan.atomic == entry["atomic"], f"{where}: atomic"
        trace = drive(plan, recorded_rows(entry))
        events = entry["events"]
        assert len(trace.yielded) == len(events), (
            f"{where}: yielded {len(trace.yielded)} items, recorded {len(events)}"
        )
        for i, (item, event) in enumerate(zip(trace.yielded, events, strict=True)):
            if "emit" in event:
                assert isinstance(item, Emit), f"{where} item {i}: {item} is not an emit"
                assert encode(item.value) == event["emit"], f"{where} item {i}: emitted value"
                continue
            assert isinstance(item, Step), f"{where} item {i}: {item} is not a step"
            expected = event["step"]
            statement = resolve(p.statements, expected["statement"])
            assert item.statement is statement, f"{where} step {i}: not {expected['statement']}"
            assert encode(item.params) == expected["params"], f"{where} step {i}: params"
            assert (item.fetch, item.last) == (expected["fetch"], expected["last"]), (
                f"{where} step {i}: fetch/last"
            )
        if "raises" in entry:
            assert trace.raised is not None, f"{where}: should raise {entry['raises']}"
            assert type(trace.raised).__name__ == entry["raises"]["type"]
        else:
            assert trace.raised is None, f"{where}: raised {trace.raised!r}"
            assert encode(trace.returned) == entry["returns"], f"{where}: returned value"
        traces.append(trace)
    assert next(made, None) is None, f"{rec['id']}: more plans than recorded"
    return traces


def ids(recs: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in recs]
