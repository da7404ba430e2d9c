"""Every statement compiled for each dialect and driver, without a database: one statement
per call, every key bound by the name the plans pass, and no value in it but our own
constants (a caller's value in a statement would defeat the compiled cache and could
reach the SQL text). Checked on the compiled form SQLAlchemy sends. Also: the rows plans
read carry the labels and kinds of the row contract (`checkpointer.rows`), the statement
families never define one name twice, and only `dialects.py` imports a SQLAlchemy dialect."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import fields
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.serde.types import TASKS
from sqlalchemy import literal
from sqlalchemy.engine.interfaces import Dialect as SQLDialect
from sqlalchemy.sql.base import Executable

import checkpointer
from checkpointer import codec, incremental, rows
from checkpointer.statements import LIST_CHUNK, PageShape, Statements, ThreadShape, for_dialect

DRIVERS = {"postgresql": ("asyncpg", "psycopg"), "sqlite": ("pysqlite", "aiosqlite")}


def _driver(dialect: str, driver: str) -> SQLDialect:
    from sqlalchemy.dialects import registry

    return registry.load(f"{dialect}.{driver}")()  # type: ignore[no-any-return]


CHECKPOINT = {"thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "type"}
CHECKPOINT |= {"checkpoint", "metadata"}
BLOB = {"thread_id", "checkpoint_ns", "channel", "version", "type", "blob"}
WRITE = {"thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "type"}
WRITE |= {"blob", "task_path"}
TARGET = {"thread_id", "checkpoint_ns", "checkpoint_id"}
TRIM = {"prune_thread", "prune_ns"}

KEYS: dict[str, dict[str, set[str] | None]] = {
    "postgresql": {
        "put_checkpoint": CHECKPOINT | {f"b_{n}" for n in BLOB},
        "put_writes": TARGET | {"task_id", "task_path", "w_channel", "w_type", "w_blob", "w_idx"},
        "write_lock": None,
        "stage_blob": {"lo_chunk"},
        "append_blob": {"lo_id", "lo_offset", "lo_chunk"},
        "put_staged_blob": (BLOB - {"blob"}) | {"lo_id"},
        "put_staged_write": (WRITE - {"blob"}) | {"lo_id"},
        "drop_staged_blob": {"lo_id"},
        "table_sizes": {"schema"},
        "file_pages": None,
        "sweep_delete": {"thread_ids", "cutoff"},
    },
    "sqlite": {
        "put_checkpoint": CHECKPOINT,
        "put_writes": WRITE,
        "write_lock": set(),
        "stage_blob": None,
        "append_blob": None,
        "put_staged_blob": None,
        "put_staged_write": None,
        "drop_staged_blob": None,
        "table_sizes": set(),
        "file_pages": set(),
        "sweep_delete": None,
    },
}
"""The keys each statement binds: the parameters its plan must pass (`None`: the
dialect has no such statement). Statements not listed here are alike on both."""

SHARED_KEYS: dict[str, set[str]] = {
    "put_blobs": BLOB,
    "delete_thread": {"thread_id"},
    "get_latest": {"thread_id", "checkpoint_ns"},
    "get_by_id": TARGET,
    "run_threads": {"run_ids"},
    "delete_run_writes": {"run_ids"},
    "delete_run_checkpoints": {"run_ids"},
    "delete_unreferenced_blobs": {"thread_ids"},
    "delete_threads": {"thread_ids"},
    "thread_rows": {"thread_id"},
    "copy_thread": {"source", "target"},
    "prune_newest": {"thread_id", "keep_last"},
    "batch_sizes": {"thread_ids"},
    "sweep_delete": {"thread_ids", "cutoff"},
    "table_rows": set(),
    "activity": set(),
    "largest_threads": {"top"},
    "prune_trim[0]": TRIM | {"head", "keep"},
    "prune_trim[1]": TRIM | {"head", "keep"},
    "prune_trim[2]": TRIM | {"keep_all"},
    "get_setting": {"setting_name"},
    "put_setting": {"setting_name", "setting_value"},
    "delete_setting": {"setting_name"},
    "blobs_by_version": {"thread_id", "checkpoint_ns", "bases"},
    "plain_blob": {
        *("b_thread_id", "b_checkpoint_ns", "b_channel", "b_version", "new_type", "new_blob")
    },
    "_encoded_first": {"encoded", "limit"},
    "_encoded_after": {"encoded", "limit", "after_thread", "after_ns"}
    | {"after_channel", "after_version"},
}

KINDS = {rows.KIND_CHECKPOINT, rows.KIND_BLOB, rows.KIND_WRITE, rows.KIND_SEND, rows.KIND_VALUE}

CONSTANTS: list[Any] = [
    *KINDS,
    TASKS,
    codec.EMPTY,
    *("channel_values", "channel_versions", "$.channel_values", "$.channel_versions", "$.v"),
    *("object", "array", "true", "false", "null", "integer", "real", "text"),  # JSON types
    *(None, 0, 1, 2, 4, True),
    incremental.DELTA + "%",  # the encoded garbage collection: a delta row's base
    len(incremental.DELTA) + 1,
]
"""Every value a statement may hold (anonymous binds): ours, never a caller's."""

