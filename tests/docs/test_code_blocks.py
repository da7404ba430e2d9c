"""Every code block of README.md and docs/*.md runs, so the docs cannot drift from the code.

- Python blocks run as files in a fresh interpreter, in an empty directory, once with
  CHECKPOINTER_DATABASE_URL naming a new, empty PostgreSQL database (a plain `postgresql://`
  URL, as the docs tell users to write) and once without it (the block's own SQLite default,
  a file in that directory).
- Shell blocks run with `bash -euo pipefail` in a directory that holds the checkout's
  `alembic.ini` and `alembic/` (what "from a checkout" means), with this virtual environment
  first on PATH and CHECKPOINTER_DATABASE_URL naming a new PostgreSQL database.
- SQL blocks of a page run in order, in one transaction on a new PostgreSQL database that is
  rolled back at the end; after a `CREATE SCHEMA`, our tables are created in that schema (what
  the deploy step the page describes between the blocks does).
- Blocks in `text` are not code. Any other language fails `test_every_block_has_a_known_language`.

An HTML comment on the line before a fence adjusts one block: `<!-- test: WORDS -->`, with
- `skip (why)`: not run. Python is compiled, shell checked with `bash -n`. The skipped blocks
  are README's install commands and `make demo`/`make test` (the latter would run this test),
  performance.md's benchmark commands, development.md's `make` commands.
- `postgresql`: PostgreSQL only (schemas, PgBouncer options).
- `driver=NAME`: the PostgreSQL URL names its driver (`postgresql+NAME://`), for blocks that
  build their own engine with SQLAlchemy, which does not choose drivers.
- `migrated`: the database is migrated before the block runs.
- `alembic-env`: the block is a host application's Alembic `env.py`: `alembic upgrade head`
  with it must create our tables, and `alembic check` must then find no drift.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine, inspect, text

from checkpointer import VERSION_TABLE, metadata
from checkpointer.migrations import head, upgrade

from ..pg_server import database_url

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "bash", "sql", "text"}
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!-- test: (.*) -->\s*$")
VENV_BIN = Path(sys.executable).parent
TIMEOUT = 240


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    marks: frozenset[str] = field(default_factory=frozenset)

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def skipped(self) -> bool:
        return "skip" in self.marks

    def mark(self, prefix: str) -> str | None:
        found = [m.split("=", 1)[1] for m in self.marks if m.startswith(prefix + "=")]
        return found[0] if found else None


def read_blocks(page: Path) -> Iterator[Block]:
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = lines.index("```", i + 1)
        marker = MARKER.match(lines[i - 1]) if i else None
        words = re.sub(r"\(.*?\)", "", marker.group(1)).split() if marker else []
        code = "\n".join(lines[i + 1 : end]) + "\n"
        yield Block(page, i + 1, opening.group(1) or "text", code, frozenset(words))
        i = end + 1


BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def of(language: str, *, skipped: bool = False) -> list[Block]:
    return [b for b in BLOCKS if b.language == language and b.skipped == skipped]


def pg_url(name: str, driver: str | None = None) -> str:
    url = database_url(name, driver or "psycopg")
    if driver is None:
        url = url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def environment(url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINTER_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    if url is not None:
        env["CHECKPOINTER_DATABASE_URL"] = url
    return env


def run(args: list[str], cwd: Path, env: dict[str, str], block: Block) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, (
        f"{block.id} ({block.language}) failed with exit code {done.returncode}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done.stdout


def migrate(url: str) -> None:
    engine = create_engine(url)
    with engine.connect() as conn:
        upgrade(conn)
    engine.dispose()


# -- what the docs hold ----------------------------------------------------------------


def test_every_block_has_a_known_language() -> None:
    unknown = [f"{b.id}: {b.language}" for b in BLOCKS if b.language not in LANGUAGES]
    assert not unknown, f"add a way to test these blocks: {unknown}"
    # At least the blocks written so far: a fence typo that hides a block fails here.
    counts = {language: len(of(language)) for language in ("python", "bash", "sql")}
    assert counts["python"] >= 12, counts
    assert counts["bash"] >= 5, counts
    assert counts["sql"] >= 2, counts


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: every link and anchor resolves, every page is in the nav."""
    block = Block(ROOT / "mkdocs.yml", 1, "text", "")
    run(
        [str(VENV_BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        ROOT,
        environment(None),
        block,
    )


def test_readme_stays_short() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= 12_500


# -- Python ------------------------------------------------------------------------------

PYTHON_RUNS = [
    pytest.param(block, backend, id=f"{block.id}-{backend}")
    for block in of("python")
    if "alembic-env" not in block.marks
    for backend in ("postgresql", "sqlite")
    if backend == "postgresql" or "postgresql" not in block.marks
]


@pytest.mark.parametrize(("block", "backend"), PYTHON_RUNS)
def test_python_block_runs(block: Block, backend: str, tmp_path: Path, fresh_pg: str) -> None:
    url = pg_url(fresh_pg, block.mark("driver")) if backend == "postgresql" else None
    if "migrated" in block.marks:
        assert url is not None, f"{block.id}: `migrated` needs `postgresql`"
        migrate(pg_url(fresh_pg, "psycopg"))
    (tmp_path / "block.py").write_text(block.code)
    run([sys.executable, "block.py"], tmp_path, environment(url), block)


def test_readme_quickstart_continues_its_thread(tmp_path: Path) -> None:
    """Run twice, the Quickstart finds the first run's state: it really persists."""
    block = next(b for b in of("python") if b.page.name == "README.md")
    (tmp_path / "quickstart.py").write_text(block.code)
    outputs = [
        run([sys.executable, "quickstart.py"], tmp_path, environment(None), block) for _ in range(2)
    ]
    assert outputs == ["2 messages in thread user-1\n", "4 messages in thread user-1\n"]


ALEMBIC_INI = """[alembic]
script_location = %(here)s/migrations
sqlalchemy.url = {url}
"""


@pytest.mark.parametrize(
    ("block", "backend"),
    [
        pytest.param(b, backend, id=f"{b.id}-{backend}")
        for b in of("python")
        if "alembic-env" in b.marks
        for backend in ("postgresql", "sqlite")
    ],
)
def test_alembic_env_block_migrates_a_host_app(
    block: Block, backend: str, tmp_path: Path, fresh_pg: str
) -> None:
    url = pg_url(fresh_pg, "psycopg") if backend == "postgresql" else f"sqlite:///{tmp_path}/a.db"
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "migrations" / "env.py").write_text(block.code)
    (tmp_path / "alembic.ini").write_text(ALEMBIC_INI.format(url=url.replace("%", "%%")))
    alembic = str(VENV_BIN / "alembic")
    run([alembic, "upgrade", "head"], tmp_path, environment(None), block)
    out = run([alembic, "check"], tmp_path, environment(None), block)
    assert "No new upgrade operations detected" in out
    engine = create_engine(url)
    with engine.connect() as conn:
        assert {"checkpoints", VERSION_TABLE} <= set(inspect(conn).get_table_names())
        version = conn.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    engine.dispose()
    assert version == head()


# -- shell -------------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A working directory that looks like the repository root to `alembic`."""
    for name in ("alembic.ini", "alembic"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


@pytest.mark.parametrize("block", of("bash"), ids=lambda b: b.id)
def test_shell_block_runs(block: Block, checkout: Path, fresh_pg: str) -> None:
    (checkout / "block.sh").write_text(block.code)
    if "migrated" in block.marks:
        migrate(pg_url(fresh_pg, "psycopg"))
    env = environment(pg_url(fresh_pg, block.mark("driver")))
    run(["bash", "-euo", "pipefail", "block.sh"], checkout, env, block)


@pytest.mark.parametrize(
    "block", of("bash", skipped=True) + of("python", skipped=True), ids=lambda b: b.id
)
def test_skipped_block_parses(block: Block, tmp_path: Path) -> None:
    if block.language == "python":
        compile(block.code, block.id, "exec")
        return
    (tmp_path / "block.sh").write_text(block.code)
    run(["bash", "-n", "block.sh"], tmp_path, environment(None), block)


# -- SQL ------------------------------------------------------------------------


def sql_pages() -> list[Path]:
    return sorted({b.page for b in of("sql")})


def statements(code: str) -> list[str]:
    body = "\n".join(line.split("--", 1)[0] for line in code.splitlines())
    return [s.strip() for s in body.split(";") if s.strip()]


@pytest.mark.parametrize("page", sql_pages(), ids=lambda p: p.name)
def test_sql_blocks_run_in_a_rolled_back_transaction(page: Path, fresh_pg: str) -> None:
    engine = create_engine(pg_url(fresh_pg, "psycopg"))
    ran = 0
    with engine.connect() as conn:
        for block in (b for b in of("sql") if b.page == page):
            for statement in statements(block.code):
                conn.exec_driver_sql(statement)
                ran += 1
                schema = re.match(r"CREATE SCHEMA (\w+)", statement, re.IGNORECASE)
                if schema:
                    translated = conn.execution_options(
                        schema_translate_map={None: schema.group(1)}
                    )
                    metadata.create_all(translated)
                    version = Column("version_num", String(32))
                    Table(VERSION_TABLE, MetaData(), version, schema=schema.group(1)).create(conn)
        conn.rollback()
    engine.dispose()
    assert ran
