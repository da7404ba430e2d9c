"""Zero-downtime indexes: the upgrade builds its PostgreSQL indexes concurrently on a
table of 200k+ rows while a writer keeps inserting, and the writer is never blocked for
a second; a concurrent build that fails leaves an INVALID index, and running the upgrade
again repairs it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, create_engine, func, insert, literal, select, text

from checkpointer.migrations import head, upgrade
from checkpointer.schema import checkpoints

from ..conftest import _create_database, drop_database
from ..deploy_support import sync_pg_url, versions

ROWS = 200_000
MAX_BLOCK = 1.0


@pytest.fixture(scope="module")
def big_db() -> Iterator[str]:
    """A database at 0001 whose `checkpoints` holds ROWS rows (one INSERT ... SELECT)."""
    name = f"cp_big_{uuid.uuid4().hex[:8]}"
    _create_database(name)
    engine = create_engine(sync_pg_url(name))
    try:
        with engine.connect() as conn:
            upgrade(conn, "0001")
            n = func.generate_series(1, ROWS).table_valued("n").render_derived().c.n
            rows = select(
                func.concat("thread-", n % 5000),
                literal(""),
                func.lpad(func.cast(n, checkpoints.c.thread_id.type), 12, "0"),
                func.jsonb_build_object("v", 4, "ts", "2026-01-01"),
                func.jsonb_build_object(
                    "source", "loop", "step", n, "run_id", func.concat("run-", n % 997)
                ),
            )
            conn.execute(
                insert(checkpoints).from_select(
                    ["thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint", "metadata"],
                    rows,
                )
            )
            conn.commit()
        yield name
    finally:
        engine.dispose()
        drop_database(name)


@dataclass
class Writer:
    """Inserts checkpoints one by one (autocommit) and times each insert."""

    engine: Engine
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        statement = insert(checkpoints)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            i = 0
            while not self.stop.is_set():
                i += 1
                started = time.perf_counter()
                conn.execute(
                    statement,
                    {
                        "thread_id": "writer",
                        "checkpoint_ns": "",
                        "checkpoint_id": f"{uuid.uuid4()}",
                        "checkpoint": {"v": 4},
                        "metadata": {"run_id": f"w-{i}", "step": i},
                    },
                )
                self.latencies.append((started, time.perf_counter() - started))
                time.sleep(0.005)


def while_writing(url: str, action: Callable[[], None]) -> tuple[Writer, float, float]:
    """Run `action` while a writer inserts; return the writer and the action's window."""
    engine = create_engine(url)
    writer = Writer(engine)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)  # the writer is going
        start = time.perf_counter()
        action()
        end = time.perf_counter()
        time.sleep(0.2)
    finally:
        writer.stop.set()
        thread.join(timeout=30)
        engine.dispose()
    return writer, start, end


def _index_validity(url: str) -> dict[str, bool]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT c.relname, i.indisvalid FROM pg_index i"
                    " JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE c.relname IN ('checkpoints_metadata_idx', 'checkpoints_run_id_idx')"
                )
            )
            return dict(found.all())
    finally:
        engine.dispose()


def test_the_measure_sees_a_blocking_build(big_db: str) -> None:
    """A plain CREATE INDEX in a transaction (what we avoid) does block the writer."""
    url = sync_pg_url(big_db)
    engine = create_engine(url)

    def blocking_build() -> None:
        with engine.begin() as conn:
            conn.execute(text("CREATE INDEX blocking_idx ON checkpoints (type)"))
            conn.execute(select(func.pg_sleep(1.2)))
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX blocking_idx"))

    try:
        writer, _, _ = while_writing(url, blocking_build)
    finally:
        engine.dispose()
    assert max(seconds for _, seconds in writer.latencies) > MAX_BLOCK


def test_failed_build_is_repaired_by_an_upgrade_that_never_blocks_a_writer(
    big_db: str,
) -> None:
    """A concurrent build cancelled mid-way (here: a lock timeout while it waits for an
    old snapshot) leaves an INVALID index and the database at 0001. Running the upgrade
    again drops and rebuilds it, and builds the rest, while a writer keeps inserting."""
    url = sync_pg_url(big_db)
    engine = create_engine(url)
    impatient = create_engine(url, connect_args={"options": "-c lock_timeout=300"})
    try:
        with engine.connect() as reader:
            # An open REPEATABLE READ snapshot: a concurrent build waits for it last.
            reader.execution_options(isolation_level="REPEATABLE READ")
            reader.execute(select(func.count()).select_from(checkpoints))
            with impatient.connect() as conn, pytest.raises(Exception, match="lock timeout"):
                upgrade(conn)
            reader.rollback()
        assert _index_validity(url) == {"checkpoints_metadata_idx": False}
        with engine.connect() as conn:
            assert versions(conn) == ["0001"]

        def migrate() -> None:
            with engine.connect() as conn:
                assert upgrade(conn) == ["0002", "0003", "0004", "0005", "0006"]

        writer, start, end = while_writing(url, migrate)
        with engine.connect() as conn:
            assert versions(conn) == [head()]
    finally:
        impatient.dispose()
        engine.dispose()
    assert _index_validity(url) == {
        "checkpoints_metadata_idx": True,
        "checkpoints_run_id_idx": True,
    }
    during = [seconds for started, seconds in writer.latencies if start <= started <= end]
    assert len(during) >= 10, f"the writer barely ran during the upgrade ({end - start:.2f} s)"
    slowest = max(seconds for _, seconds in writer.latencies)
    assert slowest < MAX_BLOCK, f"a writer insert waited {slowest:.2f} s during the upgrade"
    print(
        f"upgrade 0001->head on {ROWS} rows took {end - start:.2f} s; {len(during)} inserts"
        f" meanwhile, slowest {max(during) * 1000:.0f} ms"
    )
