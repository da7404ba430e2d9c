"""The MySQL/MariaDB server for the tests: CHECKPOINTER_TEST_MYSQL (a `mysql://` or
`mariadb://` URL, e.g. a MySQL 8 server), else MariaDB at 127.0.0.1:3306 as root. There
is no fallback: without a server the MySQL tests fail, they never skip (`make test`
installs MariaDB, `.ci/run` starts it).

Databases are per test (or per module), created from a template migrated once per run:
MySQL has no `CREATE DATABASE ... TEMPLATE`, so each table is cloned with `CREATE TABLE
... LIKE` (columns, generated columns, indexes) and the version row copied."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url

ENV = "CHECKPOINTER_TEST_MYSQL"
PACKET = 64 * 1024 * 1024
"""`max_allowed_packet` the tests need (20 MB values); MariaDB's default is 16 MB."""


@functools.cache
def server_url() -> URL:
    """The server's URL (PyMySQL), without a database name."""
    url = make_url(os.environ.get(ENV) or "mysql://root@127.0.0.1:3306")
    backend = url.get_backend_name()
    return url.set(drivername=f"{backend}+pymysql", database=None)


def database_url(name: str, driver: str = "asyncmy") -> URL:
    """The URL of database `name` on the test server through `driver`."""
    return server_url().set(drivername=f"{server_url().get_backend_name()}+{driver}", database=name)


def url_string(name: str, driver: str = "asyncmy") -> str:
    return database_url(name, driver).render_as_string(hide_password=False)


@functools.cache
def _admin() -> Engine:
    engine = create_engine(server_url(), isolation_level="AUTOCOMMIT", pool_size=1)
    with engine.connect() as conn:
        # Later connections see it (the server is never restarted by the tests).
        current = conn.scalar(text("SELECT @@GLOBAL.max_allowed_packet"))
        if int(current or 0) < PACKET:
            conn.execute(text(f"SET GLOBAL max_allowed_packet = {PACKET}"))
    return engine


def new_name(prefix: str = "cp") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(name: str, template: str | None = None) -> None:
    with _admin().connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        if template is None:
            return
        # every table the migrations made (a revision that adds one is cloned too)
        tables = conn.scalars(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :t"),
            {"t": template},
        ).all()
        for table in tables:
            conn.execute(text(f"CREATE TABLE `{name}`.`{table}` LIKE `{template}`.`{table}`"))
        conn.execute(
            text(
                f"INSERT INTO `{name}`.checkpointer_alembic_version "
                f"SELECT * FROM `{template}`.checkpointer_alembic_version"
            )
        )


def drop_database(name: str) -> None:
    with _admin().connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))


def migrated_template() -> Iterator[str]:
    """A database migrated to head (by `upgrade`, as users run it), for cloning."""
    from checkpointer.migrations import upgrade

    name = new_name("cp_template")
    create_database(name)
    engine = create_engine(database_url(name, "pymysql"))
    with engine.connect() as conn:
        upgrade(conn)
    engine.dispose()
    try:
        yield name
    finally:
        drop_database(name)
