"""`aget_delta_channel_history`: the fast path must return exactly what the base
class's default (one `get_tuple` per ancestor) returns, in one statement whatever the
depth, following the parent chain (forks) within one namespace."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, DeltaChannelHistory
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from sqlalchemy import create_engine, event, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver

from ..ops_support import count_statements, explain, statements_sent

CHANNELS = ["msgs", "flag", "plain", "never", "noise", "unknown"]
SHALLOW = ["msgs", "flag", "plain", "noise"]


class Branch:
    """One chain of checkpoints in one namespace, extended one step at a time (written
    by the sync saver on the same database: quicker to build, same format)."""

    def __init__(self, saver: Any, thread: str, ns: str, tag: str) -> None:
        self.saver, self.thread, self.ns, self.tag = saver, thread, ns, tag
        self.versions: dict[str, str] = {}
        self.configs: list[RunnableConfig] = []
        self.parent: str | None = None
        self.step = 0

    def fork(self, tag: str, at: int) -> Branch:
        other = Branch(self.saver, self.thread, self.ns, tag)
        config = self.configs[at]
        other.parent = config["configurable"]["checkpoint_id"]
        other.versions = dict(self.history_versions[at])
        other.step = at + 1
        return other

    history_versions: list[dict[str, str]]

    def advance(self, rng: random.Random) -> list[Coroutine[Any, Any, Any]]:
        i = self.step
        values: dict[str, Any] = {}
        new: dict[str, str] = {}

        def bump(channel: str) -> None:
            new[channel] = self.saver.get_next_version(self.versions.get(channel))
            self.versions[channel] = new[channel]

        bump("msgs")
        if i % 50 == 0:
            values["msgs"] = _DeltaSnapshot([f"{self.tag}-snap-{i}"])
        if i % 37 == 5:
            bump("flag")
            values["flag"] = True  # an inline True, not a snapshot marker
        if i % 40 == 3:
            bump("plain")
            values["plain"] = {"at": i, "tag": self.tag}
        if i % 25 == 1:
            bump("noise")
            values["noise"] = i  # an inline int
        bump("never")  # a version, never a value: an "empty" blob each time
        checkpoint = Checkpoint(
            v=4,
            id=str(uuid6(clock_seq=i)),
            ts=datetime.now(timezone.utc).isoformat(),
            channel_values=values,
            channel_versions=dict(self.versions),
            versions_seen={},
            updated_channels=None,
        )
        config: RunnableConfig = {
            "configurable": {"thread_id": self.thread, "checkpoint_ns": self.ns}
        }
        if self.parent:
            config["configurable"]["checkpoint_id"] = self.parent
        # The config `aput` returns is known in advance: the writes need not wait for it.
        stored: RunnableConfig = {
            "configurable": {
                "thread_id": self.thread,
                "checkpoint_ns": self.ns,
                "checkpoint_id": checkpoint["id"],
            }
        }
        pending = [self.saver.aput(config, checkpoint, {"step": i}, new)]
        tasks = 1 + (i % 5 == 0)
        for t in range(tasks):
            path = rng.choice(["", "~__pregel_pull, a", "~__pregel_pull, b", "~__pregel_push, 1"])
            batch = [("msgs", f"{self.tag}-{i}-{t}-{k}") for k in range(rng.randint(1, 3))]
            batch += [("noise", i), ("flag", i % 2 == 0)]
            if i % 7 == 0:
                batch.append(("plain", {"w": i}))
            rng.shuffle(batch)
            pending.append(self.saver.aput_writes(stored, batch, str(uuid4()), path))
        self.configs.append(stored)
        if not hasattr(self, "history_versions"):
            self.history_versions = []
        self.history_versions.append(dict(self.versions))
        self.parent = stored["configurable"]["checkpoint_id"]
        self.step += 1
        return pending


async def _grow(branches: list[Branch], steps: int, rng: random.Random) -> None:
    """Save the steps, several statements in flight at once (order does not matter:
    every row names its parent explicitly)."""
    pending = [c for _ in range(steps) for b in branches for c in b.advance(rng)]
    for start in range(0, len(pending), 4):  # within the pool's 5 connections
        await asyncio.gather(*pending[start : start + 4])


class _SyncWriter:
    """The sync saver behind the two async methods `Branch` calls."""

    def __init__(self, saver: SQLAlchemySaver) -> None:
        self.saver = saver
        self.get_next_version = saver.get_next_version

    async def aput(self, *args: Any) -> RunnableConfig:
        return self.saver.put(*args)

    async def aput_writes(self, *args: Any) -> None:
        self.saver.put_writes(*args)


@pytest.fixture
def builder(db_url: str, saver: AsyncSQLAlchemySaver) -> Iterator[Any]:
    """What writes the test threads: on SQLite a sync saver without fsync (quicker to
    build, same format), on PostgreSQL the async saver itself."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite":
        yield saver
        return
    engine = create_engine(url.set(drivername="sqlite"))

    @event.listens_for(engine, "connect")
    def _no_fsync(conn: Any, record: Any) -> None:
        conn.execute("PRAGMA synchronous = OFF")

    yield _SyncWriter(SQLAlchemySaver(engine))
    engine.dispose()


