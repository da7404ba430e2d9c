"""The row contract between `statements` and `plans`: the labels of the rows statements
return, the kinds of tagged rows, the keys plans bind, each spelled once here, so a
misspelling fails `mypy --strict` instead of a database test.

Plain `Final` strings at module level: reading `row[THREAD_ID]` costs about 1 ns more
than `row["thread_id"]` (a global lookup; measured on CPython 3.11, where a class
attribute such as `Col.THREAD_ID` cost 10 ns more per read).

Rows, by statement (a tagged row leaves NULL what its kind lacks):
- reads (`get_latest`, `get_by_id`, `list_page`): `KIND`, then `THREAD_ID`,
  `CHECKPOINT_NS`, `CHECKPOINT_ID`, `PARENT_CHECKPOINT_ID`, `CHECKPOINT`, `METADATA`,
  `CHANNEL`, `VERSION`, `TYPE`, `BLOB`, `TASK_ID`, `TASK_PATH`, `IDX`; of kind
  `KIND_CHECKPOINT`, `KIND_BLOB`, `KIND_WRITE` or `KIND_SEND`.
- `delta_history(n)`: `KIND`, `CHECKPOINT_ID`, `CHANNEL`, `TASK_ID`, `TASK_PATH`, `IDX`,
  `TYPE`, `BLOB`, `VALUE`; of kind `KIND_WRITE`, `KIND_BLOB` or `KIND_VALUE`.
- `prune_newest`: `CHECKPOINT_NS`, `CHECKPOINT_ID`, `RANK`, `COUNT`,
  `PARENT_CHECKPOINT_ID`, `METADATA`, `PARENT_SENDS`, `VERSIONS`.
- `thread_page`: `THREAD_ID`, `HEAD`, `METADATA`, `FIRST`, `CHECKPOINTS`; `thread_count`:
  `COUNT`; `sweep_batch`: `THREAD_ID`, `HEAD`, `METADATA` (and `LOCKED` where the dialect has
  thread locks); `batch_sizes`: `CHECKPOINTS`, `BLOBS`, `WRITES`, `BYTES`; `sweep_delete`:
  `THREADS`, `CHECKPOINTS`, `BLOBS`, `WRITES`, `BYTES`; `table_rows`: `TABLE`, `ROWS`;
  `table_sizes`: `TABLE`, `BYTES`, `DEAD_ROWS`; `activity`: `THREADS`, `CHECKPOINTS`,
  `OLDEST`, `NEWEST`; `largest_threads`: `THREAD_ID`, `BYTES`.
- `keep_chain(n)`: `CHECKPOINT_ID`; `run_threads`: `THREAD_ID`.
"""

from __future__ import annotations

from typing import Final

# -- kinds of tagged rows (the `KIND` column) ------------------------------------------

KIND_CHECKPOINT: Final = "c"
"""A checkpoint row."""
KIND_BLOB: Final = "b"
"""A channel value stored as a blob (a read's, or a delta channel's seed)."""
KIND_WRITE: Final = "w"
"""A pending write (a read's), or a write on a delta channel's chain."""
KIND_SEND: Final = "s"
"""A pending send of the parent of a checkpoint older than format 4 (a TASKS write)."""
KIND_VALUE: Final = "v"
"""A delta channel's seed held inline: the checkpoint's `channel_values` object."""

# -- labels ---------------------------------------------------------------------------

KIND: Final = "kind"
THREAD_ID: Final = "thread_id"
CHECKPOINT_NS: Final = "checkpoint_ns"
CHECKPOINT_ID: Final = "checkpoint_id"
PARENT_CHECKPOINT_ID: Final = "parent_checkpoint_id"
CHECKPOINT: Final = "checkpoint"
METADATA: Final = "metadata"
CHANNEL: Final = "channel"
VERSION: Final = "version"
TYPE: Final = "type"
BLOB: Final = "blob"
TASK_ID: Final = "task_id"
TASK_PATH: Final = "task_path"
IDX: Final = "idx"
VALUE: Final = "value"
"""A checkpoint's `channel_values` object (`KIND_VALUE` rows)."""
HEAD: Final = "head"
"""A namespace's or thread's latest checkpoint id; also the key bounding a trim."""
COUNT: Final = "n"
"""How many checkpoints a namespace has (`prune_newest`), or threads match."""
PARENT_SENDS: Final = "parent_sends"
"""Whether a head older than format 4 reads pending sends from its parent's writes."""
VERSIONS: Final = "versions"
"""A head's `channel_versions` object."""
DEPTH: Final = "depth"
"""Steps from the walk's target (0) to a walked ancestor."""

# -- numbered columns of the chain walk, one per asked channel `i` ------------------------


def walk_version(i: int) -> str:
    """The walked checkpoint's version of channel `i`."""
    return f"ver_{i}"


def walk_has_blob(i: int) -> str:
    """A non-empty blob of that version exists."""
    return f"hb_{i}"


def walk_has_inline(i: int) -> str:
    """The checkpoint holds channel `i` inline."""
    return f"in_{i}"


def walk_stored_nearer(i: int) -> str:
    """A checkpoint nearer the target stores channel `i`: this one is off its chain."""
    return f"acc_{i}"


def walk_top(i: int) -> str:
    """The target's version of channel `i`."""
    return f"top_{i}"


def walk_near(i: int) -> str:
    """The highest version at or below `walk_top` with a non-empty blob."""
    return f"near_{i}"


