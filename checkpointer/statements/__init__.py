"""Core constructs for every operation, built once per dialect and executed with bound
parameters, so SQLAlchemy's compiled cache is hit on every call.

Identifiers come from `schema`; values are always bound. One module per family:
`writes` (put, put_writes, delete_thread), `reads` (get_tuple and list pages),
`operations` (delete_for_runs, copy_thread, prune), `walk` (the parent-chain walk) and
`history` (delta history over the walk) and `threads` (thread list and count, sweeps,
keep-last-N pruning, statistics). `Statements` gathers them for one dialect.
The labels of the rows they return and the keys they bind are named in `rows`.
"""

from __future__ import annotations

from functools import cache

from ..dialects import for_name
from .encoded import Encoded, EncodedGarbage
from .history import History
from .operations import Operations
from .reads import LIST_CHUNK, PageShape, Reads
from .threads import SWEEP_BATCH, Threads, ThreadShape
from .writes import Writes


class Statements(Writes, Reads, Operations, History, Threads, Encoded):
    """The statements of one dialect: every family's, under one name (`put_checkpoint`,
    `get_latest`, `prune_trim`, `delta_history(n)`, ...). Each is built on first use
    and kept."""


class EncodedStatements(EncodedGarbage, Statements):
    """`Statements` for a saver with `blob_encoding="incremental"`: blob garbage
    collection that keeps the bases of kept deltas (`encoded`)."""


@cache
def for_dialect(name: str, encoded: bool = False, citus: bool = False) -> Statements:
    return (EncodedStatements if encoded else Statements)(for_name(name, citus))


__all__ = [
    "LIST_CHUNK",
    "SWEEP_BATCH",
    "PageShape",
    "Statements",
    "ThreadShape",
    "for_dialect",
]
