"""What the async and the sync saver share: the planner and channel versions."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol

from . import codec
from .plans import Planner
from .statements import for_dialect


class SaverBase(BaseCheckpointSaver[str]):
    """A checkpoint saver over SQLAlchemy: plans made here, executed by a subclass."""

    def __init__(self, dialect_name: str, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self._planner = Planner(for_dialect(dialect_name), self.serde)

    @property
    def plans(self) -> Planner:
        # `with_allowlist` clones the saver with another serde: follow it.
        if self._planner.serde is not self.serde:
            self._planner = Planner(self._planner.statements, self.serde)
        return self._planner

    def get_next_version(self, current: str | None, channel: Any = None) -> str:
        return codec.next_version(current)