QUOTED = {"'run_id'", "'true'::jsonb", "''", "'checkpoints'", "'checkpoint_blobs'"}
QUOTED |= {"'checkpoint_writes'"}
"""Literals in the SQL text: the run id key (an expression index matches it only as a
constant), JSONB `true` (the `_DeltaSnapshot` marker), the root namespace '' (a partial
index matches it only as a constant) and our table names (statistics)."""

FILTERS: list[dict[str, Any]] = [
    {"source": "loop"},
    {"step": 1, "writes": None},
    {"parents": {"": "1ef"}, "tags": ["a", "b"]},
    {"flag": True, "big": 2**70, "ratio": 0.5},
]


def _statements(s: Statements) -> Iterator[tuple[str, Executable | None, set[str] | None]]:
    """Every statement of `s` with the keys it must bind."""
    name = s.dialect.name
    for attribute in sorted(n for n in dir(Statements) if _is_statement(n)):
        value = getattr(s, attribute)
        for index, statement in enumerate(value if isinstance(value, tuple) else (value,)):
            label = f"{attribute}[{index}]" if isinstance(value, tuple) else attribute
            keys = KEYS[name].get(attribute, SHARED_KEYS.get(label, SHARED_KEYS.get(attribute)))
            yield label, statement, keys
    encoded = for_dialect(name, True).delete_unreferenced_blobs
    yield "delete_unreferenced_blobs (incremental encoding)", encoded, {"thread_ids"}
    for n in (1, 2, 3):
        chain = TARGET | {f"ch_{i}" for i in range(n)}
        yield f"delta_history({n})", s.delta_history(n), chain
        yield f"keep_chain({n})", s.keep_chain(n), chain
    for after in (False, True):
        for before in (False, True):
            bounded = ThreadShape(after_key=after, updated_before=before, updated_after=not before)
            bounds = {"updated_before"} if before else {"updated_after"}
            keyset = {"after_id", "after_thread"} if after else set()
            filters: list[dict[str, Any] | None] = [None, *FILTERS]
            for chosen in filters:
                page, found = s.thread_page(bounded, chosen)
                page_keys = bounds | keyset | {"limit"} | set(found)
                yield f"thread_page({bounded}, {chosen})", page, page_keys
                count, found = s.thread_count(bounded, chosen)
                yield f"thread_count({bounded}, {chosen})", count, bounds | set(found)
                sweep, found = s.sweep_batch(after, chosen)
                sweep_keys = {"cutoff", "limit"} | keyset | set(found)
                yield f"sweep_batch({after}, {chosen})", sweep, sweep_keys
    shapes = list(_shapes())
    for shape in shapes:
        yield f"list_page({shape})", s.list_page(shape, None)[0], _page_keys(shape)
    for shape in shapes[:: len(shapes) // 4]:
        for filter in FILTERS:
            statement, params = s.list_page(shape, filter)
            yield f"list_page({shape}, {filter})", statement, _page_keys(shape) | set(params)


def _is_statement(name: str) -> bool:
    return isinstance(getattr(Statements, name, None), cached_property)


def _shapes() -> Iterator[PageShape]:
    """The shapes `plans` makes: `latest` only with thread and namespace (`get_latest`)."""
    flags = [f.name for f in fields(PageShape) if f.name not in ("latest", "limit", "chunk")]
    for bits in range(2 ** len(flags)):
        chosen = {f: bool(bits >> i & 1) for i, f in enumerate(flags)}
        yield PageShape(**chosen, chunk=True)
        yield PageShape(**chosen, limit=True)


def _page_keys(shape: PageShape) -> set[str]:
    keys = {"limit"} if shape.limit and not shape.chunk else set()
    wanted = {
        "thread": {"thread_id"},
        "namespace": {"checkpoint_ns"},
        "checkpoint_id": {"checkpoint_id"},
        "before": {"before"},
        "after_key": {"key_id", "key_thread", "key_ns"},
    }
    for flag, names in wanted.items():
        if getattr(shape, flag):
            keys |= names
    return keys


CASES = [
    (dialect, driver, label, statement, keys)
    for dialect, drivers in DRIVERS.items()
    for label, statement, keys in _statements(for_dialect(dialect))
    for driver in drivers
]


@pytest.mark.parametrize(
    ("dialect", "driver", "label", "statement", "keys"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES],
)
def test_statement_binds_its_keys_and_holds_no_value(
    dialect: str, driver: str, label: str, statement: Executable | None, keys: set[str] | None
) -> None:
    """One statement, no literal but the known ones, exactly the keys the plans pass,
    and no value in a bind but our constants.
    Mutation: `bindparam(THREAD_ID, type_=Text)` -> `bindparam("thread", ...)` in
    `Operations.thread_rows` -> fails (thread_rows binds ['thread'])."""
    if keys is None:
        assert statement is None, f"{label} exists on {dialect}, which should have none"
        return
    assert statement is not None, f"{label} is missing on {dialect}"
    compiled = statement.compile(dialect=_driver(dialect, driver))
    sql = str(compiled)
    assert ";" not in sql, f"{label}: more than one statement"
    assert set(re.findall(r"'[^']*'(?:::\w+)?", sql)) <= QUOTED, f"{label}: a literal in {sql}"
    named = {b.key for b in compiled.binds.values() if not b.unique}
    assert named == keys, f"{label} binds {sorted(named)}, plans pass {sorted(keys)}"
    for bind in compiled.binds.values():
        if bind.unique:
            assert bind.value in CONSTANTS, f"{label}: value {bind.value!r} in the statement"
        else:
            assert bind.value is None, f"{label}: {bind.key} has a value"
            assert bind.callable is None, f"{label}: {bind.key} has a value"


@pytest.mark.parametrize("dialect", DRIVERS)
def test_statements_are_built_once(dialect: str) -> None:
    """The same statement object on every call (the compiled cache is keyed by it), and
    one per filter shape whatever the filter's keys and values.
    Mutation: drop `@cache` from `History.delta_history` -> fails."""
    s = for_dialect(dialect)
    assert for_dialect(dialect) is s
    assert s.get_latest is s.get_latest
    assert s.delta_history(2) is s.delta_history(2)
    shape = PageShape(thread=True, chunk=True)
    assert s.list_page(shape, None)[0] is s.list_page(shape, None)[0]
    one, params_one = s.list_page(shape, {"source": "loop", "step": 1})
    other, params_other = s.list_page(shape, {"user": "x", "n": 2})
    assert one is other
    assert params_one != params_other
    assert str(s.page(PageShape(chunk=True)).compile()).rstrip().endswith(f"LIMIT {LIST_CHUNK}")


def test_only_dialects_imports_sqlalchemy_dialects() -> None:
    """What differs per database lives in `checkpointer.dialects` (Alembic revisions,
    frozen copies of the schema at their time, may name dialect types too).
    Mutation: `from sqlalchemy.dialects import postgresql` in statements/writes.py ->
    fails."""
    root = Path(checkpointer.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[:2] == ["sqlalchemy", "dialects"] for n in names):
                found.append(path.relative_to(root).as_posix())
    assert sorted(set(found)) == ["dialects.py"]


READ = [
    rows.KIND,
    rows.THREAD_ID,
    rows.CHECKPOINT_NS,
    rows.CHECKPOINT_ID,
    rows.PARENT_CHECKPOINT_ID,
    rows.CHECKPOINT,
    rows.METADATA,
    rows.CHANNEL,
    rows.VERSION,
    rows.TYPE,
    rows.BLOB,
    rows.TASK_ID,
    rows.TASK_PATH,
    rows.IDX,
]
HISTORY = [
    rows.KIND,
    rows.CHECKPOINT_ID,
    rows.CHANNEL,
    rows.TASK_ID,
    rows.TASK_PATH,
    rows.IDX,
    rows.TYPE,
    rows.BLOB,
    rows.VALUE,
]
NEWEST = [
    rows.CHECKPOINT_NS,
    rows.CHECKPOINT_ID,
    rows.RANK,
    rows.COUNT,
    rows.PARENT_CHECKPOINT_ID,
    rows.METADATA,
    rows.PARENT_SENDS,
    rows.VERSIONS,
]
THREAD_PAGE = [rows.THREAD_ID, rows.HEAD, rows.METADATA, rows.FIRST, rows.CHECKPOINTS]
SWEEP = [rows.THREAD_ID, rows.HEAD, rows.METADATA]
SIZES = [rows.CHECKPOINTS, rows.BLOBS, rows.WRITES, rows.BYTES]
ACTIVITY = [rows.THREADS, rows.CHECKPOINTS, rows.OLDEST, rows.NEWEST]
FILE_PAGES = [rows.PAGE_COUNT, rows.FREE_PAGES, rows.PAGE_SIZE]
READ_KINDS = {rows.KIND_CHECKPOINT, rows.KIND_BLOB, rows.KIND_WRITE, rows.KIND_SEND}
HISTORY_KINDS = {rows.KIND_WRITE, rows.KIND_BLOB, rows.KIND_VALUE}


def _labelled(s: Statements) -> Iterator[tuple[str, Any, list[str], set[str]]]:
    """The statements whose rows plans read: their labels and (tagged rows) kinds."""
    yield "get_latest", s.get_latest, READ, READ_KINDS
    yield "get_by_id", s.get_by_id, READ, READ_KINDS
    shape = PageShape(thread=True, chunk=True)
    yield "list_page", s.list_page(shape, None)[0], READ, READ_KINDS
    yield "list_page filtered", s.list_page(shape, {"a": 1})[0], READ, READ_KINDS
    for n in (1, 2, 3):
        yield f"delta_history({n})", s.delta_history(n), HISTORY, HISTORY_KINDS
        yield f"keep_chain({n})", s.keep_chain(n), [rows.CHECKPOINT_ID], set()
    yield "prune_newest", s.prune_newest, NEWEST, set()
    yield "thread_page", s.thread_page(ThreadShape(), None)[0], THREAD_PAGE, set()
    yield "thread_count", s.thread_count(ThreadShape(), None)[0], [rows.COUNT], set()
    locked = [rows.LOCKED] if s.dialect.thread_lock(literal("t"), shared=False) is not None else []
    yield "sweep_batch", s.sweep_batch(False, None)[0], SWEEP + locked, set()
    if s.sweep_delete is not None:
        yield "sweep_delete", s.sweep_delete, [rows.THREADS, *SIZES], set()
    yield "batch_sizes", s.batch_sizes, SIZES, set()
    yield "table_rows", s.table_rows, [rows.TABLE, rows.ROWS], set()
    yield "table_sizes", s.table_sizes, [rows.TABLE, rows.BYTES, rows.DEAD_ROWS], set()
    yield "activity", s.activity, ACTIVITY, set()
    yield "largest_threads", s.largest_threads, [rows.THREAD_ID, rows.BYTES], set()
    if s.file_pages is not None:
        yield "file_pages", s.file_pages, FILE_PAGES, set()
    yield "run_threads", s.run_threads, [rows.THREAD_ID], set()


LABELLED = [(d, *case) for d in DRIVERS for case in _labelled(for_dialect(d))]


@pytest.mark.parametrize(
    ("dialect", "label", "statement", "labels", "kinds"),
    LABELLED,
    ids=[f"{c[0]}-{c[1]}" for c in LABELLED],
)
def test_rows_carry_the_labels_plans_read(
    dialect: str, label: str, statement: Any, labels: list[str], kinds: set[str]
) -> None:
    """Every branch of a `UNION ALL` has the labels of the row contract (`rows`), in
    order (branches line up by position), and tags its rows with one of its kinds.
    Mutation: `ranked.c[COUNT]` -> `ranked.c[COUNT].label("count")` in
    `Threads.prune_newest`
    -> fails."""
    branches = statement.selects if hasattr(statement, "selects") else [statement]
    seen = set()
    for branch in branches:
        assert list(branch.selected_columns.keys()) == labels, f"{label}: {branch}"
        if kinds:
            seen.add(branch.selected_columns[0].element.value)
    assert seen == kinds


def test_families_define_each_name_once() -> None:
    """`Statements` gathers its families by inheritance: a name defined by two of them
    would silently hide one.
    Mutation: add `write_lock = None` to `History` -> fails (also in Operations)."""
    families = Statements.__mro__[1:-2]  # without Statements itself, Family and object
    assert len(families) >= 4
    owners: dict[str, str] = {}
    for family in families:
        for name in vars(family):
            if not name.startswith("__"):
                assert name not in owners, f"{name} in {owners.get(name)} and {family.__name__}"
                owners[name] = family.__name__