async def _same(
    saver: AsyncSQLAlchemySaver, config: RunnableConfig, channels: list[str]
) -> Mapping[str, DeltaChannelHistory]:
    fast = await saver.aget_delta_channel_history(config=config, channels=channels)
    default = await BaseCheckpointSaver.aget_delta_channel_history(
        saver, config=config, channels=channels
    )
    assert dict(fast) == dict(default)
    assert list(fast) == list(default)
    return fast


def _at(config: RunnableConfig) -> RunnableConfig:
    return {"configurable": dict(config["configurable"])}


async def test_matches_the_default_on_forks_namespaces_and_1000_checkpoints(
    saver: AsyncSQLAlchemySaver, builder: Any
) -> None:
    rng = random.Random(7)
    thread = str(uuid4())
    main = Branch(builder, thread, "", "main")
    child = Branch(builder, thread, "child:1", "child")
    started = time.perf_counter()
    await _grow([main], 500, rng)
    fork = main.fork("fork", at=450)
    # Main, fork and child interleave, so id order mixes the branches and namespaces.
    await _grow([main, fork, child], 120, rng)
    await _grow([main], 150, rng)
    total = len(main.configs) + len(fork.configs) + len(child.configs)
    assert total >= 1000
    built = time.perf_counter() - started

    # A deep walk: "never" has no stored value anywhere, so it walks to the root.
    deep = await _same(saver, {"configurable": {"thread_id": thread}}, CHANNELS)
    assert deep["never"] == {"writes": []}
    assert deep["noise"]["seed"] == 751
    assert len(deep["noise"]["writes"]) > 5
    assert deep["msgs"]["seed"] == _DeltaSnapshot(["main-snap-750"])
    assert len(deep["msgs"]["writes"]) > 20
    assert deep["flag"]["seed"] is True
    assert deep["plain"]["seed"] == {"at": 763, "tag": "main"}
    assert deep["unknown"] == {"writes": []}
    # Shallower ones, on every kind of target.
    targets = [
        main.configs[-1],
        fork.configs[-1],
        main.configs[700],  # its own snapshot does not count: the walk starts at its parent
        main.configs[701],  # just after a snapshot
        main.configs[451],  # the first main child of the fork point
        fork.configs[0],
        fork.configs[70],
        child.configs[-1],
        child.configs[3],
        main.configs[0],  # the root: no ancestors
    ]
    for config in targets:
        await _same(saver, _at(config), SHALLOW)
    await _same(saver, {"configurable": {"thread_id": thread, "checkpoint_ns": "child:1"}}, SHALLOW)
    # A channel asked twice, an unknown checkpoint, an unknown thread, no channels.
    await _same(saver, _at(main.configs[-2]), ["msgs", "msgs", "flag"])
    missing = {"configurable": {"thread_id": thread, "checkpoint_id": str(uuid6())}}
    await _same(saver, missing, SHALLOW)
    await _same(saver, {"configurable": {"thread_id": str(uuid4())}}, SHALLOW)
    assert await saver.aget_delta_channel_history(config=_at(main.configs[-1]), channels=[]) == {}

    # The fork's history holds no main-branch write after the fork point, and vice versa.
    fork_history = await saver.aget_delta_channel_history(
        config=_at(fork.configs[-1]), channels=["msgs"]
    )
    values = [w[2] for w in fork_history["msgs"]["writes"]]
    assert values
    assert not any(v.startswith("main-") and int(v.split("-")[1]) > 450 for v in values)
    assert not any(v.startswith("child-") for v in values)
    compared = time.perf_counter() - started - built
    print(f"\n{total} checkpoints built in {built:.1f}s, compared in {compared:.1f}s")


async def test_one_statement_whatever_the_depth(saver: AsyncSQLAlchemySaver, builder: Any) -> None:
    rng = random.Random(3)
    main = Branch(builder, str(uuid4()), "", "main")
    await _grow([main], 240, rng)
    # The saver's first call checks the schema revision (once per saver): not counted.
    await saver.aget_tuple({"configurable": {"thread_id": "warm-up"}})
    counts = {}
    for depth in (1, 10, 239):
        config = _at(main.configs[depth])
        with count_statements(saver.engine.sync_engine) as seen:
            history = await saver.aget_delta_channel_history(config=config, channels=CHANNELS)
        counts[depth] = len(seen)
        # "never" is never stored: its walk reaches the root, `depth` ancestors.
        assert "seed" not in history["never"]
        nearest = (depth - 1) // 50 * 50
        assert history["msgs"]["seed"] == _DeltaSnapshot([f"main-snap-{nearest}"])
    assert counts == {1: 1, 10: 1, 239: 1}
    with count_statements(saver.engine.sync_engine) as seen:
        await BaseCheckpointSaver.aget_delta_channel_history(
            saver, config=_at(main.configs[239]), channels=["never"]
        )
    assert len(seen) == 240  # the default: one get_tuple per checkpoint on the chain


