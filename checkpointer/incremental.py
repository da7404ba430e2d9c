"""The opt-in incremental blob encoding (`blob_encoding="incremental"`): a channel value
that mostly repeats an earlier stored version of the same channel (a growing message
list) is stored as a zstd frame compressed with that version's bytes as its dictionary.

Pure: no SQLAlchemy, no I/O. `plans` asks `Encoder` to encode a checkpoint's blob rows
and to decode rows read back; what it needs from the database (a base no read brought)
it names as keys for the plan to fetch.

Rows (the `type` column says which; the serde's own type travels inside the blob):
- a plain row: what every saver writes (values under `MIN_SIZE`, or that compress badly);
- `FULL`: a zstd frame of the whole value, a chain's base;
- `DELTA` + base version: a zstd frame compressed with the base's bytes as a raw-content
  dictionary. A delta's base is a plain or `FULL` row of the same thread, namespace and
  channel, never another delta: a read decodes at most two rows per channel.

A new base is written when `MAX_DELTAS` deltas reference the current one, or when the
deltas written against it add up to more bytes than the base itself (for a list that
grows by a fixed amount per step, this keeps the bytes per step near their minimum:
each delta grows with the distance to its base, each base with the list).

The previous version's bytes come from `Memory`, a bounded per-saver cache of the last
checkpoint each thread wrote or read: its channels' versions and the bases' bytes. A put
whose parent checkpoint is not the remembered one writes full copies (no extra round
trip, ever); the cache is updated only after the put committed.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .codec import EMPTY, ENCODED_PREFIX, BlobRow, CheckpointRow

PREFIX = ENCODED_PREFIX
"""Every encoded row's `type` starts with this; no serde type does."""
FULL = PREFIX + "full"
DELTA = PREFIX + "delta:"
"""A delta's `type`: this, then its base's version."""

NAME = "incremental"
"""The `blob_encoding` value that turns the encoding on (`PLAIN` is the default)."""
PLAIN = "plain"
AUTO = "auto"
"""Follow the database: read encoded rows where it records them, never turn the encoding
on (the `checkpointer` command's savers)."""
ENCODINGS = (PLAIN, NAME, AUTO)

SETTING = "blob_encoding"
"""The `checkpointer_settings` row that records encoded rows may exist."""

MIN_SIZE = 1024
"""Values smaller than this stay plain rows: the agent-step benchmark's small values
cost no compression and read as they always did."""
MAX_DELTAS = 64
"""Deltas against one base at most (measured on the growing thread: 64 against 16
changes the bytes by 10%, the deltas' CPU not at all)."""
LEVEL = 3
"""zstd level: 1-3 cost the same on these sizes; higher levels cost 3-10x the CPU."""

MEMORY_BYTES = 64 * 2**20
"""Bytes of base values `Memory` keeps at most (least recently used threads go first)."""
MEMORY_THREADS = 4096

_HEADER = struct.Struct("<BHI")  # type length, deltas so far, delta bytes so far


def is_encoded(type_: str | None) -> bool:
    return type_ is not None and type_.startswith(PREFIX)


def base_version(type_: str) -> str | None:
    """The base version a delta row names, None for a full copy."""
    return type_[len(DELTA) :] if type_.startswith(DELTA) else None


def require_zstd() -> None:
    """Fail at the saver's creation, not at its first large value, without zstandard."""
    _zstd()


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            'blob_encoding="incremental" needs the zstandard package: '
            "pip install 'langgraph-checkpoint-sqlalchemy[incremental]'"
        ) from error
    return zstandard


_local = threading.local()


def _full_compressor() -> Any:
    """A zstd compressor without dictionary, one per thread (not thread-safe; making
    one allocates its tables: 0.3 ms, measured)."""
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = _zstd().ZstdCompressor(
            level=LEVEL, write_content_size=True
        )
    return compressor


