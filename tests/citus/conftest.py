"""Citus tests: run against the coordinator named by CHECKPOINTER_TEST_CITUS (a
`postgresql://` URL of a database with the `citus` extension and worker nodes), else
skipped with a message naming the variable: Citus is not in Debian's packages.

Each test module (or test, where it needs one) gets a database of its own on the
coordinator and every worker, with the extension, the worker nodes, our tables
migrated and distributed; it is dropped on all of them afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL

from checkpointer.citus import distribute
from checkpointer.migrations import upgrade

CITUS_ENV = "CHECKPOINTER_TEST_CITUS"


def citus_admin_url() -> URL:
    """The coordinator URL of CHECKPOINTER_TEST_CITUS (psycopg), or skip."""
    raw = os.environ.get(CITUS_ENV)
    if not raw:
        pytest.skip(
            f"{CITUS_ENV} is not set: set it to a Citus coordinator URL "
            "(postgresql://user@host:port/database, with the citus extension and workers) "
            "to run the Citus tests"
        )
    return make_url(raw).set(drivername="postgresql+psycopg")


def _run(url: URL, *statements: str) -> list[list[tuple[object, ...]]]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            out = []
            for statement in statements:
                result = conn.execute(text(statement))
                out.append([tuple(r) for r in result] if result.returns_rows else [])
            return out
    finally:
        engine.dispose()


def workers(admin: URL) -> list[tuple[str, int]]:
    rows = _run(
        admin,
        "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary'",
    )[0]
    return [(str(host), int(str(port))) for host, port in rows]


@contextmanager
def citus_database(*, with_workers: bool = True, migrated: bool = True) -> Iterator[URL]:
    """A new database on the coordinator (and, `with_workers`, on each worker, added as
    nodes), with the citus extension; migrated and distributed unless not `migrated`.
    Yields its psycopg URL; dropped everywhere afterwards."""
    admin = citus_admin_url()
    nodes = workers(admin)
    name = f"cp_citus_{uuid.uuid4().hex[:10]}"
    hosts = [admin] + (
        [admin.set(host=host, port=port) for host, port in nodes] if with_workers else []
    )
    made: list[URL] = []
    try:
        for host in hosts:
            _run(host, f'CREATE DATABASE "{name}"')
            made.append(host)
            _run(host.set(database=name), "CREATE EXTENSION citus")
        url = admin.set(database=name)
        host_name = admin.host or "localhost"
        setup = [f"SELECT citus_set_coordinator_host('{host_name}', {admin.port or 5432})"]
        if with_workers:
            setup += [f"SELECT citus_add_node('{host}', {port})" for host, port in nodes]
        _run(url, *setup)
        if migrated:
            engine = create_engine(url)
            with engine.connect() as conn:
                upgrade(conn)
                distribute(conn)
            engine.dispose()
        yield url
    finally:
        for host in reversed(made):
            _run(host, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def citus_url() -> Iterator[URL]:
    """A migrated, distributed Citus database for this test module (psycopg URL)."""
    with citus_database() as url:
        yield url
