"""`list(filter=...)` has one meaning on every dialect: PostgreSQL's JSONB containment
(`metadata @> filter`). The cases below are a table of (stored metadata, filter,
expected); the expectations are checked against PostgreSQL's own `@>` first, then
every filter is run through the saver on each dialect over every stored document, and
the matches must be exactly those `@>` gives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.dialects import filter_shape, for_name
from checkpointer.schema import checkpoint_blobs, checkpoint_writes, checkpoints

from ..pg_server import database_url

HOSTILE = [
    "x'); DROP TABLE checkpoints; --",
    "$.a",
    "a' || '",
    "'",
    '"',
    'a"b',
    "a.b",
    "$",
    "a[0]",
    "[0]",
    "a b",
    "back\\slash",
    "100%",
    "_",
    "*",
    "ключ",
    "🙂",
    "",
]
"""Keys that would break (or inject into) SQL text or a JSON path if either were built
from them."""


def _nest_objects(depth: int, leaf: Any) -> dict[str, Any]:
    """`leaf` under `depth` levels of objects (the outermost is the metadata)."""
    value = leaf
    for level in range(depth, 0, -1):
        value = {f"k{level}": value}
    return value


def _nest_arrays(depth: int, leaf: Any) -> dict[str, Any]:
    """`leaf` inside `depth` levels of arrays, at metadata key `l`."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return {"l": value}


CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    # strings
    ({"s": "a"}, {"s": "a"}, True),
    ({"s": "a"}, {"s": "b"}, False),
    ({"s": "1"}, {"s": 1}, False),
    ({"s": 1}, {"s": "1"}, False),
    ({"s": ""}, {"s": ""}, True),
    ({"s": "a'b\"c\\d%_"}, {"s": "a'b\"c\\d%_"}, True),
    ({"s": "a%"}, {"s": "a_"}, False),
    ({"s": "é🙂"}, {"s": "é🙂"}, True),
    # numbers: by value, so an int matches the equal float
    ({"n": 1}, {"n": 1}, True),
    ({"n": 1}, {"n": 1.0}, True),
    ({"n": 1.0}, {"n": 1}, True),
    ({"n": 1.5}, {"n": 1}, False),
    ({"n": 0}, {"n": 0.0}, True),
    ({"n": -3}, {"n": -3}, True),
    ({"n": 10**15}, {"n": 10**15}, True),
    ({"n": 2}, {"n": 20}, False),
    ({"n": 10**20}, {"n": 10**20}, True),
    ({"n": -(10**20)}, {"n": 10**20}, False),
    ({"n": 0.1}, {"n": 0.1}, True),
    ({"n": 1e-7}, {"n": 1e-7}, True),
    # booleans are not numbers
    ({"n": True}, {"n": 1}, False),
    ({"n": 1}, {"n": True}, False),
    ({"n": False}, {"n": 0}, False),
    ({"n": 0}, {"n": False}, False),
    ({"n": True}, {"n": True}, True),
    ({"n": False}, {"n": False}, True),
    ({"n": True}, {"n": False}, False),
    ({"n": True}, {"n": "true"}, False),
    # null is a value; a missing key is not null
    ({"k": None}, {"k": None}, True),
    ({}, {"k": None}, False),
    ({"other": None}, {"k": None}, False),
    ({"k": 0}, {"k": None}, False),
    ({"k": ""}, {"k": None}, False),
    ({"k": False}, {"k": None}, False),
    ({"k": None}, {"k": False}, False),
    ({"k": "null"}, {"k": None}, False),
    # nested objects: contained, not equal
    ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, True),
    ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, False),
    ({"a": {"b": 1}}, {"a": {"b": 1.0}}, True),
    ({"a": {"b": 1}}, {"a": {"b": True}}, False),
    ({"a": {"b": {"c": [1, 2], "d": 0}}}, {"a": {"b": {"c": [2]}}}, True),
    ({"a": {"b": 1}}, {"a": {}}, True),
    ({"a": 1}, {"a": {}}, False),
    ({"a": []}, {"a": {}}, False),
    ({"a": {"b": None}}, {"a": {"b": None}}, True),
    ({"a": {}}, {"a": {"b": None}}, False),
    ({"a": {"b": 1}}, {"a.b": 1}, False),
    ({"a.b": 1}, {"a": {"b": 1}}, False),
    ({"a.b": 1}, {"a.b": 1}, True),
    # arrays: every given element is contained in some stored element
    ({"l": [1, 2]}, {"l": [1]}, True),
    ({"l": [1, 2]}, {"l": [2, 1]}, True),
    ({"l": [1]}, {"l": [1, 2]}, False),
    ({"l": [1, 2]}, {"l": []}, True),
    ({"l": [1, 1]}, {"l": [1, 1, 1]}, True),
    ({"l": [1, 2]}, {"l": 1}, False),
    ({"l": 1}, {"l": [1]}, False),
    ({"l": {}}, {"l": []}, False),
    ({"l": [1.0, "x"]}, {"l": [1]}, True),
    ({"l": [True]}, {"l": [1]}, False),
    ({"l": [None]}, {"l": [None]}, True),
    ({"l": [[1, 2], [3]]}, {"l": [[2]]}, True),
    ({"l": [[1, 2]]}, {"l": [1]}, False),
    ({"l": [{"a": 1, "b": 2}, {"c": 3}]}, {"l": [{"a": 1}]}, True),
    ({"l": [{"a": 1}, {"b": 2}]}, {"l": [{"a": 1, "b": 2}]}, False),
    ({"l": ["a", "b"]}, {"l": ["a"]}, True),
    ({"l": ["ab"]}, {"l": ["a"]}, False),
    # several keys: all must hold
    ({"x": 1, "y": 2, "z": 3}, {"x": 1, "y": 2}, True),
    ({"x": 1, "y": 3}, {"x": 1, "y": 2}, False),
    ({"x": 1}, {"x": 1, "y": 2}, False),
    # real metadata shapes
    ({"source": "loop", "step": 3, "run_id": "r1"}, {"source": "loop", "step": 3}, True),
    ({"source": "input", "step": -1}, {"source": "loop"}, False),
    # deep nesting: SQLite's parser stack once overflowed at about 10 levels
    (_nest_objects(14, {"x": 1, "y": 2}), _nest_objects(14, {"x": 1}), True),
    (_nest_objects(14, {"x": 1}), _nest_objects(14, {"x": 2}), False),
    (_nest_objects(14, {"x": 1}), _nest_objects(13, {"x": 1}), False),
    (_nest_arrays(12, {"x": 1, "y": [3, 4]}), _nest_arrays(12, {"y": [4]}), True),
    (_nest_arrays(12, {"x": 1}), _nest_arrays(12, {"x": True}), False),
    (_nest_arrays(12, 5), _nest_arrays(11, 5), False),
    ({"l": [{"a": [{"b": [1, 2]}, {"c": 3}]}, {"d": [None]}]}, {"l": [{"a": [{"b": [2]}]}]}, True),
    ({"l": [{"a": [{"b": [1]}, {"c": 3}]}]}, {"l": [{"a": [{"b": [1], "c": 3}]}]}, False),
    ({"l": [[1, 2], [3, 4]]}, {"l": [[1], [4]]}, True),
    ({"l": [[1, 2], [3, 4]]}, {"l": [[1, 4]]}, False),
    (_nest_arrays(40, {"x": [1, 2]}), _nest_arrays(40, {"x": [2]}), True),
    (_nest_arrays(40, {"x": [1, 2]}), _nest_arrays(40, {"x": [3]}), False),
    # wide: SQLite joins at most 64 tables
    ({"l": list(range(100))}, {"l": list(range(70))}, True),
    ({"l": list(range(100))}, {"l": [*range(70), 200]}, False),
    ({"l": [{"a": i} for i in range(80)]}, {"l": [{"a": i} for i in range(70)]}, True),
    (
        {"l": [{"a": i} for i in range(80)]},
        {"l": [*({"a": i} for i in range(70)), {"a": 99}]},
        False,
    ),
    # odd keys match exactly themselves
    *[({key: 1, "other": 2}, {key: 1}, True) for key in HOSTILE],
    *[({key: 1}, {key: 2}, False) for key in HOSTILE],
    ({"a": 1}, {"$.a": 1}, False),
    ({"a": 1}, {"a' || '": 1}, False),
    ({"a": [1]}, {"a[0]": 1}, False),
    ({"x": 1}, {"": 1}, False),
    ({"": 1}, {"": 1}, True),
    ({"A": 1}, {"a": 1}, False),
    ({"a ": 1}, {"a": 1}, False),
    ({"%": 1}, {"a": 1}, False),
    ({"_": 1}, {"a": 1}, False),
    ({"'": 1}, {'"': 1}, False),
]


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


DOCS = list({_dump(doc): doc for doc, _, _ in CASES}.values())
DOC_INDEX = {_dump(doc): i for i, doc in enumerate(DOCS)}
"""By JSON text: `{"n": True} == {"n": 1}` in Python, not in JSON."""
FILTERS = list({_dump(f): f for _, f, _ in CASES}.values())


