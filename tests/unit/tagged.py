"""JSON with tags for what JSON lacks, so recordings hold rows, params and results as
data files and come back as the same Python values.

`{"$bytes": base64}`, `{"$tuple": [...]}`, `{"$CheckpointTuple": {...}}`,
`{"$DeltaSnapshot": value}`, `{"$datetime": iso}`, `{"$timedelta": seconds}`, the
operations' result dataclasses (`{"$ThreadPage": {...}}`, ...), and
`{"$dict": [[key, value], ...]}` for a dict whose keys are not all plain strings (or
one that would look like a tag). Encoding is exact: `encode(a) == encode(b)` compares
types too (a tuple is not a list, bytes not str)."""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from checkpointer import reports

RESULTS = {
    cls.__name__: cls
    for cls in (
        reports.ThreadSummary,
        reports.ThreadPage,
        reports.SweepReport,
        reports.TableStats,
        reports.ThreadSize,
        reports.Stats,
    )
}
"""The operations' result dataclasses, tagged by class name."""


def encode(value: Any) -> Any:
    """A JSON-ready form of `value`; raises TypeError for a type it has no tag for."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"no tag for the float {value!r}")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, CheckpointTuple):
        return {"$CheckpointTuple": {k: encode(v) for k, v in value._asdict().items()}}
    if isinstance(value, _DeltaSnapshot):
        return {"$DeltaSnapshot": encode(value.value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$timedelta": value.total_seconds()}
    if type(value).__name__ in RESULTS and dataclasses.is_dataclass(value):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {f"${type(value).__name__}": fields}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$dict": [[encode(k), encode(v)] for k, v in value.items()]}
    raise TypeError(f"no tag for {type(value).__name__}: {value!r}")


def decode(data: Any) -> Any:
    """The Python value `encode` made `data` from."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        ((tag, inner),) = data.items()
        if tag == "$bytes":
            return base64.b64decode(inner)
        if tag == "$tuple":
            return tuple(decode(v) for v in inner)
        if tag == "$CheckpointTuple":
            return CheckpointTuple(**{k: decode(v) for k, v in inner.items()})
        if tag == "$DeltaSnapshot":
            return _DeltaSnapshot(decode(inner))
        if tag == "$dict":
            return {decode(k): decode(v) for k, v in inner}
        if tag == "$datetime":
            return datetime.fromisoformat(inner)
        if tag == "$timedelta":
            return timedelta(seconds=inner)
        if tag[1:] in RESULTS:
            return RESULTS[tag[1:]](**{k: decode(v) for k, v in inner.items()})
    return {k: decode(v) for k, v in data.items()}