class Base:
    """A version stored whole (plain or `FULL`): its bytes, what it takes in the table,
    and its zstd dictionary, made once and shared by every delta against it."""

    __slots__ = ("_compressor", "_decompressor", "_lock", "raw", "stored", "version")

    def __init__(self, version: str, raw: bytes, stored: int) -> None:
        self.version, self.raw, self.stored = version, raw, stored
        self._compressor: Any = None
        self._decompressor: Any = None
        self._lock = threading.Lock()  # zstd contexts are not thread-safe (sync saver)

    def _dictionary(self) -> Any:
        z = _zstd()
        return z.ZstdCompressionDict(self.raw, dict_type=z.DICT_TYPE_RAWCONTENT)

    def compress(self, data: bytes) -> bytes:
        with self._lock:
            if self._compressor is None:
                z = _zstd()
                d = self._dictionary()
                d.precompute_compress(level=LEVEL)
                self._compressor = z.ZstdCompressor(dict_data=d, write_content_size=True)
            return bytes(self._compressor.compress(data))

    def decompress(self, frame: bytes) -> bytes:
        with self._lock:
            if self._decompressor is None:
                self._decompressor = _zstd().ZstdDecompressor(dict_data=self._dictionary())
            return bytes(self._decompressor.decompress(frame))


@dataclass
class Head:
    """A channel's stored value at a remembered checkpoint."""

    version: str
    base: Base
    deltas: int = 0
    """Deltas against `base` up to this version (0: this version is the base)."""
    delta_bytes: int = 0


@dataclass
class Known:
    """What a saver last wrote or read of one thread and namespace."""

    checkpoint_id: str
    channels: dict[str, Head] = field(default_factory=dict)

    def size(self) -> int:
        return sum(
            len(b.raw) for b in {id(h.base): h.base for h in self.channels.values()}.values()
        )


class Memory:
    """Per saver: the last checkpoint written or read per (thread, namespace), least
    recently used evicted first, at most `MEMORY_BYTES` of base values."""

    def __init__(self, max_bytes: int = MEMORY_BYTES, max_threads: int = MEMORY_THREADS) -> None:
        self.max_bytes, self.max_threads = max_bytes, max_threads
        self._known: OrderedDict[tuple[str, str], tuple[Known, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, str]) -> Known | None:
        found = self._known.get(key)
        if found is None:
            return None
        self._known.move_to_end(key)
        return found[0]

    def put(self, key: tuple[str, str], known: Known) -> None:
        self.forget(key)
        size = known.size()
        if size > self.max_bytes:
            return
        self._known[key] = (known, size)
        self._bytes += size
        while self._bytes > self.max_bytes or len(self._known) > self.max_threads:
            _, (_, dropped) = self._known.popitem(last=False)
            self._bytes -= dropped

    def forget(self, key: tuple[str, str]) -> None:
        old = self._known.pop(key, None)
        if old is not None:
            self._bytes -= old[1]

    def clear(self) -> None:
        self._known.clear()
        self._bytes = 0


def _pack(type_: str, frame: bytes, deltas: int = 0, delta_bytes: int = 0) -> bytes:
    name = type_.encode()
    if len(name) > 255:
        raise ValueError(f"serde type {type_!r} is longer than 255 bytes")
    return _HEADER.pack(len(name), min(deltas, 0xFFFF), min(delta_bytes, 0xFFFFFFFF)) + name + frame


def _unpack(blob: bytes) -> tuple[str, int, int, bytes]:
    n, deltas, delta_bytes = _HEADER.unpack_from(blob)
    start = _HEADER.size
    return blob[start : start + n].decode(), deltas, delta_bytes, blob[start + n :]


class MissingBaseError(LookupError):
    """A delta row's base is not in the database (see `Encoder.decode`)."""


