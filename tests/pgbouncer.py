"""A PgBouncer in transaction mode in front of the test PostgreSQL server.

Debian's `pgbouncer` binary (`make install` installs it) is started in the foreground on
a spare loopback port, pointed at whatever `pg_server.server_url()` gives (TCP host and
port, or a unix-socket directory), and stopped when the context exits. A missing binary
is an error, never a skip: the README's PgBouncer claims rest on these tests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from .pg_server import server_url

SEARCH = ("/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin")

ENGINE_OPTIONS: dict[str, dict[str, Any]] = {
    # asyncpg: no statement cache. Its statements are then unnamed and re-parsed in the
    # same message batch as Bind/Execute/Sync, so every statement is self-contained in
    # one implicit transaction, whichever server connection PgBouncer picks. Do NOT use
    # `prepared_statement_name_func` (uuid names): those statements are named, prepared
    # in one round trip and executed in the next, which breaks on autocommit connections.
    "asyncpg": {"connect_args": {"statement_cache_size": 0}},
    # psycopg 3: never prepare server-side (by default it does after 5 executions).
    "psycopg": {"connect_args": {"prepare_threshold": None}},
}
"""`create_engine` / `create_async_engine` options for PgBouncer in transaction mode
(the README's recipe; `test_pgbouncer.py` proves both that they work and that the
drivers' defaults fail)."""


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path=os.pathsep.join(SEARCH))
    if found is None:
        raise RuntimeError(
            "pgbouncer is not installed: run `make install` (it runs "
            "`apt-get install -y pgbouncer`) or install Debian's pgbouncer package"
        )
    return found


def _spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _backend(url: URL) -> str:
    """The `[databases]` connection string for the server behind `url`: every database
    name maps to the same name on the server (`*`)."""
    host = url.host or url.query.get("host") or "127.0.0.1"
    port = url.port or url.query.get("port") or 5432
    if isinstance(host, tuple):
        host = host[0]
    if isinstance(port, tuple):
        port = port[0]
    parts = [f"host={host}", f"port={port}", f"user={url.username or 'postgres'}"]
    if url.password:
        parts.append(f"password={url.password}")
    return " ".join(parts)


@dataclass(frozen=True)
class PgBouncer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, database: str, driver: str) -> str:
        """The URL of `database` through this PgBouncer, for `driver`."""
        upstream = server_url()
        return URL.create(
            f"postgresql+{driver}",
            username=upstream.username or "postgres",
            password=upstream.password,
            host="127.0.0.1",
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def show(self, what: str) -> list[dict[str, str]]:
        """`SHOW <what>` on the admin console (`CONFIG`, `STATS`, ...), rows as text."""
        with (
            psycopg.connect(
                host="127.0.0.1",
                port=self.port,
                user="pgbouncer",
                dbname="pgbouncer",
                autocommit=True,
                prepare_threshold=None,
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(f"SHOW {what}")  # an admin console command from this module
            names = [column.name for column in cur.description or ()]
            return [dict(zip(names, map(str, row), strict=True)) for row in cur.fetchall()]


@contextmanager
def running_pgbouncer(pool_size: int = 10) -> Iterator[PgBouncer]:
    """Start PgBouncer (transaction pooling) on a spare port; stop it on exit."""
    binary = pgbouncer_binary()
    workdir = Path(tempfile.mkdtemp(prefix="checkpointer-pgbouncer-"))
    port = _spare_port()
    log = workdir / "pgbouncer.log"
    (workdir / "users.txt").write_text('"postgres" ""\n"pgbouncer" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = {_backend(server_url())}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = any",
                f"auth_file = {workdir / 'users.txt'}",
                "admin_users = pgbouncer",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 500",
                "server_reset_query =",
                # A server PgBouncer cannot reach fails the test instead of hanging it.
                "query_wait_timeout = 30",
                "server_connect_timeout = 5",
                "server_login_retry = 1",
                "ignore_startup_parameters = extra_float_digits,options",
                f"logfile = {log}",
                f"pidfile = {workdir / 'pgbouncer.pid'}",
                "",
            ]
        )
    )
    command = [binary, "-q", str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root: drop to another user
        user = _unprivileged_user(server_url())
        entry = pwd.getpwnam(user)
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
        for child in workdir.iterdir():
            os.chown(child, entry.pw_uid, entry.pw_gid)
        command[1:1] = ["-u", user]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_until_listening(process, port, log)
        yield PgBouncer(port, process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _unprivileged_user(url: URL) -> str:
    """Who PgBouncer runs as when we are root: the owner of the server's socket
    directory (an embedded server's private one) if it is not root, else `postgres`."""
    host = url.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    if host and host.startswith("/"):
        owner = os.stat(host).st_uid
        if owner != 0:
            return pwd.getpwuid(owner).pw_name
    return "postgres" if _user_exists("postgres") else "nobody"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            logged = log.read_text() if log.exists() else ""
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: {output}{logged}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on 127.0.0.1:{port} within 15 s")
