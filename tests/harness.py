"""End-to-end harness: run one scenario against our saver and against `InMemorySaver`,
in sync (`invoke`, from a worker thread with no event loop, like a Flask or Celery app)
or async (`ainvoke`) mode, and compare what LangGraph reports.

A scenario records observations (invoke results, `get_state`, `get_state_history`,
interrupts) through a `Recorder`, which normalizes them: checkpoint ids differ between
savers, so each id becomes a label in order of first appearance (`#0`, `#1`, ...), and
task ids inside namespaces are dropped. Equal records then mean the same checkpoint
tree, values, `next`, metadata step/source/parents, tasks and interrupts.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.types import Interrupt, PregelTask, Send, StateSnapshot
from sqlalchemy import make_url

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver

Mode = Literal["sync", "async"]
MODES: list[Mode] = ["sync", "async"]


def driver_url(url: str, mode: Mode) -> str:
    """The migrated database `url` (an async driver's URL) through the driver each
    mode uses: psycopg / asyncpg on PostgreSQL, sqlite3 / aiosqlite on SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        driver = "postgresql+psycopg" if mode == "sync" else "postgresql+asyncpg"
    else:
        driver = "sqlite" if mode == "sync" else "sqlite+aiosqlite"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


# -- normalizing what LangGraph reports ------------------------------------------------


def _namespace(ns: str) -> str:
    """`parent:<task id>|child:<task id>` -> `parent|child` (task ids embed checkpoint ids)."""
    return "|".join(part.split(":")[0] for part in ns.split("|")) if ns else ""


@dataclass
class Recorder:
    """Collects normalized observations of one scenario run."""

    labels: dict[str, str] = field(default_factory=dict)
    items: list[tuple[str, Any]] = field(default_factory=list)

    def __call__(self, what: str, observed: Any) -> Any:
        self.items.append((what, self.norm(observed)))
        return observed

    def label(self, checkpoint_id: str | None) -> str | None:
        if checkpoint_id is None:
            return None
        return self.labels.setdefault(checkpoint_id, f"#{len(self.labels)}")

    def config(self, config: Mapping[str, Any] | None) -> Any:
        if config is None:
            return None
        conf = config.get("configurable", {})
        return {
            "thread_id": conf.get("thread_id"),
            "ns": _namespace(conf.get("checkpoint_ns", "")),
            "checkpoint": self.label(conf.get("checkpoint_id")),
        }

    def metadata(self, metadata: Mapping[str, Any] | None) -> Any:
        if metadata is None:
            return None
        parents = metadata.get("parents", {})
        return {
            "step": metadata.get("step"),
            "source": metadata.get("source"),
            "parents": {_namespace(ns): self.label(cid) for ns, cid in parents.items()},
        }

    def norm(self, value: Any) -> Any:
        if isinstance(value, StateSnapshot):
            return {
                "values": self.norm(value.values),
                "next": value.next,
                "config": self.config(value.config),
                "metadata": self.metadata(value.metadata),
                "parent": self.config(value.parent_config),
                "tasks": [self.norm(task) for task in value.tasks],
                "interrupts": [self.norm(i) for i in value.interrupts],
            }
        if isinstance(value, PregelTask):
            return {
                "name": value.name,
                "path": self.norm(value.path),
                "error": None if value.error is None else self.norm(value.error),
                "interrupts": [self.norm(i) for i in value.interrupts],
                "state": self.norm(value.state),
                "result": self.norm(value.result),
            }
        if isinstance(value, Interrupt):
            return {"interrupt": self.norm(value.value)}
        if isinstance(value, BaseException):
            return {"error": type(value).__name__, "message": str(value)}
        if isinstance(value, BaseMessage):
            return {"message": value.type, "content": value.content, "id": value.id}
        if isinstance(value, Send):
            return {"send": value.node, "arg": self.norm(value.arg)}
        if isinstance(value, _DeltaSnapshot):
            return {"delta_snapshot": self.norm(value.value)}
        if isinstance(value, Mapping):
            if "configurable" in value:
                return self.config(value)
            return {k: self.norm(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.norm(v) for v in value]
        return value


# -- running graphs in either mode -----------------------------------------------------


@dataclass
class Session:
    """One open saver, and how to drive graphs on it in this mode."""

    mode: Mode
    saver: BaseCheckpointSaver[Any]

    async def _call(
        self,
        sync: Callable[..., Any],
        async_: Callable[..., Awaitable[Any]],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if self.mode == "sync":
            return await asyncio.to_thread(functools.partial(sync, *args, **kwargs))
        return await async_(*args, **kwargs)

    async def invoke(self, graph: Any, input: Any, config: Any, **kwargs: Any) -> Any:
        return await self._call(graph.invoke, graph.ainvoke, input, config, **kwargs)

    async def get_state(self, graph: Any, config: Any, *, subgraphs: bool = False) -> Any:
        return await self._call(graph.get_state, graph.aget_state, config, subgraphs=subgraphs)

    async def history(self, graph: Any, config: Any, **kwargs: Any) -> list[StateSnapshot]:
        if self.mode == "sync":
            return await asyncio.to_thread(lambda: list(graph.get_state_history(config, **kwargs)))
        return [s async for s in graph.aget_state_history(config, **kwargs)]

    async def update_state(
        self, graph: Any, config: Any, values: Any, as_node: str | None = None
    ) -> Any:
        return await self._call(
            graph.update_state, graph.aupdate_state, config, values, as_node=as_node
        )

    async def checkpoints(self, config: Any) -> list[Any]:
        """The raw `CheckpointTuple`s the saver lists for `config`."""
        if self.mode == "sync":
            return await asyncio.to_thread(lambda: list(self.saver.list(config)))
        return [t async for t in self.saver.alist(config)]


class Backend:
    """Opens sessions on one saver kind. `reopen` means a new saver (and, for ours,
    a new engine): state must survive closing the previous one."""

    def __init__(self, mode: Mode, url: str | None) -> None:
        self.mode = mode
        self.url = url
        self._memory = InMemorySaver() if url is None else None

    @property
    def name(self) -> str:
        return "InMemorySaver" if self.url is None else "ours"

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Session]:
        if self._memory is not None:
            yield Session(self.mode, self._memory)
        elif self.mode == "sync":
            with self._sync_saver() as saver:
                yield Session(self.mode, saver)
        else:
            async with AsyncSQLAlchemySaver.from_conn_string(self.url) as asaver:  # type: ignore[arg-type]
                yield Session(self.mode, asaver)
                assert asaver.engine.pool.checkedout() == 0, "a connection was left checked out"

    @contextmanager
    def _sync_saver(self) -> Iterator[SQLAlchemySaver]:
        with SQLAlchemySaver.from_conn_string(self.url) as saver:  # type: ignore[arg-type]
            yield saver
            assert saver.engine.pool.checkedout() == 0, "a connection was left checked out"


Scenario = Callable[[Backend, Recorder], Awaitable[None]]


async def compare(scenario: Scenario, mode: Mode, db_url: str) -> list[tuple[str, Any]]:
    """Run `scenario` on our saver and on `InMemorySaver`; they must report the same."""
    ours, reference = Recorder(), Recorder()
    await scenario(Backend(mode, driver_url(db_url, mode)), ours)
    await scenario(Backend(mode, None), reference)
    assert reference.items, "the scenario recorded nothing"
    assert [what for what, _ in ours.items] == [what for what, _ in reference.items]
    for (what, got), (_, expected) in zip(ours.items, reference.items, strict=True):
        assert got == expected, f"{what}: our saver differs from InMemorySaver"
    return ours.items
