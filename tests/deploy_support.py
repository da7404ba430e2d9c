"""Helpers of the deploy and migration tests: the Alembic CLI run as a deploy would run
it, a schema snapshot to compare databases, and a small graph with an interrupt."""

from __future__ import annotations

import operator
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from sqlalchemy import Connection, create_engine, inspect, text

from checkpointer.migrations import SCHEMA_ENV, URL_ENV

from .interrupts import ask
from .pg_server import database_url

REPO = Path(__file__).resolve().parent.parent

OUR_NAMES = re.compile(
    r'(?:("?\w+"?)\.)?"?\b(checkpoints|checkpoint_blobs|checkpoint_writes|'
    r"checkpointer_settings|checkpointer_alembic_version)\b"
)

LABELS = re.compile(r'\bAS\s+"?\w+"?', re.IGNORECASE)


def unqualified(statements: list[str], schema: str) -> list[str]:
    """The statements naming one of our tables without `schema`."""
    bad = []
    for sql in statements:
        # Column labels (`EXISTS (...) AS checkpoints`) name no table.
        for match in OUR_NAMES.finditer(LABELS.sub("", sql)):
            if (match.group(1) or "").strip('"') != schema:
                bad.append(sql)
                break
    return bad


def sync_pg_url(name: str, **parts: Any) -> str:
    """A psycopg (sync) URL of database `name`, e.g. with `username=`."""
    return database_url(name, "psycopg").set(**parts).render_as_string(hide_password=False)


def run_alembic(
    *args: str, url: str | None = None, schema: str | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """`alembic ARGS` in `cwd` as a deploy runs it, URL and schema from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in (URL_ENV, SCHEMA_ENV)}
    env["PYTHONPATH"] = str(REPO)
    if url is not None:
        env[URL_ENV] = url
    if schema is not None:
        env[SCHEMA_ENV] = schema
    done = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"alembic {' '.join(args)} failed:\n{done.stderr}"
    return done


def pg_dump_schema(name: str) -> str:
    """`pg_dump --schema-only` of database `name`, for exact comparison."""
    url = database_url(name, "psycopg")
    done = subprocess.run(
        [
            "pg_dump",
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            name,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return "\n".join(
        line
        for line in done.stdout.splitlines()
        # comments, blank lines, and pg_dump's per-run random \restrict keys
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    )


def table_names(conn: Connection, schema: str | None = None) -> set[str]:
    return set(inspect(conn).get_table_names(schema=schema))


def versions(conn: Connection, schema: str | None = None) -> list[str]:
    """Rows of our version table (empty when it is missing)."""
    if "checkpointer_alembic_version" not in table_names(conn, schema):
        return []
    qualified = f'"{schema}".' if schema else ""
    return list(
        conn.scalars(text(f"SELECT version_num FROM {qualified}checkpointer_alembic_version"))
    )


def with_conn(url: str) -> Any:
    """A context manager for one sync connection to `url` (engine disposed after)."""
    from contextlib import contextmanager

    @contextmanager
    def manager() -> Any:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    return manager()


# -- a small graph: two tasks in parallel, one asks a question (interrupt) -----------


class State(TypedDict):
    log: Annotated[list[str], operator.add]
    answer: str


def _work(state: State) -> dict[str, Any]:
    return {"log": ["worked"]}


def _ask(state: State, config: RunnableConfig) -> dict[str, Any]:
    answer = ask({"question": "proceed?", "seen": len(state["log"])}, config)
    return {"log": [f"asked:{answer}"], "answer": answer}


def _finish(state: State) -> dict[str, Any]:
    return {"log": ["finished"]}


def build_graph(checkpointer: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    """START -> (work | ask) -> finish. `ask` interrupts; `work` succeeds alongside it,
    so the interrupted checkpoint holds pending writes of a finished task too."""
    builder = StateGraph(State)
    builder.add_node("work", _work)
    builder.add_node("ask", _ask)
    builder.add_node("finish", _finish)
    builder.add_edge(START, "work")
    builder.add_edge(START, "ask")
    builder.add_edge(["work", "ask"], "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer)
