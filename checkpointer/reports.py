"""What the operations return: thread summaries and their pages, sweep reports and
database statistics. Plain frozen dataclasses with `as_dict()` (the CLI's `--json`
shape); no SQL, no I/O."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ThreadSummary:
    """One thread: its first and latest root checkpoint times (from their UUIDv6 ids),
    how many checkpoints it has (every namespace), and its latest root checkpoint."""

    thread_id: str
    created_at: datetime | None
    updated_at: datetime | None
    checkpoint_count: int
    checkpoint_id: str
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = _iso(self.created_at)
        out["updated_at"] = _iso(self.updated_at)
        return out


@dataclass(frozen=True)
class ThreadPage:
    """A page of threads, most recently updated first, and the cursor of the next page
    (None on the last)."""

    threads: list[ThreadSummary]
    cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"threads": [t.as_dict() for t in self.threads], "cursor": self.cursor}


def encode_cursor(checkpoint_id: str, thread_id: str) -> str:
    """An opaque keyset cursor: the last thread's latest id and thread id."""
    raw = json.dumps([checkpoint_id, thread_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (latest id, thread id) of a cursor from `encode_cursor`; ValueError if it is
    not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        checkpoint_id, thread_id = json.loads(raw)
    except (ValueError, TypeError) as e:
        raise ValueError(f"not a thread list cursor: {cursor!r}") from e
    if not isinstance(checkpoint_id, str) or not isinstance(thread_id, str):
        raise ValueError(f"not a thread list cursor: {cursor!r}")
    return checkpoint_id, thread_id


@dataclass
class SweepReport:
    """What a sweep removed (or, with `dry_run`, would remove). Bytes are approximate:
    documents measured as text, values as stored, indexes and page overhead left out.
    A `keep_latest` dry run cannot know which ancestors a chain needs: its checkpoint,
    write, blob and byte figures are upper bounds."""

    strategy: str
    dry_run: bool
    threads: int = 0
    checkpoints: int = 0
    blobs: int = 0
    writes: int = 0
    bytes: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TableStats:
    """One table: rows, bytes (PostgreSQL: with indexes and TOAST; SQLite: the values'
    sizes) and dead tuples (PostgreSQL; None on SQLite)."""

    table: str
    rows: int
    bytes: int
    dead_rows: int | None


@dataclass(frozen=True)
class ThreadSize:
    thread_id: str
    bytes: int


@dataclass(frozen=True)
class Stats:
    """What the database holds (`astats`)."""

    tables: list[TableStats]
    threads: int
    checkpoints: int
    oldest: datetime | None
    newest: datetime | None
    largest_threads: list[ThreadSize] = field(default_factory=list)
    database_bytes: int | None = None
    free_bytes: int | None = None
    """SQLite: the file's size and its free pages (given back by `VACUUM`)."""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["oldest"] = _iso(self.oldest)
        out["newest"] = _iso(self.newest)
        return out


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


__all__ = [
    "Stats",
    "SweepReport",
    "TableStats",
    "ThreadPage",
    "ThreadSize",
    "ThreadSummary",
    "decode_cursor",
    "encode_cursor",
]
