"""Checkpoints, metadata and writes to row values and back, through the saver's serde.

Pure functions: no SQLAlchemy, no I/O; rows read back by the labels `rows` names. What
goes where follows the official PostgreSQL saver so both can share a database:
primitives stay inline in the checkpoint document, every other channel value is a blob
row keyed by its channel version. Under a serde that encrypts (or otherwise hides) what
it stores, every channel value is a blob, so no value sits in clear in the JSON;
metadata always stays in clear (it is filtered on).
"""

from __future__ import annotations

import contextlib
import math
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.types import TASKS, _DeltaSnapshot

from .errors import BlobEncodingError
from .rows import (
    BLOB,
    CHANNEL,
    CHECKPOINT,
    CHECKPOINT_ID,
    CHECKPOINT_NS,
    IDX,
    METADATA,
    PARENT_CHECKPOINT_ID,
    TASK_ID,
    TASK_PATH,
    THREAD_ID,
    TYPE,
)

EMPTY = "empty"
"""Blob type of a channel that has a version but no value."""

ENCODED_PREFIX = "incremental/"
"""The `type` of blob rows written with `blob_encoding="incremental"` starts with this
(`checkpointer.incremental`): no serde type does."""


def refuse_encoded(type_: str | None, error: Exception) -> None:
    """After a serde failed on a row: if the row is an encoded one, say so and how to
    fix it (checked only once decoding failed, so plain reads pay nothing)."""
    if isinstance(type_, str) and type_.startswith(ENCODED_PREFIX):
        raise BlobEncodingError(
            f"a blob row has type {type_!r}: it was written with "
            'blob_encoding="incremental", which this saver does not have on; create the '
            'saver with blob_encoding="incremental", or rewrite the rows as plain blobs '
            "(`checkpointer decode-blobs URL`, or `saver.decode_blobs()`)"
        ) from error


class CheckpointRow(TypedDict):
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]


class BlobRow(TypedDict):
    thread_id: str
    checkpoint_ns: str
    channel: str
    version: str
    type: str
    blob: bytes | None


class WriteRow(TypedDict):
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    task_id: str
    task_path: str
    idx: int
    channel: str
    type: str | None
    blob: bytes


class Target(TypedDict):
    """Which checkpoint a config points at; `checkpoint_id` None means the latest."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str | None


def target(config: RunnableConfig | None, *, need_id: bool = False) -> Target:
    """Read thread, namespace and checkpoint id from a config, naming what is missing."""
    configurable = (config or {}).get("configurable")
    if not isinstance(configurable, Mapping):
        raise ValueError(
            f'config must have a "configurable" mapping with a "thread_id" key, got {config!r}'
        )
    thread_id = configurable.get("thread_id")
    if thread_id is None or thread_id == "":
        raise ValueError(
            'config["configurable"] has no "thread_id": pass {"configurable": {"thread_id": ...}}'
        )
    checkpoint_id = configurable.get("checkpoint_id") or None
    if need_id and checkpoint_id is None:
        raise ValueError('config["configurable"] has no "checkpoint_id"')
    where = Target(
        thread_id=str(thread_id),
        checkpoint_ns=str(configurable.get("checkpoint_ns") or ""),
        checkpoint_id=None if checkpoint_id is None else str(checkpoint_id),
    )
    for key, value in where.items():
        if isinstance(value, str) and "\x00" in value:
            # PostgreSQL text cannot hold NUL; refuse it on every dialect alike.
            raise ValueError(f'config["configurable"]["{key}"] contains a NUL character')
    return where


def thread_key(thread_id: object) -> str:
    """A thread id given on its own (`delete_thread`), checked like a config's."""
    if thread_id is None or thread_id == "":
        raise ValueError(f"thread_id must be a non-empty id, got {thread_id!r}")
    return target({"configurable": {"thread_id": thread_id}})["thread_id"]


def _is_inline(value: Any) -> bool:
    """Whether a channel value can live in the JSON document itself."""
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)  # JSON has no NaN or infinity
    if isinstance(value, str):
        return "\x00" not in value  # PostgreSQL JSONB cannot hold NUL
    return False


_inlines: weakref.WeakKeyDictionary[SerializerProtocol, bool] = weakref.WeakKeyDictionary()