# -- keys plans bind ----------------------------------------------------------------------


def channel_key(i: int) -> str:
    """The key binding the name of the `i`-th asked channel (chain walk)."""
    return f"ch_{i}"


B_THREAD_ID: Final = "b_thread_id"
B_CHECKPOINT_NS: Final = "b_checkpoint_ns"
B_CHANNEL: Final = "b_channel"
B_VERSION: Final = "b_version"
B_TYPE: Final = "b_type"
B_BLOB: Final = "b_blob"
"""A checkpoint's blobs, bound as arrays (`put_checkpoint` on PostgreSQL)."""
LO_ID: Final = "lo_id"
LO_OFFSET: Final = "lo_offset"
LO_CHUNK: Final = "lo_chunk"
"""A large blob staged in chunks (`stage_blob`, `append_blob`, `put_staged_blob`): the
large object's id (also the label `stage_blob` returns it under), where a chunk goes,
and the chunk."""
W_CHANNEL: Final = "w_channel"
W_TYPE: Final = "w_type"
W_BLOB: Final = "w_blob"
W_IDX: Final = "w_idx"
"""A task's writes, bound as arrays (`put_writes` on PostgreSQL)."""
VALUES_CHUNK: Final = 64
"""Rows per multi-row `VALUES` insert (Citus): at most this many statement shapes each."""


def values_key(key: str, i: int) -> str:
    """The key of row `i`'s value of `key` (`b_channel`, `w_idx`, ...) in a multi-row
    `VALUES` insert (Citus)."""
    return f"{key}_{i}"


BEFORE: Final = "before"
KEY_ID: Final = "key_id"
KEY_THREAD: Final = "key_thread"
KEY_NS: Final = "key_ns"
"""The last row of the previous page (keyset pagination)."""
LIMIT: Final = "limit"
RUN_IDS: Final = "run_ids"
THREAD_IDS: Final = "thread_ids"
SOURCE: Final = "source"
TARGET: Final = "target"
PRUNE_THREAD: Final = "prune_thread"
PRUNE_NS: Final = "prune_ns"
KEEP: Final = "keep"
KEEP_ALL: Final = "keep_all"
"""The kept ids again, for the step of a trim that detaches kept checkpoints."""
FILTER_PREFIX: Final = "f_"
"""Keys of a metadata filter's values."""

# -- operations: thread search, retention, stats (`statements.threads`) -------------------

FIRST: Final = "first"
"""A thread's first root checkpoint id (`thread_page`)."""
CHECKPOINTS: Final = "checkpoints"
"""How many checkpoints a thread (or a batch of threads) has, all namespaces."""
BLOBS: Final = "blobs"
WRITES: Final = "writes"
"""How many blob / write rows a batch of threads has (`batch_sizes`)."""
BYTES: Final = "bytes"
"""Approximate bytes of a batch's or a thread's rows (documents as text, values)."""
RANK: Final = "rank"
"""A checkpoint's place in its namespace, newest 1 (`prune_newest`)."""
TABLE: Final = "table"
ROWS: Final = "rows"
DEAD_ROWS: Final = "dead_rows"
"""Per table: its name, rows, bytes on disk and dead tuples (`table_stats`)."""
THREADS: Final = "threads"
OLDEST: Final = "oldest"
NEWEST: Final = "newest"
"""Thread count and oldest / newest checkpoint ids (`activity`)."""
KEEP_LAST: Final = "keep_last"
"""Checkpoints kept per namespace (`prune_newest`)."""
CUTOFF: Final = "cutoff"
LOCKED: Final = "locked"
"""Whether a sweep batch took a candidate thread's lock (`sweep_batch`)."""
"""The smallest id a sweep leaves alone: threads whose latest id is lower are idle."""
AFTER_ID: Final = "after_id"
AFTER_THREAD: Final = "after_thread"
"""The last thread of the previous page or batch (keyset over (head id, thread))."""
UPDATED_BEFORE: Final = "updated_before"
UPDATED_AFTER: Final = "updated_after"
"""Ids bounding a thread's latest checkpoint id (`thread_page`, `thread_count`)."""
KEEP_PREFIX: Final = "k_"
"""Keys of a sweep's `keep` metadata filter values."""
TOP: Final = "top"
PAGE_COUNT: Final = "page_count"
FREE_PAGES: Final = "freelist_count"
PAGE_SIZE: Final = "page_size"
"""The database file's pages, free pages and page size (`file_pages`, SQLite)."""
SCHEMA: Final = "schema"
"""The saver's schema, NULL for the current one (`table_sizes`, PostgreSQL)."""

# -- the incremental blob encoding (`statements.encoded`) --------------------------------

BASES: Final = "bases"
"""(channel, version) pairs of the blob rows a read still needs (`blobs_by_version`)."""
SETTING_NAME: Final = "setting_name"
SETTING_VALUE: Final = "setting_value"
"""A `checkpointer_settings` row's name and value (`get_setting`, `put_setting`)."""
ENCODED: Final = "encoded"
"""The `type` prefix of encoded blob rows, as a LIKE pattern (`encoded_blobs`)."""
AFTER_NS: Final = "after_ns"
AFTER_CHANNEL: Final = "after_channel"
AFTER_VERSION: Final = "after_version"
"""The last encoded row of the previous batch (`encoded_blobs`, keyset)."""
NEW_TYPE: Final = "new_type"
NEW_BLOB: Final = "new_blob"
"""A blob row rewritten as plain (`plain_blob`)."""
