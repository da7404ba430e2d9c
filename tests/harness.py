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
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.types import Interrupt, PregelTask, Send, StateSnapshot
from sqlalchemy import create_engine, make_url

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.migrations import upgrade

from . import mysql_server
from .conftest import _create_database as create_database
from .conftest import drop_database, pg_database_url

Mode = Literal["sync", "async"]
MODES: list[Mode] = ["sync", "async"]


def driver_url(url: str, mode: Mode, async_pg: str = "asyncpg") -> str:
    """The migrated database `url` (an async driver's URL) through the driver each
    mode uses: psycopg / `async_pg` on PostgreSQL, sqlite3 / aiosqlite on SQLite."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        driver = "postgresql+psycopg" if mode == "sync" else f"postgresql+{async_pg}"
    elif backend in ("mysql", "mariadb"):
        driver = f"{backend}+pymysql" if mode == "sync" else f"{backend}+asyncmy"
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
    """Opens sessions on one saver kind. Each `open()` is a new saver (and, for ours, a
    new engine): state must survive closing the previous one. With `alternate`, the
    sessions take turns between the sync and the async saver on the same database."""

    def __init__(
        self,
        mode: Mode,
        url_for: Callable[[Mode], str] | None,
        *,
        alternate: bool = False,
        run: str = "",
    ) -> None:
        self.mode = mode
        self.url_for = url_for
        self.alternate = alternate
        self.run = run
        self._memory = InMemorySaver() if url_for is None else None

    def thread(self, name: str) -> str:
        """A thread id of this comparison: tests share one database per module."""
        return f"{name}-{self.run}" if self.run else name

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Session]:
        mode = self.mode
        if self.alternate:
            self.mode = "async" if mode == "sync" else "sync"
        if self.url_for is None:
            assert self._memory is not None
            yield Session(mode, self._memory)
        elif mode == "sync":
            with self._sync_saver(self.url_for(mode)) as saver:
                yield Session(mode, saver)
        else:
            async with AsyncSQLAlchemySaver.from_conn_string(self.url_for(mode)) as asaver:
                yield Session(mode, asaver)
                assert asaver.engine.pool.checkedout() == 0, "a connection was left checked out"

    @contextmanager
    def _sync_saver(self, url: str) -> Iterator[SQLAlchemySaver]:
        with SQLAlchemySaver.from_conn_string(url) as saver:
            yield saver
            assert saver.engine.pool.checkedout() == 0, "a connection was left checked out"


Scenario = Callable[[Backend, Recorder], Awaitable[None]]


def shared_database(
    dialect: str, pg_template: str, tmp: Path, request: pytest.FixtureRequest | None = None
) -> Iterator[str]:
    """A migrated database (async driver URL) shared by one module's comparisons, which
    keep apart by thread id: one clone per module instead of one per test."""
    if dialect == "mysql":
        assert request is not None
        template = request.getfixturevalue("mysql_template")
        name = mysql_server.new_name("cp_e2e")
        mysql_server.create_database(name, template=template)
        try:
            yield mysql_server.url_string(name)
        finally:
            mysql_server.drop_database(name)
        return
    if dialect == "postgresql":
        name = f"cp_e2e_{uuid.uuid4().hex[:10]}"
        create_database(name, template=pg_template)
        try:
            yield pg_database_url(name)
        finally:
            drop_database(name)
        return
    url = f"sqlite+aiosqlite:///{tmp / 'e2e.db'}"
    engine = create_engine(driver_url(url, "sync"))
    with engine.connect() as conn:
        upgrade(conn)
    engine.dispose()
    yield url


async def compare(
    scenario: Scenario,
    mode: Mode,
    db_url: str,
    *,
    alternate: bool = False,
    async_pg: str = "asyncpg",
) -> list[tuple[str, Any]]:
    """Run `scenario` on our saver and on `InMemorySaver`; they must report the same."""
    ours, reference = Recorder(), Recorder()

    def url_for(session_mode: Mode) -> str:
        return driver_url(db_url, session_mode, async_pg)

    run = uuid.uuid4().hex[:12]
    await scenario(Backend(mode, url_for, alternate=alternate, run=run), ours)
    await scenario(Backend(mode, None, alternate=alternate, run=run), reference)
    assert reference.items, "the scenario recorded nothing"
    assert [what for what, _ in ours.items] == [what for what, _ in reference.items]
    for (what, got), (_, expected) in zip(ours.items, reference.items, strict=True):
        assert got == expected, f"{what}: our saver differs from InMemorySaver"
    return ours.items


def module_database(
    dialects: Sequence[str] = ("postgresql", "sqlite", "mysql"), name: str = "db_url"
) -> Any:
    """A module-scoped fixture `name` over `dialects`, built on `shared_database`:
    `db_url = module_database()` in a test module overrides conftest's per-test one."""

    @pytest.fixture(scope="module", params=list(dialects), name=name)
    def db_url(
        request: pytest.FixtureRequest, pg_template: str, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[str]:
        yield from shared_database(
            request.param, pg_template, tmp_path_factory.mktemp("e2e"), request
        )

    return db_url
