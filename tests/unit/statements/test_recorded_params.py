"""The params plans passed in real runs (the recordings) against the statements they
were passed to, compiled for the dialect: every key bound, every required key passed,
no value rendered into the SQL. `test_compile.py` checks the statements on their own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from checkpointer.statements import for_dialect

from ..replay import METHODS, recordings, resolve

ENGINES: dict[str, Dialect] = {
    "postgresql": postgresql.dialect(),  # type: ignore[no-untyped-call]
    "sqlite": sqlite.dialect(),
}


def _compiled(dialect: str, statement: Executable) -> SQLCompiler:
    return statement.compile(dialect=ENGINES[dialect])  # type: ignore[attr-defined,no-any-return]


SHARED_PARAMS = {"prune_trim"}
"""Statement tuples a plan runs with one params dict: a key need only be bound by one
of them (`prune_trim`: the detaching UPDATE has no use for `head` and `keep`, the
DELETEs none for `keep_all`; none of these keys names a column, so the UPDATE's SET
clause is untouched)."""


def _recorded_steps() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for method in METHODS:
        for rec in recordings(method):
            for n, plan in enumerate(rec["plans"]):
                for i, event in enumerate(e for e in plan["events"] if "step" in e):
                    step = event["step"]
                    params = step["params"]
                    if isinstance(params, list):
                        params = params[0]  # executemany: every row has the same keys
                    yield f"{rec['id']}-{n}-{i}", rec["dialect"], step["statement"], params or {}


STEPS = list(_recorded_steps())


@pytest.mark.parametrize(("case", "dialect", "ref", "params"), STEPS, ids=[s[0] for s in STEPS])
def test_recorded_params_fill_exactly_the_bound_keys(
    case: str, dialect: str, ref: dict[str, Any], params: dict[str, Any]
) -> None:
    """Every param a plan passes names a bound parameter of its statement, and every
    bound parameter without a value of its own is passed.
    Mutation: `bindparam(THREAD_ID)` -> `bindparam("thread")` in `Reads.page`
    -> fails (every get_tuple and list case with a thread)."""
    st = for_dialect(dialect)
    binds = _compiled(dialect, resolve(st, ref)).binds
    bound = set(binds)
    if ref.get("attr") in SHARED_PARAMS:
        for sibling in getattr(st, ref["attr"]):
            bound |= set(_compiled(dialect, sibling).binds)
    assert set(params) <= bound, f"not bound: {set(params) - bound}"
    required = {key for key, bind in binds.items() if bind.required}
    assert required <= set(params), f"never passed: {required - set(params)}"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@pytest.mark.parametrize(("case", "dialect", "ref", "params"), STEPS, ids=[s[0] for s in STEPS])
def test_no_input_value_is_rendered_into_the_sql(
    case: str, dialect: str, ref: dict[str, Any], params: dict[str, Any]
) -> None:
    """With the recorded params expanded as the driver will receive them (expanding
    `IN` lists and literal-execute parameters rendered), no input string appears as a
    SQL literal: values travel as parameters.
    Mutation: `bindparam(THREAD_ID)` -> `bindparam(THREAD_ID, literal_execute=True)`
    in `Writes.delete_thread` -> fails (delete_thread cases)."""
    compiled = _compiled(dialect, resolve(for_dialect(dialect), ref))
    expanded = compiled.construct_expanded_state(dict(params))
    values = {s for v in params.values() for s in _strings(v) if len(s) > 1}
    leaked = sorted(v for v in values if f"'{v}'" in expanded.statement)
    assert not leaked, f"rendered as literals: {leaked}"
