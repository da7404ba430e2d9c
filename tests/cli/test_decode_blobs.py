"""`checkpointer decode-blobs`: rewrites a database written with
`blob_encoding="incremental"` as plain blobs; before that, the other commands read it
(their savers follow the database's setting), and a saver without the option refuses it.
PostgreSQL and SQLite, through a subprocess."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from sqlalchemy import create_engine, func, select

from checkpointer import BlobEncodingError, SQLAlchemySaver, incremental, schema
from checkpointer.migrations import upgrade

from ..conftest import _create_database, drop_database, pg_database_url
from .test_commands import cli, ok


@pytest.fixture(params=["postgresql", "sqlite"])
def encoded_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A sync URL of a database with one 40-step thread written with the option."""
    name = ""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/encoded.db"
    else:
        name = f"cp_cli_{uuid.uuid4().hex[:10]}"
        _create_database(name)
        url = pg_database_url(name, "psycopg")
    engine = create_engine(url)
    with engine.connect() as conn:
        upgrade(conn)
    saver = SQLAlchemySaver(engine, blob_encoding="incremental")
    messages: list[Any] = []
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    version = None
    for step in range(40):
        messages += [HumanMessage(f"question {step} " * 20, id=f"h{step}")]
        messages += [AIMessage(f"answer {step} " * 25, id=f"a{step}")]
        version = saver.get_next_version(version)
        checkpoint: Any = {
            "v": 4,
            "id": f"1ef00000-0000-6000-8000-{step:012d}",
            "ts": "2026-12-08T00:00:00+00:00",
            "channel_values": {"messages": list(messages)},
            "channel_versions": {"messages": version},
            "versions_seen": {},
            "updated_channels": ["messages"],
        }
        config = saver.put(config, checkpoint, {"step": step}, {"messages": version})
    engine.dispose()
    try:
        yield url
    finally:
        if name:
            drop_database(name)


def test_decode_blobs_makes_the_database_plain(encoded_url: str) -> None:
    """Mutation: skip the batches in `DecodeBlobs.__iter__` -> fails."""
    engine = create_engine(encoded_url)
    try:
        with pytest.raises(BlobEncodingError):
            SQLAlchemySaver(engine).get_tuple({"configurable": {"thread_id": "t"}})
        before = ok("history", "t", url=encoded_url)
        assert len(before["checkpoints"]) == 40
        done = cli("decode-blobs", url=encoded_url)  # no terminal, no --yes: refused
        assert done.returncode != 0
        assert "--yes" in done.stderr
        assert ok("decode-blobs", "--yes", "--batch", "9", url=encoded_url)["rewritten"] > 30
        blobs = schema.checkpoint_blobs
        with engine.connect() as conn:
            left = conn.scalar(
                select(func.count()).where(blobs.c.type.like(incremental.PREFIX + "%"))
            )
        assert left == 0
        plain = SQLAlchemySaver(engine)
        latest = plain.get_tuple({"configurable": {"thread_id": "t"}})
        assert latest is not None
        assert len(latest.checkpoint["channel_values"]["messages"]) == 80
        assert ok("history", "t", url=encoded_url) == before
    finally:
        engine.dispose()
