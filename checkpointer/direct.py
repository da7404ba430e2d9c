"""Autocommit statements run straight on the pooled DBAPI cursor.

`Connection.execute` costs about 80 µs of CPU per statement over the driver (events,
execution context, result objects), and checking out a `Connection` in autocommit
another 50: on loopback an agent step is CPU-bound, and this was a third of ours. For
plans that need no transaction, this runs each statement as SQLAlchemy compiled it (once
per statement), with SQLAlchemy's bind and result processors, on the DBAPI cursor of a
connection from the engine's own pool, and wraps driver errors as `Connection` would
(`sqlalchemy.exc.DBAPIError`, disconnects invalidate the connection).

On asyncpg it skips SQLAlchemy's DBAPI adapter too and awaits the driver's own
`Connection.fetch`/`execute` (its statement cache, the type codecs SQLAlchemy set up on
connect, outside any transaction): the adapter's cursor (a lock, a transaction check, a
description built per execute, a row deque) cost another 30 µs per statement, measured.
Driver errors go through the adapter's own translation first, so they come out as they
would through the cursor. A statement too long for asyncpg's statement cache still goes
through the adapter, whose own cache keeps it prepared. Where taking and returning a pooled
connection needs no I/O (`Direct.lease`), the async saver runs such plans on the event loop
without any greenlet.

What this path cannot honour, it leaves to `Connection`: statement events
(`before_cursor_execute` and the like, so tracing and statement counters see every
statement), `echo`, executemany, and expanding parameters. The dialect record decides
where it is used at all (`Dialect.direct`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError, MissingGreenlet, StatementError
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import await_only

from .plans import Rows, Step

STALE = object()
"""`Direct.lease` found an idle connection that must reconnect first."""

COMPILED_KEEP = 512
"""Compiled statements kept per saver (the filtered list statements are bounded too)."""


@dataclass(frozen=True)
class Compiled:
    """A statement as the driver takes it, and what converts values on the way."""

    compiled: SQLCompiler
    sql: str
    order: tuple[str, ...] | None
    """Bind names in placeholder order (positional paramstyles), else None."""
    names: Mapping[str, str]
    """Bind name -> the name in the SQL (named paramstyles escape some names)."""
    binds: Mapping[str, Callable[[Any], Any]]
    results: tuple[Callable[[Any], Any] | None, ...] | None
    """Per result column, or None when no column needs converting."""


class Direct:
    """Runs `Step`s of autocommit plans on one engine's pool, bypassing `Connection`."""

    def __init__(
        self, engine: Engine, schema: str | None, fallback: Callable[[Step], Rows | None]
    ) -> None:
        self.engine = engine
        self.fallback = fallback
        """Runs a step this path cannot (on a `Connection` of its own)."""
        self.dialect = engine.dialect
        self._schemas = {None: schema} if schema else None
        self.named_rows = _named_rows(engine.dialect.driver)
        self.asyncpg = engine.dialect.driver == "asyncpg"
        """Statements go to the asyncpg connection itself, not the DBAPI adapter."""
        # statements hash by identity; the ones we run are built once and kept
        self._compiled: dict[Executable, Compiled | None] = {}

    def available(self) -> bool:
        """Nobody listens to statements on this engine (checked per call: listeners
        may be added at any time) and it does not echo them. The engine events checked
        are the ones a `Connection` fires per statement and this path would skip, with
        `handle_error`, which SQLAlchemy keeps on the dialect."""
        engine = self.engine
        d = engine.dispatch
        return not (
            engine.echo
            or d.before_execute
            or d.after_execute
            or d.before_cursor_execute
            or d.after_cursor_execute
            or engine.dialect.dispatch.handle_error
        )

    def connect(self) -> DirectConnection:
        return DirectConnection(self)

    def params(self, compiled: Compiled, step: Step) -> Any:
        """The step's parameters as the driver takes them, through the bind processors."""
        values = compiled.compiled.construct_params(step.params, escape_names=False)  # type: ignore[arg-type]
        binds = compiled.binds
        if compiled.order is not None:
            return self.dialect.execute_sequence_format(
                [binds[k](values[k]) if k in binds else values[k] for k in compiled.order]
            )
        names = compiled.names
        return {names.get(k, k): binds[k](v) if k in binds else v for k, v in values.items()}

    def converted(self, compiled: Compiled, rows: Any, names: Sequence[str]) -> Rows:
        """Rows readable by column name, with SQLAlchemy's result processors applied."""
        results = compiled.results
        if results is None:
            if rows and isinstance(rows[0], self.named_rows):
                return rows  # type: ignore[no-any-return]  # already read by column name
            return [dict(zip(names, row, strict=True)) for row in rows]
        out = []
        for row in rows:
            values_out = zip(names, results, row, strict=True)
            out.append({n: (p(v) if p else v) for n, p, v in values_out})
        return out

    async def on_asyncpg(
        self, fairy: Any, compiled: Compiled, params: Any, fetch: bool
    ) -> Rows | None:
        """Run a statement on the asyncpg connection under a pooled `fairy`."""
        adapter = fairy.dbapi_connection
        driver = adapter._connection  # asyncpg.Connection
        try:
            try:
                if not fetch:
                    await driver.execute(compiled.sql, *params)
                    return None
                rows = await driver.fetch(compiled.sql, *params)
            except Exception as error:
                adapter._handle_exception(error)  # raises it as the adapter's cursor would
                raise
        except self.dialect.loaded_dbapi.Error as error:
            raise self.wrapped(error, compiled.sql, params, fairy, None) from error
        except BaseException as exit_:
            if not isinstance(exit_, Exception):
                # cancelled mid-statement: state unknown. Outside a greenlet SQLAlchemy
                # closes the connection without waiting.
                fairy.invalidate()
            raise
        return self.converted(compiled, rows, list(rows[0].keys()) if rows else ())

    def wrapped(self, error: Any, sql: str, params: Any, fairy: Any, cursor: Any) -> StatementError:
        """The error `Connection` would raise; a lost connection is invalidated."""
        dialect = self.dialect
        lost = dialect.is_disconnect(error, fairy.dbapi_connection, cursor)
        if lost:
            fairy.invalidate(error)
        wrapped: StatementError = DBAPIError.instance(
            sql,
            params,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=self.engine.hide_parameters,
            connection_invalidated=lost,
            dialect=dialect,
        )
        return wrapped

    # -- asyncpg without a greenlet -------------------------------------------------

    def native(self, step: Step, fairy: Any) -> Compiled | None:
        """The compiled statement when `step` can run on the asyncpg connection of a
        leased `fairy` straight from the event loop, else None."""
        compiled = self.compiled(step)
        if compiled is None or not _cached_by_asyncpg(fairy, compiled.sql):
            return None
        return compiled

    def lease(self) -> Any:
        """A pooled connection taken on the event loop itself, without a greenlet, or
        None where taking one might wait or do I/O: a greenlet per call cost about 40
        µs of CPU (measured around the same asyncpg statement), a sixth of an agent
        step. Only from SQLAlchemy's own async queue pool with an idle connection in
        it, no pre-ping and no pool listeners (which may do I/O). The idle connection
        may still need reconnecting (invalidated, or due for `pool_recycle`): SQLAlchemy
        then raises `MissingGreenlet` having given it back (closing the `connect`
        coroutine it did not start, which would warn), and this returns `STALE`."""
        pool: Any = self.engine.pool
        if (
            not self.asyncpg
            or type(pool) is not AsyncAdaptedQueuePool
            or pool._pre_ping
            or pool.dispatch.checkout
            or pool.dispatch.checkin
            or pool.dispatch.reset
            or pool.checkedin() == 0
        ):
            return None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
            try:
                return self.engine.raw_connection()
            except MissingGreenlet:
                return STALE

    def reconnect_idle(self) -> None:
        """Check out every idle connection and give it back (in a greenlet, where
        reconnecting can happen), so a stale one does not keep coming back to `lease`
        at the head of the pool's queue."""
        pool: Any = self.engine.pool
        taken = []
        try:
            for _ in range(pool.checkedin()):
                taken.append(self.engine.raw_connection())
        finally:
            for fairy in taken:
                fairy.close()

    def give_back(self, fairy: Any) -> bool:
        """Return a leased connection to the pool on the event loop when that needs no
        I/O (the pool has room for it: no overflow connection to close, and rolling
        back a connection with no transaction is a no-op); False: use a greenlet."""
        pool: Any = self.engine.pool
        if fairy.dbapi_connection is not None and pool.checkedin() >= pool.size():
            return False
        fairy.close()  # an invalidated one is already closed: this only lets it go
        return True

    def compiled(self, step: Step) -> Compiled | None:
        """The step's statement compiled for this engine, or None when this path must
        not run it (executemany, expanding or literal-execute parameters)."""
        if step.params is not None and not isinstance(step.params, Mapping):
            return None
        statement = step.statement
        if statement in self._compiled:
            return self._compiled[statement]
        if len(self._compiled) >= COMPILED_KEEP:
            self._compiled.clear()
        made = self._compiled[statement] = self._compile(statement)
        return made

    def _compile(self, statement: Executable) -> Compiled | None:
        dialect = self.dialect
        kw: dict[str, Any] = {}
        if self._schemas:
            kw = {"schema_translate_map": self._schemas, "render_schema_translate": True}
        compiled = statement.compile(dialect=dialect, **kw)  # type: ignore[attr-defined]
        assert isinstance(compiled, SQLCompiler)
        if compiled.literal_execute_params or compiled.post_compile_params:
            return None
        binds = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                binds[name] = processor
        results: tuple[Callable[[Any], Any] | None, ...] | None = None
        columns = getattr(statement, "selected_columns", None)
        if columns is not None:
            results = tuple(
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            )
            if not any(results):
                results = None
        return Compiled(
            compiled=compiled,
            sql=compiled.string,
            order=tuple(compiled.positiontup) if compiled.positional else None,  # type: ignore[arg-type]
            names=compiled.escaped_bind_names,
            binds=binds,
            results=results,
        )