def postgres_contains(pairs: list[tuple[Any, Any]]) -> list[bool]:
    """`a::jsonb @> b::jsonb` for each pair, asked of the PostgreSQL server itself."""
    engine = create_engine(database_url("postgres", "psycopg"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT CAST(t.a AS jsonb) @> CAST(t.b AS jsonb) "
                    "FROM unnest(CAST(:a AS text[]), CAST(:b AS text[])) "
                    "WITH ORDINALITY AS t(a, b, n) ORDER BY t.n"
                ),
                {"a": [json.dumps(a) for a, _ in pairs], "b": [json.dumps(b) for _, b in pairs]},
            ).all()
    finally:
        engine.dispose()
    return [bool(r[0]) for r in rows]


@pytest.fixture(scope="module")
def reference() -> dict[str, set[int]]:
    """For each filter (by its JSON), the indexes of the documents PostgreSQL's `@>`
    says contain it."""
    pairs = [(doc, f) for f in FILTERS for doc in DOCS]
    answers = iter(postgres_contains(pairs))
    return {_dump(f): {i for i in range(len(DOCS)) if next(answers)} for f in FILTERS}


def test_table_is_postgres_containment() -> None:
    """The hand-written expectations are what PostgreSQL's `@>` answers."""
    answers = postgres_contains([(doc, f) for doc, f, _ in CASES])
    wrong = [
        (doc, f, want) for (doc, f, want), got in zip(CASES, answers, strict=True) if got != want
    ]
    assert not wrong, f"the table disagrees with PostgreSQL @>: {wrong}"


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _sync_url(url: str) -> str:
    return (
        url.replace("+asyncpg", "+psycopg")
        .replace("+aiosqlite", "")
        .replace("+asyncmy", "+pymysql")
    )


