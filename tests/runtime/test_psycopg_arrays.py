"""Sync psycopg's fast path binds array parameters as PostgreSQL array literals
(`fastpath._array_literal`), not through psycopg's list dumper: values that need
quoting or escaping in a literal must come back exactly, through the fast path and
the same as through `Connection`."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import create_engine

from checkpointer import SQLAlchemySaver, fastpath

from .test_fastpath import checkpoint, config

AWKWARD: list[tuple[str, Any]] = [
    ('quote " and backslash \\ and \\" both', 'value " \\ \\\\ {}'),
    ("comma, brace } { and NULL", "NULL"),
    ("", ""),
    ("unicode é 漢字 🙂", "  spaces  "),
    ("\\x00 looks like hex", b"\x00\x01\\\xff" * 3),
    ("none", None),
]


def test_awkward_channels_and_values_round_trip(pg_url: str) -> None:
    """Channel names (a text array) and values (a bytea array) that an array literal
    must quote or escape: read back the same through the fast path and without it.
    (Fails if `_quoted_text` stops escaping backslashes or quotes, or `_quoted_bytes`
    drops the doubled backslash.)"""
    engine = create_engine(pg_url.replace("+asyncpg", "+psycopg"), pool_size=2)
    try:
        read: dict[bool, list[tuple[str, Any]]] = {}
        for fast in (True, False):
            saver = SQLAlchemySaver(engine, fast_path=fast)
            thread = f"arr-{uuid.uuid4().hex}"
            versions = {ch: saver.get_next_version(None) for ch in ("messages", "blob", "text")}
            cfg = saver.put(config(thread), checkpoint(0, versions), {"step": 0}, versions)
            assert (saver._fast is not None) is fast
            saver.put_writes(cfg, AWKWARD, task_id="t")
            found = saver.get_tuple(cfg)
            assert found is not None
            assert found.pending_writes is not None
            read[fast] = [(ch, v) for _, ch, v in found.pending_writes]
        assert read[True] == read[False] == AWKWARD
    finally:
        engine.dispose()


def test_array_literal_only_for_known_element_types() -> None:
    from sqlalchemy import ARRAY, JSON, Integer, LargeBinary, Text

    text = fastpath._array_literal(ARRAY(Text))
    assert text is not None
    assert text(["a", None, 'b"\\']) == '{"a",NULL,"b\\"\\\\"}'
    binary = fastpath._array_literal(ARRAY(LargeBinary))
    assert binary is not None
    assert binary([b"\x01\xff", None]) == '{"\\\\x01ff",NULL}'
    integer = fastpath._array_literal(ARRAY(Integer))
    assert integer is not None
    assert integer([1, None, -2]) == "{1,NULL,-2}"
    assert fastpath._array_literal(ARRAY(JSON)) is None
    assert fastpath._array_literal(ARRAY(Text, dimensions=2)) is None
    assert fastpath._array_literal(Text()) is None
