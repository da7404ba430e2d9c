"""`Planner.list_threads` and `count_threads`: one statement each; summaries built from
its rows (times from the UUIDv6 ids), and a cursor only on a full page."""

from __future__ import annotations

from typing import Any

import pytest

from checkpointer.ids import id_time
from checkpointer.reports import decode_cursor
from checkpointer.rows import AFTER_ID, AFTER_THREAD, LIMIT

from ..replay import DIALECTS, ids, params, planner, recording, recordings, replay

THREADS = recordings("list_threads") + recordings("count_threads")


@pytest.mark.parametrize("rec", THREADS, ids=ids(THREADS))
def test_thread_plans_yield_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """One statement (fetch, last), the summaries and counts as recorded.
    Mutation: `created_at=id_time(r[FIRST])` -> `id_time(r[HEAD])` in
    `Planner._thread_page` -> fails."""
    (trace,) = replay(rec)
    assert len(trace.steps) == 1
    assert trace.steps[0].last


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_full_page_has_a_cursor_to_the_next(dialect: str) -> None:
    """A page as long as `limit` carries a cursor naming its last thread; the next
    page's statement binds it as the keyset; a shorter page has none.
    Mutation: `last = threads[-1]` -> `threads[0]` in `Planner._thread_page` -> fails."""
    (first,) = replay(recording("list_threads", "first_page", dialect))
    page = first.returned
    assert len(page.threads) == 2
    last = page.threads[-1]
    assert decode_cursor(page.cursor) == (last.checkpoint_id, last.thread_id)
    assert last.updated_at == id_time(last.checkpoint_id)
    (following,) = replay(recording("list_threads", "next_page", dialect))
    bound = params(following.steps[0])
    cursor = recording("list_threads", "next_page", dialect)["args"]["cursor"]
    assert (bound[AFTER_ID], bound[AFTER_THREAD], bound[LIMIT]) == (*decode_cursor(cursor), 2)
    (filtered,) = replay(recording("list_threads", "filtered", dialect))
    assert filtered.returned.cursor is None


def test_bad_arguments_fail_before_any_statement() -> None:
    """A non-positive limit, a bad cursor, a filter that is not a mapping or a bound
    that is not a datetime raise when the plan is made.
    Mutation: drop the `limit <= 0` check in `Planner.list_threads` -> fails."""
    p = planner("postgresql")
    with pytest.raises(ValueError, match="limit must be a positive"):
        p.list_threads(limit=0)
    with pytest.raises(ValueError, match="not a thread list cursor"):
        p.list_threads(cursor="%%%")
    with pytest.raises(TypeError, match="filter must be a mapping"):
        p.count_threads(filter=["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="updated_before must be a datetime"):
        p.count_threads(updated_before="2026-01-01")  # type: ignore[arg-type]
