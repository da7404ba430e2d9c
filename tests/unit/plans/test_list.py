"""`Planner.list_checkpoints`: pages of `LIST_CHUNK` checkpoints, newest first, by
keyset, each page's tuples emitted before the next page is read."""

from __future__ import annotations

from typing import Any

import pytest

from checkpointer.rows import KEY_ID, KEY_NS, KEY_THREAD, LIMIT
from checkpointer.statements import LIST_CHUNK, PageShape

from ..replay import (
    DIALECTS,
    drive,
    ids,
    params,
    planner,
    recorded_rows,
    recording,
    recordings,
    replay,
)
from ..tagged import decode, encode

LISTS = recordings("list_checkpoints")


@pytest.mark.parametrize("rec", LISTS, ids=ids(LISTS))
def test_list_yields_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """Same pages (statement per shape, params) and the same tuples emitted, in order.
    Mutation: `if len(tuples) < size: return` -> `<=` in `Planner._list` -> fails
    (thread_across_pages stops after its first page)."""
    replay(rec)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_next_page_starts_after_the_last_emitted(dialect: str) -> None:
    """A full page is followed by a page keyed on its last (oldest) checkpoint.
    Mutation: `last = tuples[-1].config[...]` -> `tuples[0]` in `Planner._list` -> fails."""
    (trace,) = replay(recording("list_checkpoints", "thread_across_pages", dialect))
    first, second = trace.steps
    emitted = trace.emitted
    assert len(emitted) == LIST_CHUNK + 1
    oldest = emitted[LIST_CHUNK - 1].config["configurable"]
    second_params: Any = second.params
    assert second_params[KEY_ID] == oldest["checkpoint_id"]
    assert (second_params[KEY_THREAD], second_params[KEY_NS]) == ("many", "")
    assert KEY_ID not in (first.params or {})


@pytest.mark.parametrize("dialect", DIALECTS)
def test_limit_across_pages_bounds_the_last_page(dialect: str) -> None:
    """With `limit=65`, the recorded rows of the unlimited run drive two pages: a full
    one (constant LIMIT), then one bound to the 1 checkpoint still wanted, after which
    the plan stops at 65 tuples.
    Mutation: drop `remaining -= len(tuples)` in `Planner._list` -> fails (second
    page asks for 65)."""
    rec = recording("list_checkpoints", "thread_across_pages", dialect)
    p = planner(dialect)
    plan = p.list_checkpoints(decode(rec["args"])["config"], limit=65)
    trace = drive(plan, recorded_rows(rec["plans"][0]))
    first, second = trace.steps
    shape = {"thread": True, "namespace": True}
    expected_first, _ = p.statements.list_page(PageShape(**shape, chunk=True), None)
    expected_second, _ = p.statements.list_page(
        PageShape(**shape, limit=True, after_key=True), None
    )
    assert first.statement is expected_first
    assert second.statement is expected_second
    assert params(second)[LIMIT] == 1
    recorded_emits = [e["emit"] for e in rec["plans"][0]["events"] if "emit" in e]
    assert [encode(t) for t in trace.emitted] == recorded_emits[:65]
    assert trace.raised is None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_limit_zero_reads_nothing(dialect: str) -> None:
    """`limit=0` asks for nothing: no statement.
    Mutation: `if limit <= 0: return Plan(_none())` -> `if limit < 0` -> fails."""
    (trace,) = replay(recording("list_checkpoints", "limit_zero", dialect))
    assert trace.yielded == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_filter_is_bound_not_built_into_the_statement(dialect: str) -> None:
    """A metadata filter selects the filtered statement of its shape and passes the
    filter's values as params.
    Mutation: `filter_params` dropped from `page_params` in `Planner._list` -> fails."""
    (trace,) = replay(recording("list_checkpoints", "filter_all_threads", dialect))
    (step,) = trace.steps
    assert "rare" in _flat(step.params)
    assert [t.metadata["tag"] for t in trace.emitted] == ["rare", "rare"]


def _flat(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    return [value]
