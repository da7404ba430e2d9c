"""Database URLs as users write them, turned into URLs with a driver that is installed.

A plain `postgresql://` or `sqlite://` URL (what a README, a PaaS or a `.env` file holds)
names no driver, and SQLAlchemy's defaults (psycopg2, pysqlite) are not what this
package installs. The rules, the same for the savers, `alembic` and `python -m
checkpointer`:

- async: `postgresql://` -> asyncpg if installed, else psycopg (its async mode);
  `sqlite://` -> aiosqlite; `mysql://` and `mariadb://` -> asyncmy.
- sync: `postgresql://` -> psycopg; `sqlite://` -> the standard library's sqlite3;
  `mysql://` and `mariadb://` -> PyMySQL (docs/mysql.md says why these two).
- migrations (`alembic`, `python -m checkpointer`): sync when its driver is installed,
  else async.
- `postgres://` (Heroku and other PaaS) means `postgresql://`.
- A URL that names its driver (`postgresql+asyncpg://`) is used as it is; a driver this
  package knows and that is not installed is reported with the extra that installs it.

Drivers are looked up with `importlib.util.find_spec`, without importing them.
"""

from __future__ import annotations

import importlib.util

from sqlalchemy.engine import URL, make_url

from .errors import MissingDriverError

DISTRIBUTION = "langgraph-checkpoint-sqlalchemy"

_MODULES = {
    # driver name in a URL -> (module it imports, extra of this package that installs it)
    "asyncpg": ("asyncpg", "postgres"),
    "psycopg": ("psycopg", "psycopg"),
    "psycopg_async": ("psycopg", "psycopg"),
    "aiosqlite": ("aiosqlite", "sqlite"),
    "asyncmy": ("asyncmy", "mysql"),
    "pymysql": ("pymysql", "mysql"),
}

_ASYNC_DEFAULTS: dict[str, tuple[str, ...]] = {
    "postgresql": ("asyncpg", "psycopg"),
    "sqlite": ("aiosqlite",),
    "mysql": ("asyncmy",),
    "mariadb": ("asyncmy",),
}
"""Drivers tried in order for a URL without one, in async use."""

_SYNC_DEFAULTS: dict[str, tuple[str, ...]] = {
    "postgresql": ("psycopg",),
    "sqlite": ("pysqlite",),
    "mysql": ("pymysql",),
    "mariadb": ("pymysql",),
}
"""Drivers tried in order for a URL without one, in sync use (pysqlite: the stdlib)."""


def installed(module: str) -> bool:
    """Whether `module` can be imported (looked up, not imported). A finder that
    refuses to locate it counts as not installed."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_hint(*extras: str) -> str:
    """The pip command that installs these extras of this package."""
    return " or ".join(f"pip install '{DISTRIBUTION}[{extra}]'" for extra in extras)


def normalized(url: str | URL) -> URL:
    """`url` parsed, with `postgres` (PaaS spelling) read as `postgresql`."""
    parsed = make_url(url)
    backend, plus, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        return parsed.set(drivername=f"postgresql{plus}{driver}")
    return parsed


def async_url(url: str | URL) -> URL:
    """`url` for `create_async_engine`: a plain URL gets asyncpg or psycopg (PostgreSQL)
    or aiosqlite (SQLite), whichever is installed."""
    return _resolve(normalized(url), _ASYNC_DEFAULTS, "async")


def sync_url(url: str | URL) -> URL:
    """`url` for `create_engine`: a plain URL gets psycopg (PostgreSQL) or the standard
    library's sqlite3 (SQLite)."""
    return _resolve(normalized(url), _SYNC_DEFAULTS, "sync")


def migration_url(url: str | URL) -> URL:
    """`url` for running migrations: sync when a sync driver is installed (no event
    loop needed), else async, so a deploy with only asyncpg can migrate."""
    parsed = normalized(url)
    if "+" in parsed.drivername:
        return sync_url(parsed)  # used as it is, once its driver is known to be there
    try:
        return sync_url(parsed)
    except MissingDriverError:
        pass
    try:
        return async_url(parsed)
    except MissingDriverError as error:
        backend = parsed.get_backend_name()
        drivers = _SYNC_DEFAULTS[backend] + _ASYNC_DEFAULTS[backend]
        hint = install_hint(*dict.fromkeys(_MODULES[driver][1] for driver in drivers))
        raise MissingDriverError(
            f"{_shown(parsed)} names no driver, and none of the drivers used for {backend} "
            f"({', '.join(dict.fromkeys(drivers))}) is installed: {hint}",
            name=error.name,
        ) from None


def _resolve(url: URL, defaults: dict[str, tuple[str, ...]], use: str) -> URL:
    backend, _, driver = url.drivername.partition("+")
    if driver:
        _require(driver, url)
        return url
    candidates = defaults.get(backend)
    if candidates is None:  # a database we pick no driver for: SQLAlchemy's default
        return url
    for candidate in candidates:
        module = _MODULES.get(candidate, (None, None))[0]
        if module is None or installed(module):
            return url.set(drivername=f"{backend}+{candidate}")
    extras = [_MODULES[candidate][1] for candidate in candidates]
    if len(candidates) == 1:
        missing = f"{candidates[0]}, the {use} driver used for {backend}, is not installed"
    else:
        missing = f"none of the {use} drivers used for {backend} ({', '.join(candidates)}) is"
        missing += " installed"
    raise MissingDriverError(
        f"{_shown(url)} names no driver, and {missing}: {install_hint(*extras)}, "
        f"or name an installed driver in the URL ({backend}+DRIVER://...)",
        name=_MODULES[candidates[0]][0],
    )


def _require(driver: str, url: URL) -> None:
    """A driver this package installs through an extra must be there; others are
    SQLAlchemy's business (its own error names the missing module)."""
    module, extra = _MODULES.get(driver, (None, None))
    if module is None or extra is None or installed(module):
        return
    raise MissingDriverError(
        f"{_shown(url)} uses the {driver} driver, which is not installed: {install_hint(extra)}",
        name=module,
    )


def _shown(url: URL) -> str:
    """The URL for an error message, password hidden."""
    return repr(url.render_as_string(hide_password=True))


__all__ = ["async_url", "install_hint", "installed", "migration_url", "normalized", "sync_url"]