class DirectConnection:
    """A pooled connection outside any transaction for the statements of one plan
    (asyncpg's own, or the DBAPI cursor in autocommit), taken at its first statement
    and given back (isolation level restored) at the end, or
    before a statement this path cannot run goes to a `Connection` of its own (so a
    plan never holds two connections: with a pool of one, that would wait forever)."""

    def __init__(self, direct: Direct) -> None:
        self.direct = direct
        self.fairy: Any = None
        self.cursor: DBAPICursor | None = None
        self.switched = False
        """The connection was switched to autocommit (restored on release)."""

    def __enter__(self) -> DirectConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    def _acquire(self) -> Any:
        if self.fairy is None:
            self.fairy = self.direct.engine.raw_connection()
        return self.fairy

    def _cursor(self) -> DBAPICursor:
        """The connection's DBAPI cursor, the connection switched to autocommit first
        (asyncpg's adapter would otherwise open a transaction for it)."""
        if self.cursor is None:
            fairy = self._acquire()
            self.direct.dialect.set_isolation_level(fairy.dbapi_connection, "AUTOCOMMIT")
            self.switched = True
            self.cursor = fairy.cursor()
        return self.cursor

    def _release(self) -> None:
        fairy, cursor, switched = self.fairy, self.cursor, self.switched
        if fairy is None:
            return
        self.fairy = self.cursor = None
        self.switched = False
        try:
            if fairy.dbapi_connection is not None:  # None once invalidated
                if cursor is not None:
                    cursor.close()
                if switched:
                    self.direct.dialect.reset_isolation_level(fairy.dbapi_connection)
        except Exception:
            # never pool a connection left in autocommit; the plan's own outcome (or
            # error) stands
            fairy.invalidate()
        finally:
            fairy.close()

    def execute(self, step: Step) -> Rows | None:
        compiled = self.direct.compiled(step)
        if compiled is None:
            self._release()
            return self.direct.fallback(step)
        params = self.direct.params(compiled, step)
        fairy = self._acquire()
        if self.direct.asyncpg and _cached_by_asyncpg(fairy, compiled.sql):
            return await_only(self.direct.on_asyncpg(fairy, compiled, params, step.fetch))
        try:
            cursor = self._cursor()
            cursor.execute(compiled.sql, params)
            if not step.fetch:
                return None
            names_out = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchall()
        except self.direct.dialect.loaded_dbapi.Error as error:
            raise self.direct.wrapped(error, compiled.sql, params, fairy, self.cursor) from error
        except BaseException as exit_:
            if not isinstance(exit_, Exception):
                # cancelled or interrupted mid-statement: the connection's state is
                # unknown, so it is discarded, as `Connection` does
                fairy.invalidate()
            raise
        return self.direct.converted(compiled, rows, names_out)


def _cached_by_asyncpg(fairy: Any, sql: str) -> bool:
    """Whether asyncpg keeps this statement prepared (`max_cacheable_statement_size`,
    15 kB by default). A longer one (delta history of three channels or more) it would
    prepare and plan afresh on every call, in an extra round trip; the adapter's cursor
    keeps it prepared in SQLAlchemy's own cache instead."""
    config = getattr(fairy.dbapi_connection._connection, "_config", None)
    return len(sql) <= getattr(config, "max_cacheable_statement_size", 15 * 1024)


def _named_rows(driver: str) -> tuple[type, ...]:
    """Row types of this driver a plan can read by column name as they come
    (asyncpg's `Record`), so they are not copied into dicts (1-2 µs a row)."""
    if driver == "asyncpg":
        from asyncpg import Record  # type: ignore[import-untyped]

        return (Record,)
    return ()