def inlines_primitives(serde: SerializerProtocol) -> bool:
    """Whether primitive channel values may stay inline in the checkpoint document:
    only when `serde` itself would store them in clear. An `EncryptedSerializer` never
    does; any other serde is probed once with a random string, and one that does not
    carry that string's bytes as they are (it encrypts, compresses or encodes them) gets
    every value as a blob, so nothing it would hide sits readable in the JSON.

    The probe, not only the type check, catches ciphers wrapped in a serde of the
    application's own; a serde that hides nothing keeps the official saver's layout.
    Cached per serde object (one `dumps_typed` per saver, not per `put`)."""
    try:
        return _inlines[serde]
    except KeyError:
        pass
    except TypeError:  # neither hashable nor weakly referable: decide every time
        return _probe_plaintext(serde)
    answer = _probe_plaintext(serde)
    with contextlib.suppress(TypeError):
        _inlines[serde] = answer
    return answer


def _probe_plaintext(serde: SerializerProtocol) -> bool:
    if isinstance(serde, EncryptedSerializer):
        return False
    marker = f"checkpointer-plaintext-probe-{uuid.uuid4().hex}"
    _, data = serde.dumps_typed(marker)
    return isinstance(data, (bytes, bytearray, memoryview)) and marker.encode() in bytes(data)


METADATA_MAX_DEPTH = 100
"""How deeply metadata (and a `list` filter) may nest objects and arrays. Deeper input
is refused with a `ValueError` before any recursion limit is near (Python's default is
1,000 frames; LangGraph's own metadata is two levels deep)."""


def clean_json(value: Any, where: str = "metadata") -> Any:
    """A JSON-storable copy of metadata: NUL characters stripped from every string and
    key (PostgreSQL JSONB refuses them; LangGraph itself strips them from top-level
    values), keys sorted so equal documents compare equal as text, tuples as lists.

    Nothing is lost silently: two keys of one object that differ only by NUL
    characters (`{"a": 1, "a\\x00": 2}`) would become one key, so they raise
    `ValueError` naming both and where they are, as does nesting deeper than
    `METADATA_MAX_DEPTH`. Anything JSON cannot hold raises `TypeError` naming it."""
    return _clean(value, where, (), 0)


def _clean(value: Any, root: str, path: tuple[Any, ...], depth: int) -> Any:
    # The path is a tuple of keys, formatted only for an error message.
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{_at(root, path)} holds {value!r}, which JSON cannot store")
        return value
    if isinstance(value, (Mapping, list, tuple)) and depth >= METADATA_MAX_DEPTH:
        raise ValueError(
            f"{root} is nested more than {METADATA_MAX_DEPTH} levels deep (at "
            f"{_at(root, path)}): the limit is {METADATA_MAX_DEPTH} nested objects or "
            "arrays; store deep structures in channel values (blobs), not in metadata"
        )
    if isinstance(value, Mapping):
        out = {}
        seen: dict[str, str] = {}
        for k in sorted(value, key=str):
            if not isinstance(k, str):
                raise TypeError(f"{_at(root, path)} has a non-string key {k!r}")
            key = k.replace("\x00", "") if "\x00" in k else k
            if key in seen:
                first, second = sorted((seen[key], k))
                raise ValueError(
                    f"{_at(root, path)} has keys {first!r} and {second!r}, which differ only "
                    f"by NUL characters: PostgreSQL cannot store NUL, so both would be "
                    f"stored as {key!r} and one value lost; rename one of them"
                )
            seen[key] = k
            out[key] = _clean(value[k], root, (*path, k), depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_clean(v, root, (*path, i), depth + 1) for i, v in enumerate(value)]
    raise TypeError(
        f"{_at(root, path)} holds a {type(value).__name__}, which is not JSON: "
        "checkpoint metadata must be JSON-serializable"
    )


def _at(root: str, path: tuple[Any, ...], shown: int = 6) -> str:
    """`metadata['a'][0]`; a long path keeps its first and last keys."""
    parts = [f"[{p!r}]" for p in path]
    if len(parts) > 2 * shown:
        parts = [*parts[:shown], f"...({len(parts) - 2 * shown} more)...", *parts[-shown:]]
    return root + "".join(parts)


def encode_metadata(config: RunnableConfig, metadata: CheckpointMetadata) -> dict[str, Any]:
    return cast(
        dict[str, Any],
        clean_json(get_serializable_checkpoint_metadata(config, metadata)),
    )