class Encoder:
    """Encodes a checkpoint's blob rows against the remembered previous versions and
    decodes rows read back; owns the saver's `Memory`."""

    def __init__(self, memory: Memory | None = None, writes: bool = True) -> None:
        self.memory = memory if memory is not None else Memory()
        self.writes = writes
        """Encode what is written; False: only decode what is read (`AUTO` until the
        database says it holds encoded rows)."""

    # -- writing -------------------------------------------------------------------

    def encode(
        self, row: CheckpointRow, blobs: list[BlobRow]
    ) -> tuple[list[BlobRow], Callable[[], None]]:
        """The rows to store instead of `blobs`, and what to remember once they are
        committed (call it then, and only then: a delta must never name a base that a
        rolled-back put would have written)."""
        key = (row["thread_id"], row["checkpoint_ns"])
        known = self.memory.get(key)
        if known is not None and known.checkpoint_id != row["parent_checkpoint_id"]:
            known = None  # another writer's parent, a fork, or a restart: full copies
        heads: dict[str, Head] = {}
        dropped: set[str] = set()
        out: list[BlobRow] = []
        for blob in blobs:
            data = blob["blob"]
            if blob["type"] == EMPTY or data is None or len(data) < MIN_SIZE:
                out.append(blob)
                dropped.add(blob["channel"])
                continue
            previous = known.channels.get(blob["channel"]) if known is not None else None
            encoded = self._delta(blob, data, previous) if previous is not None else None
            if encoded is None:
                encoded = self._full(blob, data)
            out.append(encoded[0])
            heads[blob["channel"]] = encoded[1]
        versions = row["checkpoint"].get("channel_versions") or {}

        def remember() -> None:
            channels = {}
            if known is not None:
                channels = {
                    ch: h
                    for ch, h in known.channels.items()
                    if ch not in dropped and str(versions.get(ch)) == h.version
                }
            channels.update(heads)
            if channels:
                self.memory.put(key, Known(row["checkpoint_id"], channels))
            else:
                self.memory.forget(key)

        return out, remember

    def _delta(self, blob: BlobRow, data: bytes, previous: Head) -> tuple[BlobRow, Head] | None:
        base = previous.base
        if previous.deltas >= MAX_DELTAS or previous.delta_bytes >= base.stored:
            return None
        frame = base.compress(data)
        total = previous.delta_bytes + len(frame)
        if total > base.stored:
            return None  # a new base costs less than deltas against this one from here
        packed = _pack(blob["type"], frame, previous.deltas + 1, total)
        head = Head(blob["version"], base, previous.deltas + 1, total)
        return BlobRow(**{**blob, "type": DELTA + base.version, "blob": packed}), head

    def _full(self, blob: BlobRow, data: bytes) -> tuple[BlobRow, Head]:
        frame = _full_compressor().compress(data)
        packed = _pack(blob["type"], frame)
        if len(packed) >= len(data):  # incompressible: a plain row is a base as well
            return blob, Head(blob["version"], Base(blob["version"], data, len(data)))
        row = BlobRow(**{**blob, "type": FULL, "blob": packed})
        return row, Head(blob["version"], Base(blob["version"], data, len(packed)))

    # -- reading -------------------------------------------------------------------

    def missing(
        self, rows: Iterable[Mapping[str, Any]]
    ) -> dict[tuple[str, str], set[tuple[str, str]]]:
        """Per (thread, namespace), the (channel, version) of the bases that the delta
        rows among `rows` need and that neither `rows` nor `Memory` hold."""
        present = {_key(r) for r in rows if r.get("version") is not None}
        need: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for r in rows:
            version = base_version(r["type"]) if is_encoded(r.get("type")) else None
            if version is None:
                continue
            thread, ns, channel = r["thread_id"], r["checkpoint_ns"], r["channel"]
            if (thread, ns, channel, version) in present:
                continue
            if self._remembered(thread, ns, channel, version) is not None:
                continue
            need.setdefault((thread, ns), set()).add((channel, version))
        return need

    def _remembered(self, thread: str, ns: str, channel: str, version: str) -> Base | None:
        known = self.memory.get((thread, ns))
        if known is None:
            return None
        head = known.channels.get(channel)
        return head.base if head is not None and head.base.version == version else None

    def decode(
        self,
        rows: Sequence[Mapping[str, Any]],
        fetched: Iterable[Mapping[str, Any]] = (),
        remember: tuple[str, str, str] | None = None,
    ) -> list[Mapping[str, Any]]:
        """`rows` with every encoded blob row replaced by its plain equivalent (the
        serde's type, the value's bytes); `fetched` are base rows a further statement
        read. With `remember` (thread, namespace, checkpoint id: `get_tuple` read it), its channels'
        stored versions are remembered for the next put. A delta whose base is nowhere
        raises `MissingBaseError`."""
        stored: dict[tuple[str, str, str, str], Mapping[str, Any]] = {}
        for r in (*rows, *fetched):
            if r.get("version") is not None and r.get("type") is not None:
                stored.setdefault(_key(r), r)
        bases: dict[tuple[str, str, str, str], Base] = {}

        def base_of(thread: str, ns: str, channel: str, version: str) -> Base:
            k = (thread, ns, channel, version)
            if k in bases:
                return bases[k]
            found = self._remembered(thread, ns, channel, version)
            if found is None:
                r = stored.get(k)
                if r is None or base_version(r["type"] or "") is not None:
                    raise MissingBaseError(
                        f"blob {channel!r} of thread {thread!r} (namespace {ns!r}) is stored "
                        f"as a difference from version {version!r}, which is not in the "
                        "database"
                    )
                found = Base(version, plain(r["type"], r["blob"])[1], len(r["blob"] or b""))
            bases[k] = found
            return found

        out: list[Mapping[str, Any]] = []
        heads: dict[str, Head] = {}
        for r in rows:
            type_ = r.get("type")
            if not is_encoded(type_):
                if remember is not None and _is_large(r):
                    heads[r["channel"]] = Head(str(r["version"]), self._base_row(r, r["blob"]))
                out.append(r)
                continue
            assert type_ is not None
            version = base_version(type_)
            if version is None:
                # a full copy this saver holds (it wrote or read it last): no decompression
                held = (
                    self._remembered(r["thread_id"], r["checkpoint_ns"], r["channel"], v)
                    if (v := r.get("version")) is not None
                    else None
                )
                if held is not None:
                    serde_type, data = _unpack(r["blob"])[0], held.raw
                else:
                    serde_type, data = plain(type_, r["blob"])
                if remember is not None:
                    base = held or Base(str(r["version"]), data, len(r["blob"]))
                    heads[r["channel"]] = Head(str(r["version"]), base)
            else:
                base = base_of(r["thread_id"], r["checkpoint_ns"], r["channel"], version)
                serde_type, deltas, delta_bytes, frame = _unpack(r["blob"])
                data = base.decompress(frame)
                if remember is not None:
                    heads[r["channel"]] = Head(str(r["version"]), base, deltas, delta_bytes)
            out.append({**r, "type": serde_type, "blob": data})
        if remember is not None:
            key = (remember[0], remember[1])
            if heads:
                self.memory.put(key, Known(remember[2], heads))
            else:
                self.memory.forget(key)
        return out

    def _base_row(self, r: Mapping[str, Any], data: bytes) -> Base:
        """The `Base` of a plain row read back: the one this saver holds (its zstd
        dictionary already built), else a new one."""
        v = str(r["version"])
        held = self._remembered(r["thread_id"], r["checkpoint_ns"], r["channel"], v)
        return held if held is not None else Base(v, data, len(data))


def plain(type_: str, blob: bytes | None) -> tuple[str, bytes]:
    """A full copy's (or a plain row's) serde type and bytes."""
    if not is_encoded(type_):
        return type_, blob or b""
    if base_version(type_) is not None:
        raise ValueError(f"a delta row ({type_!r}) cannot be decoded without its base")
    serde_type, _, _, frame = _unpack(blob or b"")
    return serde_type, bytes(_zstd().ZstdDecompressor().decompress(frame))


def _is_large(r: Mapping[str, Any]) -> bool:
    blob = r.get("blob")
    return blob is not None and r.get("type") != EMPTY and len(blob) >= MIN_SIZE


def _key(r: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (r["thread_id"], r["checkpoint_ns"], r["channel"], str(r["version"]))