def _depth(value: Any) -> int:
    """Levels of nested objects and arrays in a JSON value."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


async def _store_docs(saver: AsyncSQLAlchemySaver) -> set[int]:
    """Store every document the database can hold; on MySQL/MariaDB one nested deeper
    than its stated limit is refused with a ValueError naming it (checked here)."""
    limit = for_name(saver.engine.dialect.name).metadata_max_depth
    stored = set()
    for i, doc in enumerate(DOCS):
        put = saver.aput(_config(f"doc{i}"), empty_checkpoint(), doc, {})  # type: ignore[arg-type]
        if limit is not None and _depth(doc) > limit:
            with pytest.raises(ValueError, match=f"nested more than {limit} levels deep"):
                await put
            continue
        await put
        stored.add(i)
    return stored


async def test_filter_matches_postgres_containment(
    saver: AsyncSQLAlchemySaver, db_url: str, reference: dict[str, set[int]]
) -> None:
    """Every filter over every stored document: the saver matches exactly the documents
    PostgreSQL's `@>` matches (so each row of the table holds); so does the sync saver
    (psycopg / sqlite3 binding the parameters) over the same rows."""
    kept = await _store_docs(saver)
    stored = {t.config["configurable"]["thread_id"]: t.metadata async for t in saver.alist(None)}
    assert stored == {f"doc{i}": doc for i, doc in enumerate(DOCS) if i in kept}
    for f in FILTERS:
        found = {
            int(t.config["configurable"]["thread_id"][3:])
            async for t in saver.alist(None, filter=f)
        }
        want = reference[_dump(f)] & kept
        assert found == want, (
            f"filter {f!r}: extra {[DOCS[i] for i in found - want]}, "
            f"missing {[DOCS[i] for i in want - found]}"
        )
    engine = create_engine(_sync_url(db_url))
    try:
        sync_saver = SQLAlchemySaver(engine)
        for f in FILTERS:
            found = {
                int(t.config["configurable"]["thread_id"][3:])
                for t in sync_saver.list(None, filter=f)
            }
            assert found == reference[_dump(f)] & kept, f
    finally:
        engine.dispose()


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in (checkpoints, checkpoint_blobs, checkpoint_writes)
        }


async def test_hostile_keys_touch_nothing_and_match_exactly(
    saver: AsyncSQLAlchemySaver, engine: AsyncEngine
) -> None:
    """Keys that would be SQL or a JSON path if spliced into text are plain keys: every
    table keeps its rows, and each key matches the one document that has it."""
    for i, key in enumerate(HOSTILE):
        config = _config(f"h{i}")
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"v": [key]}
        checkpoint["channel_versions"] = {"v": "1"}
        stored = await saver.aput(config, checkpoint, {key: "yes", "n": i}, {"v": "1"})  # type: ignore[arg-type]
        await saver.aput_writes(stored, [("v", key)], "task")
    before = await _counts(engine)
    assert before == {
        "checkpoints": len(HOSTILE),
        "checkpoint_blobs": len(HOSTILE),
        "checkpoint_writes": len(HOSTILE),
    }
    for i, key in enumerate(HOSTILE):
        found = [t async for t in saver.alist(None, filter={key: "yes"})]
        assert [t.metadata["n"] for t in found] == [i], key
        assert found[0].metadata[key] == "yes"
        assert found[0].checkpoint["channel_values"]["v"] == [key]
        assert found[0].pending_writes == [("task", "v", key)]
        assert [t async for t in saver.alist(None, filter={key: "no"})] == []
    assert await _counts(engine) == before


@pytest.fixture
async def history(saver: AsyncSQLAlchemySaver) -> dict[str, list[str]]:
    """Two threads of six checkpoints each, `parity` alternating, newest last."""
    ids: dict[str, list[str]] = {"A": [], "B": []}
    for step in range(6):
        for thread in ("A", "B"):
            checkpoint = empty_checkpoint()
            metadata = {"parity": "even" if step % 2 == 0 else "odd", "step": step}
            await saver.aput(_config(thread), checkpoint, metadata, {})  # type: ignore[arg-type]
            ids[thread].append(checkpoint["id"])
    return ids


async def test_filter_with_config_before_and_limit(
    saver: AsyncSQLAlchemySaver, db_url: str, history: dict[str, list[str]]
) -> None:
    """A filter narrows whatever config, `before` and `limit` select, newest first."""

    async def steps(config: Any, **kwargs: Any) -> list[tuple[str, int]]:
        return [
            (t.config["configurable"]["thread_id"], t.metadata["step"])
            async for t in saver.alist(config, **kwargs)
        ]

    even = {"parity": "even"}
    assert await steps(_config("A"), filter=even) == [("A", 4), ("A", 2), ("A", 0)]
    assert await steps(_config("A"), filter=even, limit=2) == [("A", 4), ("A", 2)]
    before = {"configurable": {"thread_id": "A", "checkpoint_id": history["A"][4]}}
    assert await steps(_config("A"), filter=even, before=before) == [("A", 2), ("A", 0)]
    assert await steps(_config("A"), filter=even, before=before, limit=1) == [("A", 2)]
    assert await steps(_config("B"), filter={"parity": "odd", "step": 3}) == [("B", 3)]
    assert await steps(_config("B"), filter={"parity": "odd", "step": 2}) == []
    everywhere = await steps(None, filter={"step": 5})
    assert sorted(everywhere) == [("A", 5), ("B", 5)]
    assert len(await steps(None, filter=even)) == 6
    assert len(await steps(None, filter=even, limit=4)) == 4
    one = {
        "configurable": {"thread_id": "A", "checkpoint_ns": "", "checkpoint_id": history["A"][2]}
    }
    assert await steps(one, filter=even) == [("A", 2)]
    assert await steps(one, filter={"parity": "odd"}) == []
    assert await steps(_config("A"), filter={}) == await steps(_config("A"))

    # The same through the sync saver.
    engine = create_engine(_sync_url(db_url))
    try:
        found = SQLAlchemySaver(engine).list(_config("A"), filter=even, before=before, limit=1)
        assert [t.metadata["step"] for t in found] == [2]
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_filters_of_one_shape_share_one_statement(dialect: str) -> None:
    """`filter_shape` is a sound cache key: filters of one shape compile to the same SQL
    with the same parameter names; filters that compile differently differ in shape. A
    cached statement takes `metadata_filter_params`, which must give the same values."""
    from sqlalchemy.dialects import postgresql, sqlite

    target = for_name(dialect)
    compiler = postgresql.dialect() if dialect == "postgresql" else sqlite.dialect()
    compiled: dict[Any, set[tuple[str, tuple[str, ...]]]] = {}
    for f in FILTERS:
        clause, params = target.metadata_filter(checkpoints.c.metadata, f, "f_")
        sql = str(clause.compile(dialect=compiler))
        assert target.metadata_filter_params(f, "f_") == params, f
        compiled.setdefault(filter_shape(f), set()).add((sql, tuple(sorted(params))))
    assert all(len(forms) == 1 for forms in compiled.values()), [
        shape for shape, forms in compiled.items() if len(forms) > 1
    ]
    assert filter_shape({"a": {"b": 1}}) != filter_shape({"a": {"b": 1, "c": 2}})
    assert filter_shape({"a": [1]}) != filter_shape({"a": [1, 2]})
    assert filter_shape({"a": True}) != filter_shape({"a": False})
    assert filter_shape({"x": 1}) == filter_shape({"y": 2.5})
