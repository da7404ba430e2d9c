"""`Planner.prune`: keep each namespace's latest checkpoint and what reading it needs,
or delete whole threads in batches."""

from __future__ import annotations

from typing import Any

import pytest

from checkpointer.rows import CHECKPOINT_ID, KEEP, PRUNE_NS, THREAD_IDS, channel_key

from ..replay import DIALECTS, ids, params, recording, recordings, replay

PRUNES = recordings("prune")


@pytest.mark.parametrize("rec", PRUNES, ids=ids(PRUNES))
def test_prune_yields_what_the_real_run_did(rec: dict[str, Any]) -> None:
    """One plan per thread (keep_latest) or batch (delete), each step as recorded.
    Mutation: drop `if r[PARENT_SENDS]: keep.append(...)` in `Planner._keep_newest`
    -> fails (the format-1 head's parent, holding its sends, is not kept)."""
    replay(rec)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_keep_latest_keeps_the_delta_chain(dialect: str) -> None:
    """The head of a thread with a DeltaChannel keeps its ancestors back to the
    snapshot (what `keep_chain` found), and a namespace with one checkpoint is left
    alone.
    Mutation: `if newest[0][COUNT] <= keep_last:` -> `< keep_last` -> fails (trims
    "child")."""
    delta, _, _ = replay(recording("prune", "keep_latest", dialect))
    trims = [params(s) for s in delta.steps if s.params and KEEP in s.params]
    assert {t[PRUNE_NS] for t in trims} == {""}
    chain = [
        r[CHECKPOINT_ID]
        for s, rows in zip(
            delta.steps, _rows(recording("prune", "keep_latest", dialect)), strict=True
        )
        if channel_key(0) in (s.params or {})
        for r in rows
    ]
    assert chain
    assert all(c in trims[0][KEEP] for c in chain)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_delete_strategy_deduplicates_threads(dialect: str) -> None:
    """A thread named twice is deleted once.
    Mutation: `list(dict.fromkeys(_names(...)))` -> `_names(...)` in `Planner.prune` ->
    fails."""
    (trace,) = replay(recording("prune", "delete", dialect))
    assert {tuple(params(s)[THREAD_IDS]) for s in trace.steps} == {("copy", "runs")}


def _rows(rec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [e["rows"] or [] for e in rec["plans"][0]["events"] if "step" in e]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_keep_last_keeps_each_kept_checkpoints_chain(dialect: str) -> None:
    """With `keep_last=2` the two newest checkpoints of the delta thread are kept, and
    each one's chain is asked for (not only the newest's).
    Mutation: `if channels:` -> `if channels and r[RANK] == 1:` in
    `Planner._keep_newest` -> fails (one chain asked for)."""
    delta, _ = replay(recording("prune", "keep_last_2", dialect))
    chains = [s for s in delta.steps if channel_key(0) in (s.params or {})]
    assert len(chains) == 2
    trims = [params(s) for s in delta.steps if s.params and KEEP in s.params]
    assert {t[PRUNE_NS] for t in trims} == {""}
    asked = {params(s)[CHECKPOINT_ID] for s in chains}
    assert asked <= set(trims[0][KEEP])