def encode_checkpoint(
    serde: SerializerProtocol,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> tuple[CheckpointRow, list[BlobRow]]:
    """The checkpoint row and the blob rows of the channels `new_versions` names."""
    where = target(config)
    document: dict[str, Any] = dict(checkpoint)
    inline: dict[str, Any] = {}
    blob_values: dict[str, Any] = {}
    inlines = inlines_primitives(serde)
    for channel, value in checkpoint["channel_values"].items():
        if isinstance(value, _DeltaSnapshot):
            blob_values[channel] = value
            inline[channel] = True  # marker: the snapshot is in the blobs table
        elif inlines and _is_inline(value):
            inline[channel] = value
        else:
            blob_values[channel] = value
    document["channel_values"] = inline
    blobs: list[BlobRow] = []
    for channel, version in new_versions.items():
        if channel in blob_values:
            type_, data = serde.dumps_typed(blob_values[channel])
        elif channel in inline:
            continue
        else:
            type_, data = EMPTY, None
        blobs.append(
            BlobRow(
                thread_id=where["thread_id"],
                checkpoint_ns=where["checkpoint_ns"],
                channel=channel,
                version=str(version),
                type=type_,
                blob=data,
            )
        )
    row = CheckpointRow(
        thread_id=where["thread_id"],
        checkpoint_ns=where["checkpoint_ns"],
        checkpoint_id=checkpoint["id"],
        parent_checkpoint_id=where["checkpoint_id"],
        checkpoint=document,
        metadata=encode_metadata(config, metadata),
    )
    return row, blobs


def encode_writes(
    serde: SerializerProtocol,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> list[WriteRow]:
    where = target(config, need_id=True)
    rows = []
    for idx, (channel, value) in enumerate(writes):
        type_, data = serde.dumps_typed(value)
        rows.append(
            WriteRow(
                thread_id=where["thread_id"],
                checkpoint_ns=where["checkpoint_ns"],
                checkpoint_id=cast(str, where["checkpoint_id"]),
                task_id=task_id,
                task_path=task_path,
                idx=WRITES_IDX_MAP.get(channel, idx),
                channel=channel,
                type=type_,
                blob=data,
            )
        )
    return rows


def next_version(current: str | int | float | None) -> str:
    """`<32-digit counter>.<16-digit random>`: the official saver's format, so versions
    written by either saver order the same way."""
    import random

    if current is None:
        number = 0
    elif isinstance(current, (int, float)):
        number = int(current)
    else:
        number = int(current.split(".")[0])
    return f"{number + 1:032}.{random.random():016}"


def sort_writes(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rows, key=lambda r: writes_sort_key(r[TASK_PATH] or "", r[TASK_ID], r[IDX]))


def decode_writes(
    serde: SerializerProtocol, rows: Iterable[Mapping[str, Any]]
) -> list[PendingWrite]:
    """Pending writes in `writes_sort_key` order, the order LangGraph applies them."""
    return [
        (r[TASK_ID], r[CHANNEL], serde.loads_typed((r[TYPE], r[BLOB]))) for r in sort_writes(rows)
    ]


def decode_tuple(
    serde: SerializerProtocol,
    row: Mapping[str, Any],
    blobs: Iterable[Mapping[str, Any]],
    writes: Iterable[Mapping[str, Any]],
    parent_sends: Iterable[Mapping[str, Any]] = (),
) -> CheckpointTuple:
    """A `CheckpointTuple` from its checkpoint row, the blob rows its versions name,
    its writes, and (for checkpoints older than format 4) its parent's TASKS writes."""
    document = dict(row[CHECKPOINT])
    values = dict(document.get("channel_values") or {})
    for blob in blobs:
        if blob[TYPE] != EMPTY:
            try:
                values[blob[CHANNEL]] = serde.loads_typed((blob[TYPE], blob[BLOB]))
            except Exception as error:
                refuse_encoded(blob[TYPE], error)
                raise
    document["channel_values"] = values
    if document.get("v", 0) < 4 and row[PARENT_CHECKPOINT_ID]:
        sends = sort_writes(parent_sends)
        if sends:
            values[TASKS] = [serde.loads_typed((s[TYPE], s[BLOB])) for s in sends]
            versions = dict(document.get("channel_versions") or {})
            versions[TASKS] = max(versions.values()) if versions else next_version(None)
            document["channel_versions"] = versions
    thread_id, ns = row[THREAD_ID], row[CHECKPOINT_NS]
    parent = row[PARENT_CHECKPOINT_ID]
    return CheckpointTuple(
        config=_config(thread_id, ns, row[CHECKPOINT_ID]),
        checkpoint=cast(Checkpoint, document),
        metadata=cast(CheckpointMetadata, row[METADATA]),
        parent_config=_config(thread_id, ns, parent) if parent else None,
        pending_writes=decode_writes(serde, writes),
    )


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def next_config(row: CheckpointRow) -> RunnableConfig:
    return _config(row["thread_id"], row["checkpoint_ns"], row["checkpoint_id"])