async def test_sync_bridge_and_bad_channels(saver: AsyncSQLAlchemySaver, builder: Any) -> None:
    rng = random.Random(1)
    main = Branch(builder, str(uuid4()), "", "main")
    await _grow([main], 30, rng)
    config = _at(main.configs[-1])
    bridged = await asyncio.to_thread(
        saver.get_delta_channel_history, config=config, channels=SHALLOW
    )
    assert bridged == await saver.aget_delta_channel_history(config=config, channels=SHALLOW)
    with pytest.raises(TypeError, match="not the string"):
        await saver.aget_delta_channel_history(config=config, channels="msgs")
    with pytest.raises(ValueError, match="thread_id"):
        await saver.aget_delta_channel_history(config={"configurable": {}}, channels=["msgs"])


@pytest.mark.parametrize(
    ("versions", "fork_version"),
    [
        # the fork's stored value sits between the chain's seed and its newest versions
        (["01", "02", "04", "05"], "03"),
        # integer versions, which order differently as text ("10" < "11" < "8" < "9")
        (["8", "9", "10", "11"], "85"),
    ],
)
async def test_a_stored_version_on_another_branch_does_not_end_the_walk(
    saver: AsyncSQLAlchemySaver, versions: list[str], fork_version: str
) -> None:
    """The walk probes for stored blobs only below the highest stored version at or
    under the target's (`statements.walk.chain_walk`); that version may belong to
    another branch, and versions need not order as text the way they count."""
    thread = str(uuid4())
    ids = [str(uuid6(clock_seq=i)) for i in range(len(versions) + 1)]

    async def put(i: int, parent: str | None, version: str, value: Any) -> RunnableConfig:
        config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        if parent:
            config["configurable"]["checkpoint_id"] = parent
        checkpoint = Checkpoint(
            v=4,
            id=ids[i],
            ts=datetime.now(timezone.utc).isoformat(),
            channel_values={} if value is None else {"msgs": value},
            channel_versions={"msgs": version},
            versions_seen={},
            updated_channels=None,
        )
        stored = await saver.aput(config, checkpoint, {"step": i}, {"msgs": version})
        await saver.aput_writes(stored, [("msgs", f"write-{i}")], f"task-{i}")
        return stored

    # chain: a stored value at the root, then versions with no value ("empty" rows)
    chain = [await put(0, None, versions[0], _DeltaSnapshot(["seed"]))]
    for i, version in enumerate(versions[1:], start=1):
        chain.append(await put(i, chain[-1]["configurable"]["checkpoint_id"], version, None))
    # a fork off the root stores a plain value under a version the chain skipped
    await put(len(versions), ids[0], fork_version, ["fork value"])

    history = await _same(saver, _at(chain[-1]), ["msgs"])
    assert history["msgs"]["seed"] == _DeltaSnapshot(["seed"])
    assert [w[2] for w in history["msgs"]["writes"]] == [f"write-{i}" for i in range(3)]


async def test_long_linear_chains_scan_and_short_forks_look_up(pg_url: str) -> None:
    """On PostgreSQL a chain's writes are read by one range scan when the chain is most
    of the checkpoints between its ends, else by one lookup per checkpoint
    (`statements.history.History._chain_writes`): a fork off an old checkpoint must not
    scan the whole history in between. Both read what the base class reads."""
    engine = create_async_engine(pg_url)
    try:
        saver = AsyncSQLAlchemySaver(engine)
        rng = random.Random(5)
        main = Branch(saver, str(uuid4()), "", "main")
        await _grow([main], 45, rng)  # snapshots at 0: a chain from 45 back to it
        fork = main.fork("fork", at=3)
        await _grow([main], 80, rng)  # 80 more, so the fork point is far in id order
        await _grow([fork], 2, rng)
        linear, forked = _at(main.configs[44]), _at(fork.configs[-1])
        for config in (linear, forked):
            await _same(saver, config, ["msgs"])
        with statements_sent(engine.sync_engine) as sent:
            for config in (linear, forked):
                await saver.aget_delta_channel_history(config=config, channels=["msgs"])
        assert len(sent) == 2
        ran = [_writes_read_by(await explain(engine, *s, analyze=True)) for s in sent]
        (linear_read, forked_read) = ran
        assert linear_read["scan"] > 40
        assert linear_read["lookups"] == 0
        assert forked_read["scan"] == 0
        assert forked_read["lookups"] >= 5
    finally:
        await engine.dispose()


def _writes_read_by(plan: Mapping[str, Any]) -> dict[str, int]:
    """Rows of `checkpoint_writes` each way of reading them returned."""
    out = {"scan": 0, "lookups": 0}

    def visit(node: Mapping[str, Any], way: str | None) -> None:
        for key, name in (("IS TRUE", "scan"), ("IS NOT TRUE", "lookups")):
            if node.get("One-Time Filter", "").endswith(f"{key})"):
                way = name
        if node.get("Relation Name") == "checkpoint_writes" and way:
            out[way] += node["Actual Rows"] * node["Actual Loops"]
        for child in node.get("Plans", ()):
            visit(child, way)

    visit(plan, None)
    return out
