"""What each saver accepts as its engine, checked when it is constructed.

A sync `Engine` handed to the async saver (or the reverse) would otherwise fail later,
far from the mistake (an `AttributeError` on `sync_engine`, a `TypeError` in `setup()`,
`MissingGreenlet` on first use): these checks fail at once and name what to use.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

_URL_HINT = "for a URL, use {saver}.from_conn_string(url)"


def expect_async_engine(engine: object) -> None:
    """`engine` must be an `AsyncEngine` (`AsyncSQLAlchemySaver`)."""
    if isinstance(engine, AsyncEngine):
        return
    if isinstance(engine, Engine):
        raise TypeError(
            "AsyncSQLAlchemySaver needs an AsyncEngine, not a sync Engine: create it with "
            "sqlalchemy.ext.asyncio.create_async_engine(url), or use "
            "checkpointer.SQLAlchemySaver with this Engine (graph.invoke / graph.stream)"
        )
    raise TypeError(
        f"AsyncSQLAlchemySaver needs an AsyncEngine (sqlalchemy.ext.asyncio."
        f"create_async_engine(url)), not {_kind(engine)}; "
        + _URL_HINT.format(saver="AsyncSQLAlchemySaver")
    )


def expect_sync_engine(engine: object) -> None:
    """`engine` must be a sync `Engine` on a sync driver (`SQLAlchemySaver`)."""
    if isinstance(engine, AsyncEngine):
        raise TypeError(
            "SQLAlchemySaver needs a sync Engine, not an AsyncEngine: create it with "
            "sqlalchemy.create_engine(url), or use checkpointer.AsyncSQLAlchemySaver with "
            "this AsyncEngine (graph.ainvoke / graph.astream)"
        )
    if isinstance(engine, Engine):
        if engine.dialect.is_async:  # e.g. create_engine("...+asyncpg") or .sync_engine
            raise TypeError(
                f"SQLAlchemySaver needs an Engine on a sync driver, and "
                f"{engine.dialect.driver} is async: use checkpointer.AsyncSQLAlchemySaver "
                "with sqlalchemy.ext.asyncio.create_async_engine(url), or a sync driver "
                "(postgresql+psycopg://, sqlite://) with sqlalchemy.create_engine(url)"
            )
        return
    raise TypeError(
        f"SQLAlchemySaver needs an Engine (sqlalchemy.create_engine(url)), not "
        f"{_kind(engine)}; " + _URL_HINT.format(saver="SQLAlchemySaver")
    )


def _kind(engine: object) -> str:
    if isinstance(engine, str):
        return "a string"
    return f"{type(engine).__module__}.{type(engine).__qualname__}"


__all__ = ["expect_async_engine", "expect_sync_engine"]
