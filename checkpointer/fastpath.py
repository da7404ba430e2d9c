"""The fast path: autocommit statements run without SQLAlchemy's `Connection`.

`Connection.execute` costs about 80 µs of CPU per statement over the driver (events,
execution context, result objects), and checking out a `Connection` in autocommit
another 50: on loopback an agent step is CPU-bound, and this was a third of ours. For
plans that need no transaction, this runs each statement as SQLAlchemy compiled it (once
per statement), with SQLAlchemy's bind and result processors, on a connection from the
engine's own pool, and wraps driver errors as `Connection` would
(`sqlalchemy.exc.DBAPIError`; a disconnect invalidates the connection).

On asyncpg it skips SQLAlchemy's DBAPI adapter too and awaits the driver's own
`Connection.fetch`/`execute` (its statement cache, the type codecs SQLAlchemy set up on
connect, outside any transaction): the adapter's cursor cost another 30 µs per
statement. Driver errors go through the adapter's own translation first, so they come out
as they would through the cursor. A statement too long for asyncpg's statement cache goes
through the adapter's cursor, whose own cache keeps it prepared. Where taking and
returning a pooled connection needs no I/O (`FastPath.lease`), the async saver runs such
plans on the event loop without a greenlet (one costs about 40 µs of CPU).

The door, and all the savers see of it:
- `probe(...)`, once per saver: versions known and every private attribute this module
  reads present (`PROBED`), else one INFO line on the `checkpointer` logger and `None`;
- `FastPath.usable()`, per call: nothing observes statements (no `echo`, the
  `sqlalchemy.engine` logger below INFO, no statement or execution listener); otherwise
  the call goes through `Connection`, which logs and fires them;
- `FastPath.trial()`, at a saver's first use: one statement that must read back right;
- `FastPath.connect()` (sync: `execute(step) -> rows`) and `FastPath.lease()` (async,
  on the event loop: `await execute(step)`, `await release()`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, Integer, bindparam, event, select
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError, MissingGreenlet, StatementError
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import await_only, greenlet_spawn

from .plans import Plan, Rows, Step

log = logging.getLogger("checkpointer")

COMPILED_KEEP = 512
"""Compiled statements kept per saver (the filtered list statements are bounded too)."""

SQLALCHEMY_TESTED = (((2, 0, 55), (2, 1)), ((2, 1, 5), (2, 2)))
"""SQLAlchemy versions this module was run on (from, before). In 2.0.30-2.0.54 and
2.1.0-2.1.4 the async pool awaits its queue whenever its overflow is full (say
`max_overflow=0` with every connection made), even with a connection idle in it: taking
one off a greenlet always failed (`MissingGreenlet`), so every call paid for the stale
route and then a greenlet (pyproject.toml excludes them)."""

ASYNCPG_TESTED = ((0, 32), (0, 33))
"""asyncpg versions this module was run on (from, before)."""

PROBED = (
    ("sqlalchemy.pool.Pool", "_pre_ping"),
    ("sqlalchemy.dialects.postgresql.asyncpg.AsyncAdapt_asyncpg_connection", "_handle_exception"),
    ("sqlalchemy.util.concurrency", "in_greenlet"),
    ("asyncpg.Connection", "_config"),
    ("asyncpg.connect_utils._ClientConfiguration", "max_cacheable_statement_size"),
)
"""The private attributes of other packages this module reads (asyncpg engines only),
each checked by `probe` before a saver uses the fast path."""

TRIAL = select(bindparam("trial", type_=Integer).label("trial"))
"""The statement `FastPath.trial` runs at first use (it must read back its parameter)."""


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


def probe(
    engine: Engine,
    schema: str | None,
    fallback: Callable[[Step], Rows | None],
    views: Sequence[Engine] = (),
) -> FastPath | None:
    """A fast path for `engine`, or None (with one INFO line saying why) when a version
    or an attribute it relies on is not what it was tested with. `fallback` runs a step
    this path cannot (on a `Connection` of its own); `views` are the saver's
    `execution_options` views of `engine`, whose `echo` is kept to the engine's."""
    sqlite = engine.dialect.name == "sqlite"
    why = _why_not(engine) or (_sqlite_why_not(engine) if sqlite else None)
    if why is not None:
        log.info("fast path off for %s, statements go through Connection: %s", engine.url, why)
        return None
    return (SqlitePath if sqlite else FastPath)(engine, schema, fallback, views)


def _why_not(engine: Engine) -> str | None:
    found = _version(sqlalchemy.__version__)
    if not any(low <= found < high for low, high in SQLALCHEMY_TESTED):
        return f"SQLAlchemy {sqlalchemy.__version__} is not among the versions it was tested on"
    dialect = engine.dialect
    needed = (
        (engine.dispatch, ("before_execute", "after_execute", "before_cursor_execute")),
        (engine.dispatch, ("after_cursor_execute",)),
        (dialect.dispatch, ("handle_error", "do_execute", "do_execute_no_params")),
        (dialect, ("execute_sequence_format", "is_disconnect", "set_isolation_level")),
        (dialect, ("reset_isolation_level", "loaded_dbapi")),
    )
    for owner, names in needed:
        for name in names:
            if not hasattr(owner, name):
                return f"{type(owner).__name__} has no {name!r}"
    compiled = TRIAL.compile(dialect=dialect)
    for name in (
        "positiontup",
        "escaped_bind_names",
        "binds",
        "literal_execute_params",
        "post_compile_params",
    ):
        if not hasattr(compiled, name):
            return f"SQLAlchemy's compiled statements have no {name!r}"
    if "escape_names" not in inspect.signature(compiled.construct_params).parameters:
        return "SQLAlchemy's construct_params takes no escape_names"
    if dialect.driver != "asyncpg":
        return None
    try:
        import asyncpg
    except ImportError:  # pragma: no cover  (the dialect imported it)
        return "asyncpg is not importable"
    if not ASYNCPG_TESTED[0] <= _version(asyncpg.__version__) < ASYNCPG_TESTED[1]:
        return f"asyncpg {asyncpg.__version__} is not among the versions it was tested on"
    for where, name in PROBED:
        target = engine.pool if where == "sqlalchemy.pool.Pool" else _resolve(where)
        if target is None or not hasattr(target, name):
            return f"{where} has no {name!r}"
    for name in ("checkout", "checkin", "reset"):
        if not hasattr(engine.pool.dispatch, name):
            return f"the pool's events have no {name!r}"
    return None


def _resolve(dotted: str) -> Any:
    """The object a dotted name stands for (module, then attributes), or None."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            found = getattr(found, part, None)
        return found
    return None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def _refuse_off_greenlet(*args: Any) -> None:
    """`do_connect` listener: connecting off a greenlet fails anyway (`MissingGreenlet`);
    failing before the driver's `connect()` coroutine exists leaves none unawaited to
    warn about. Only `FastPath.lease` connects off a greenlet, when the idle connection it
    was handed must reconnect (invalidated, or past `pool_recycle`)."""
    from sqlalchemy.util.concurrency import in_greenlet

    if not in_greenlet():
        raise MissingGreenlet("a stale pooled connection must reconnect in a greenlet")


class FastPath:
    """Runs `Step`s of autocommit plans on one engine's pool, bypassing `Connection`."""

    runs_plans = False
    """Whole plans go to `run` (SQLite), not statement by statement to `connect`."""

    def run(self, plan: Any, drive: Callable[..., Any], *args: Any, turn: Any = None) -> Any:
        """`drive(plan, *args, execute)` on one connection (`runs_plans` only)."""
        raise NotImplementedError("this fast path runs statements, not plans")

    async def arun(self, plan: Any, drive: Callable[..., Any], *args: Any, turn: Any = None) -> Any:
        """`run` awaited from the event loop (`runs_plans` only)."""
        raise NotImplementedError("this fast path runs statements, not plans")

    def __init__(
        self,
        engine: Engine,
        schema: str | None,
        fallback: Callable[[Step], Rows | None],
        views: Sequence[Engine] = (),
    ) -> None:
        self.engine = engine
        self.views = tuple(views)
        self._echo = engine.echo
        self.fallback = fallback
        self.dialect = engine.dialect
        self._schemas = {None: schema} if schema else None
        self.asyncpg = engine.dialect.driver == "asyncpg"
        self.psycopg = engine.dialect.driver == "psycopg"
        """Sync psycopg: the DBAPI connection is psycopg's own, whose public `autocommit`
        flag is switched directly (`autocommit_on`)."""
        """Statements go to the asyncpg connection itself, not the DBAPI adapter."""
        self.named_rows = _named_rows(engine.dialect.driver)
        # statements hash by identity; the ones we run are built once and kept
        self._compiled: dict[Executable, Compiled | None] = {}
        self._stale = False
        """`lease` met an idle connection that must reconnect: reconnect the idle ones
        (in a greenlet) at the next `connect`."""
        self.cancel_settles = self.asyncpg and _asyncpg_settles_cancel()
        """A statement cancelled on the asyncpg connection keeps the connection: asyncpg
        sends the server a cancel request, and its next statement waits until the
        server acknowledged it (asyncpg >= 0.32), so the connection goes back to the pool
        as it is (discarding it cost a new connection per cancelled call, and asyncpg's
        pending futures, failed by the abort, printed "Future exception was never
        retrieved")."""
        self._cacheable = 15 * 1024
        """asyncpg's `max_cacheable_statement_size` (read from a connection at `trial`)."""
        if self.asyncpg and not event.contains(engine, "do_connect", _refuse_off_greenlet):
            event.listen(engine, "do_connect", _refuse_off_greenlet)

    # -- the door ------------------------------------------------------------------

    def usable(self) -> bool:
        """Nobody observes statements on this engine (checked per call: listeners and
        logging may be switched on at any time): no statement or execution listener
        (`handle_error` and `do_execute*` live on the dialect) and no SQL logging, by
        `echo` or by the `sqlalchemy.engine` logger's level."""
        engine = self.engine
        if engine.echo is not self._echo:
            self._follow_echo()
        d = engine.dispatch
        e = self.dialect.dispatch
        return not (
            d.before_execute
            or d.after_execute
            or d.before_cursor_execute
            or d.after_cursor_execute
            or e.handle_error
            or e.do_execute
            or e.do_execute_no_params
            or engine.logger.isEnabledFor(logging.INFO)
        )

    def _follow_echo(self) -> None:
        """`echo` set on the engine after the saver was made: an `execution_options`
        view keeps the value it was made with, so the `Connection`s this path steps
        aside for would not log; they follow the engine's."""
        self._echo = self.engine.echo
        for view in self.views:
            view.echo = self._echo

    def trial(self) -> bool:
        """Run one statement this way (sync: in a greenlet on the async saver) and check
        it reads back; False (with one INFO line) if it does not. Database errors
        propagate: they say nothing about this path."""
        try:
            with self.connect() as conn:
                if self.asyncpg:
                    conn.fairy = self.engine.raw_connection()
                    config = conn.fairy.driver_connection._config
                    self._cacheable = int(config.max_cacheable_statement_size)
                rows = conn.execute(Step(TRIAL, {"trial": 7}, fetch=True))
            got = [dict(r) for r in rows or ()]
            if got != [{"trial": 7}]:
                raise ValueError(f"the trial statement read {got!r}")
        except DBAPIError:
            raise
        except Exception as error:
            _trial_failed(self.engine, error)
            return False
        return True

    def connect(self) -> FastConnection:
        """A connection for one plan's statements (sync; in a greenlet on the async
        saver), taken at its first statement."""
        if self._stale:
            self._stale = False
            self._reconnect_idle()
        return FastConnection(self)

    def lease(self) -> Leased | None:
        """A pooled connection taken on the event loop itself, without a greenlet, or
        None where taking one might wait or do I/O: only asyncpg, from SQLAlchemy's own
        async queue pool with an idle connection in it, no pre-ping and no pool
        listeners (which may do I/O). An idle connection that must reconnect
        (invalidated, or due for `pool_recycle`) fails (`_refuse_off_greenlet`) having
        been given back: None, and the next `connect` reconnects the idle ones."""
        pool: Any = self.engine.pool
        if (
            not self.asyncpg
            or self._stale
            or type(pool) is not AsyncAdaptedQueuePool
            or pool._pre_ping
            or pool.dispatch.checkout
            or pool.dispatch.checkin
            or pool.dispatch.reset
            or pool.checkedin() == 0
        ):
            return None
        try:
            fairy = pool.connect()
        except MissingGreenlet:
            self._stale = True
            return None
        conn = FastConnection(self)
        conn.fairy = fairy
        return Leased(conn)

    # -- inside ----------------------------------------------------------------------

    def _reconnect_idle(self) -> None:
        """Check out every idle connection and give it back (in a greenlet, where
        reconnecting can happen), so a stale one does not keep coming back to `lease`
        at the head of the pool's queue."""
        pool: Any = self.engine.pool
        taken = []
        try:
            # only what is idle now, never waiting for more: taking the pool's count
            # up front, several of these at once (the server killed every connection)
            # each held some while waiting for the others' until the pool timed out
            for _ in range(pool.checkedin()):
                if pool.checkedin() == 0:
                    break
                taken.append(self.engine.raw_connection())
        except (DBAPIError, MissingGreenlet):
            raise
        except Exception as error:
            raise self.connect_error(error) from error
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

    def autocommit_on(self, dbapi_connection: Any) -> bool:
        """Switch a connection to autocommit; False when it already was (nothing to
        restore). On sync psycopg the flag alone, left as it was found at `release`:
        the dialect's `set_isolation_level` and `reset_isolation_level` also write the
        isolation level each time (under the profiler, about a seventh of a sync
        `put_writes`' CPU)."""
        if self.psycopg:
            if dbapi_connection.autocommit:
                return False
            dbapi_connection.autocommit = True
            return True
        self.dialect.set_isolation_level(dbapi_connection, "AUTOCOMMIT")
        return True

    def autocommit_off(self, dbapi_connection: Any) -> None:
        """Undo `autocommit_on`."""
        if self.psycopg:
            dbapi_connection.autocommit = False
        else:
            self.dialect.reset_isolation_level(dbapi_connection)

    def native(self, step: Step) -> Compiled | None:
        """The compiled statement when asyncpg keeps it prepared (`_cacheable`: a longer
        one, delta history of three channels or more, it would prepare and plan afresh
        on every call; the adapter's cursor keeps it in SQLAlchemy's cache instead)."""
        compiled = self.compiled(step)
        if compiled is None or len(compiled.sql) > self._cacheable:
            return None
        return compiled

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
        driver = fairy.driver_connection  # asyncpg.Connection
        try:
            try:
                if not fetch:
                    await driver.execute(compiled.sql, *params)
                    return None
                rows = await driver.fetch(compiled.sql, *params)
            except Exception as error:
                # raises it as the adapter's cursor would
                fairy.dbapi_connection._handle_exception(error)
                raise
        except self.dialect.loaded_dbapi.Error as error:
            raise self.wrapped(error, compiled.sql, params, fairy, None) from error
        except Exception as error:
            # what the adapter does not translate (OSError, asyncpg's client-side
            # errors): never let it out bare
            if isinstance(error, (DBAPIError, MissingGreenlet)):
                raise
            raise self.wrapped(error, compiled.sql, params, fairy, None) from error
        except BaseException as exit_:
            if not isinstance(exit_, Exception) and not (
                self.cancel_settles and isinstance(exit_, asyncio.CancelledError)
            ):
                # interrupted mid-statement: state unknown. Outside a greenlet
                # SQLAlchemy closes the connection without waiting.
                fairy.invalidate()
            raise
        return self.converted(compiled, rows, list(rows[0].keys()) if rows else ())

    def wrapped(self, error: Any, sql: str, params: Any, fairy: Any, cursor: Any) -> StatementError:
        """The error `Connection` would raise. A lost connection is invalidated, with
        every connection of its pool made before it, as `Connection` does: the server
        that killed this one (restarted, or a pooler or operator terminating backends)
        most likely killed its idle siblings too, which would otherwise fail the next
        calls one by one."""
        dialect = self.dialect
        dbapi_connection = fairy.dbapi_connection
        lost = dbapi_connection is None or bool(
            dialect.is_disconnect(error, dbapi_connection, cursor)
        )
        if not lost and self.asyncpg:
            # asyncpg's client-side state errors ("cannot switch to state 12; another
            # operation (2) is in progress"), met on a connection whose server process
            # was killed while it was idle: its protocol is wedged, never to be reused
            lost = fairy.driver_connection.is_closed() or _client_side(error)
        if lost:
            self.invalidate_pool(fairy, error)
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

    def invalidate_pool(self, fairy: Any, error: BaseException | None) -> None:
        """Invalidate `fairy` and mark the pool's older connections for reconnecting
        at their next checkout (`Pool._invalidate`, what `Connection` calls on a
        disconnect; probed: without it only this connection is invalidated)."""
        pool: Any = self.engine.pool
        mark = getattr(pool, "_invalidate", None)
        if mark is not None:
            mark(fairy, error)
        elif fairy.dbapi_connection is not None:
            fairy.invalidate(error)

    def connect_error(self, error: Exception) -> StatementError:
        """A driver's error while connecting (SQLAlchemy's asyncpg adapter lets
        asyncpg's and the OS's through `raw_connection()` unwrapped) as the
        `DBAPIError` `Engine.connect()` would raise."""
        dialect = self.dialect
        wrapped: StatementError = DBAPIError.instance(
            None,
            None,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=self.engine.hide_parameters,
            connection_invalidated=True,
            dialect=dialect,
        )
        return wrapped

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
        made = _compile_any(statement, self.dialect, self._schemas)
        if made.compiled.literal_execute_params or made.compiled.post_compile_params:
            return None
        return made


def _compile_any(
    statement: Executable, dialect: Any, schemas: Mapping[Any, Any] | None
) -> Compiled:
    """`statement` compiled for `dialect` (schema names translated), with the bind and
    result processors its values need."""
    kw: dict[str, Any] = {}
    if schemas:
        kw = {"schema_translate_map": schemas, "render_schema_translate": True}
    compiled = statement.compile(dialect=dialect, **kw)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    binds = {}
    for name, bind in compiled.binds.items():
        processor: Callable[[Any], Any] | None = bind.type.dialect_impl(dialect).bind_processor(
            dialect
        )
        literal = _array_literal(bind.type) if dialect.driver == "psycopg" else None
        if literal is not None:
            processor = literal  # in place of the dialect's (psycopg.Binary elements)
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


def _quoted_text(value: str | None) -> str:
    if value is None:
        return "NULL"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quoted_bytes(value: bytes | None) -> str:
    return "NULL" if value is None else '"\\\\x' + value.hex() + '"'


def _integer(value: int | None) -> str:
    return "NULL" if value is None else str(int(value))


_ELEMENTS: tuple[tuple[type, Callable[[Any], str]], ...] = (
    (sqlalchemy.LargeBinary, _quoted_bytes),
    (sqlalchemy.String, _quoted_text),
    (sqlalchemy.Integer, _integer),
)


def _array_literal(type_: Any) -> Callable[[Any], Any] | None:
    """Sync psycopg: a list bound to a text, bytea or integer array parameter, as
    PostgreSQL's array literal (a string, which the statement's `::TYPE[]` cast reads).
    psycopg's own list dumper infers the element type and adapts each element in
    Python: for the 4-8 short arrays of a `put` or `put_writes` it measured about a
    third of the call's CPU."""
    if not isinstance(type_, sqlalchemy.ARRAY) or type_.dimensions not in (None, 1):
        return None
    for cls, element in _ELEMENTS:
        if isinstance(type_.item_type, cls):

            def literal(value: Any, element: Callable[[Any], str] = element) -> Any:
                if value is None or isinstance(value, str):
                    return value
                return "{" + ",".join(map(element, value)) + "}"

            return literal
    return None


class FastConnection:
    """A pooled connection outside any transaction for the statements of one plan
    (asyncpg's own, or the DBAPI cursor in autocommit), taken at its first statement
    and given back (isolation level restored) at the end, or before a statement this
    path cannot run goes to a `Connection` of its own (so a plan never holds two
    connections: with a pool of one, that would wait forever)."""

    __slots__ = ("cursor", "fairy", "fast", "switched")

    def __init__(self, fast: FastPath) -> None:
        self.fast = fast
        self.fairy: Any = None
        self.cursor: DBAPICursor | None = None
        self.switched = False
        """The connection was switched to autocommit (restored on release)."""

    def __enter__(self) -> FastConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _acquire(self) -> Any:
        if self.fairy is None:
            try:
                self.fairy = self.fast.engine.raw_connection()
            except (DBAPIError, MissingGreenlet):
                raise
            except Exception as error:
                raise self.fast.connect_error(error) from error
        return self.fairy

    def _cursor(self) -> DBAPICursor:
        """The connection's DBAPI cursor, the connection switched to autocommit first
        (asyncpg's adapter would otherwise open a transaction for it)."""
        if self.cursor is None:
            fairy = self._acquire()
            self.switched = self.fast.autocommit_on(fairy.dbapi_connection)
            self.cursor = fairy.cursor()
        return self.cursor

    def release(self) -> None:
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
                    self.fast.autocommit_off(fairy.dbapi_connection)
        except Exception:
            # never pool a connection left in autocommit; the plan's own outcome (or
            # error) stands
            fairy.invalidate()
        finally:
            fairy.close()

    def execute(self, step: Step) -> Rows | None:
        fast = self.fast
        compiled = fast.compiled(step)
        if compiled is None:
            self.release()
            return fast.fallback(step)
        params = fast.params(compiled, step)
        fairy = self._acquire()
        if fast.asyncpg and len(compiled.sql) <= fast._cacheable:
            return await_only(fast.on_asyncpg(fairy, compiled, params, step.fetch))
        try:
            cursor = self._cursor()
            cursor.execute(compiled.sql, params)
            if not step.fetch:
                return None
            names_out = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchall()
        except fast.dialect.loaded_dbapi.Error as error:
            raise fast.wrapped(error, compiled.sql, params, fairy, self.cursor) from error
        except BaseException as exit_:
            if not isinstance(exit_, Exception):
                # cancelled or interrupted mid-statement: the connection's state is
                # unknown, so it is discarded, as `Connection` does
                fairy.invalidate()
            raise
        return fast.converted(compiled, rows, names_out)


class Leased:
    """A plan's connection taken by `FastPath.lease` on the event loop: statements
    asyncpg keeps prepared run there; any other goes to a greenlet on the same
    connection (`FastConnection.execute`)."""

    __slots__ = ("conn",)

    def __init__(self, conn: FastConnection) -> None:
        self.conn = conn

    async def execute(self, step: Step) -> Rows | None:
        conn = self.conn
        fairy = conn.fairy
        if fairy is not None and conn.cursor is None:
            fast = conn.fast
            compiled = fast.native(step)
            if compiled is not None:
                params = fast.params(compiled, step)
                return await fast.on_asyncpg(fairy, compiled, params, step.fetch)
        return await greenlet_spawn(conn.execute, step)

    async def release(self) -> None:
        """Give the connection back, on the event loop where that needs no I/O."""
        conn = self.conn
        fairy = conn.fairy
        if fairy is None:
            return
        if conn.cursor is None and conn.fast.give_back(fairy):
            conn.fairy = None
            return
        await greenlet_spawn(conn.release)


def _client_side(error: BaseException) -> bool:
    """An asyncpg `InternalClientError` (as is, or under the adapter's error)."""
    for found in (error, error.__cause__, error.__context__):
        if found is not None and type(found).__name__ == "InternalClientError":
            return True
    return False


def _asyncpg_settles_cancel() -> bool:
    import asyncpg

    return _version(asyncpg.__version__) >= (0, 32)


def _trial_failed(engine: Engine, error: Exception) -> None:
    """The one INFO line of a failed trial statement (both paths)."""
    log.info(
        "fast path off for %s, statements go through Connection: trial statement failed (%s: %s)",
        engine.url,
        type(error).__name__,
        error,
    )


def _named_rows(driver: str) -> tuple[type, ...]:
    """Row types of this driver a plan can read by column name as they come
    (asyncpg's `Record`), so they are not copied into dicts (1-2 µs a row)."""
    if driver == "asyncpg":
        from asyncpg import Record

        return (Record,)
    return ()


# -- SQLite ------------------------------------------------------------------------

SQLITE_PROBED = (
    ("aiosqlite.Connection", "_execute"),
    ("aiosqlite.Connection", "_conn"),
)
"""The private attributes of aiosqlite this module reads (aiosqlite engines only):
`_execute(fn)` runs a function on the connection's worker thread, `_conn` is the
`sqlite3.Connection` there."""

AIOSQLITE_TESTED = ((0, 17), (0, 23))
"""aiosqlite versions this module was run on (from, before)."""


class _Failed(Exception):
    """A statement failed on SQLite's thread: carried out of it to be wrapped (and its
    connection invalidated if lost) on the caller's side, as `Connection` would."""

    def __init__(self, error: Exception, sql: str, params: Any) -> None:
        super().__init__(error)
        self.error, self.sql, self.params = error, sql, params


def _sqlite_of(driver: Any) -> Any:
    """The sqlite3 connection under an aiosqlite one. One closed under the pool raises
    aiosqlite's ValueError ("no active connection"): carried out as the OperationalError
    SQLAlchemy's adapter makes of it, which `wrapped` counts as a lost connection (the
    pool invalidated, the call retried on a fresh one) instead of a bare ValueError."""
    try:
        return driver._conn
    except ValueError as error:
        raise _Failed(sqlite3.OperationalError(str(error)), "", None) from error


def _sqlite_why_not(engine: Engine) -> str | None:
    if not hasattr(SQLCompiler, "construct_expanded_state"):
        return "SQLAlchemy's compiled statements have no 'construct_expanded_state'"
    checkin = getattr(_resolve("sqlalchemy.pool.base._ConnectionFairy"), "_checkin", None)
    if checkin is None or "transaction_was_reset" not in inspect.signature(checkin).parameters:
        return "SQLAlchemy's pooled connections have no _checkin(transaction_was_reset)"
    if engine.dialect.driver != "aiosqlite":
        return None
    try:
        import aiosqlite
    except ImportError:  # pragma: no cover  (the dialect imported it)
        return "aiosqlite is not importable"
    found = _version(getattr(aiosqlite, "__version__", "0"))
    if not AIOSQLITE_TESTED[0] <= found < AIOSQLITE_TESTED[1]:
        return f"aiosqlite {aiosqlite.__version__} is not among the versions it was tested on"
    for where, name in SQLITE_PROBED:
        target = _resolve(where)
        if target is None or not hasattr(target, name):
            return f"{where} has no {name!r}"
    for name in ("checkout", "checkin", "reset"):
        if not hasattr(engine.pool.dispatch, name):
            return f"the pool's events have no {name!r}"
    return None


class SqlitePath(FastPath):
    """Runs whole plans on SQLite: each plan's statements, and its transaction if it
    has one, on the raw `sqlite3.Connection` of one pooled connection, in one go.

    Through `Connection` on aiosqlite every `execute`, `fetchall`, cursor close, BEGIN
    and COMMIT is a round trip to aiosqlite's worker thread (an agent step made ~45 of
    them); here a plan is one function run on that thread (`aiosqlite.Connection.
    _execute`), so a call costs one round trip and the pool's rollback on return. On
    sqlite3 the same function runs in the calling thread. The connection is switched
    to sqlite3's autocommit mode (`isolation_level = None`) for the plan and restored:
    reads take no transaction, atomic plans run in `BEGIN IMMEDIATE` ... `COMMIT`
    (the write lock taken up front, as `lock_before_read` asks)."""

    runs_plans = True

    def __init__(
        self,
        engine: Engine,
        schema: str | None,
        fallback: Callable[[Step], Rows | None],
        views: Sequence[Engine] = (),
    ) -> None:
        super().__init__(engine, schema, fallback, views)
        self.threaded = engine.dialect.driver == "aiosqlite"
        self._sqlite_compiled: dict[Executable, Compiled] = {}
        self._positional: dict[int, tuple[_Param, ...]] = {}
        """Per compiled statement (by id; cleared with `_sqlite_compiled`, which keeps
        them): see `_positional`."""
        size = getattr(engine.pool, "size", None)
        self._width = max(1, int(size())) if callable(size) else 1
        """Plans run at once, at most: the pool's size. Beyond it a queue pool opens an
        overflow connection per plan and closes it on return (on aiosqlite a thread
        started and stopped, on both a file opened), which costs more than waiting for
        one of the pooled connections: SQLite writes one transaction at a time anyway."""
        self._slots: asyncio.Semaphore | None = None
        self._thread_slots = threading.BoundedSemaphore(self._width)
        # writing plans waiting for a turn (see `_grouped`, `_agrouped`)
        self._queue_lock = threading.Lock()
        self._waiting: list[_Queued] = []
        self._leading = False
        self._awaiting: list[_Queued] = []
        self._drainer: asyncio.Future[None] | None = None
        if self.threaded and not event.contains(engine, "do_connect", _refuse_off_greenlet):
            event.listen(engine, "do_connect", _refuse_off_greenlet)

    def lease(self) -> Leased | None:
        return None  # plans run in a greenlet, see `run`

    def usable(self) -> bool:
        """As `FastPath.usable`, and no transaction listener (`begin`, `commit`,
        `rollback`): this path runs transactions too, which `Connection` would report."""
        d = self.engine.dispatch
        return super().usable() and not (d.begin or d.commit or d.rollback)

    def trial(self) -> bool:
        try:
            outcome = self.run(_trial_plan(), _drive_trial)
            if outcome != [{"trial": 7}]:
                raise ValueError(f"the trial statement read {outcome!r}")
        except DBAPIError:
            raise
        except Exception as error:
            _trial_failed(self.engine, error)
            return False
        return True

    async def arun(self, plan: Any, drive: Callable[..., Any], *args: Any, turn: Any = None) -> Any:
        """`run` from the event loop (a writing plan with the saver's write `turn`, an
        `asyncio.Lock`, see `run`): where a pooled connection can be taken and given
        back without I/O (as `FastPath.lease`), the plan is one job on aiosqlite's
        thread and nothing else, no greenlet; else `run` in a greenlet. At most the
        pool's size of plans run at once (`_slots`)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._width)
        if turn is not None:
            return await self._agrouped(_Queued(plan, drive, args), turn)
        async with self._slots:
            return await self._arun(plan, drive, args)

    async def _arun(self, plan: Any, drive: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        fairy = self._take()
        if fairy is None:
            return await greenlet_spawn(self._run, plan, drive, args)
        try:
            driver: Any = fairy.driver_connection
            return await driver._execute(self._on, _sqlite_of(driver), plan, drive, args)
        except _Failed as failed:
            wrapped = await greenlet_spawn(
                self.wrapped, failed.error, failed.sql, failed.params, fairy, None
            )
            raise wrapped from failed.error
        finally:
            # Cancelled or not, the job leaves no transaction open (it commits or rolls
            # back on its thread, which runs it to the end and queues whatever comes next
            # behind it): the pool's rollback on return is skipped, as `Connection`
            # skips it after its own.
            if fairy.dbapi_connection is not None and self._room(fairy):
                fairy._checkin(transaction_was_reset=True)
            else:
                await greenlet_spawn(fairy.close)

    def _take(self) -> Any:
        """A pooled aiosqlite connection taken on the event loop, or None (see
        `FastPath.lease` for when that needs no I/O)."""
        pool: Any = self.engine.pool
        if (
            not self.threaded
            or self._stale
            or type(pool) is not AsyncAdaptedQueuePool
            or pool._pre_ping
            or pool.dispatch.checkout
            or pool.dispatch.checkin
            or pool.dispatch.reset
            or pool.checkedin() == 0
        ):
            return None
        try:
            return pool.connect()
        except MissingGreenlet:
            self._stale = True
            return None

    def _room(self, fairy: Any) -> bool:
        """The pool keeps `fairy` on return (closing an overflow one is I/O)."""
        pool: Any = self.engine.pool
        return bool(pool.checkedin() < pool.size())

    def run(self, plan: Any, drive: Callable[..., Any], *args: Any, turn: Any = None) -> Any:
        """`drive(plan, *args, execute)` on one pooled connection (sync; in a greenlet
        on the async saver), in a transaction if `plan.atomic`; at most the pool's size
        of plans at once (`_slots`). A writing plan comes with the saver's write `turn`
        (a `threading.Lock`, taken here, not by the caller): writing plans that wait
        for it are run together, one transaction and one commit for all (`_grouped`)."""
        if turn is not None and not self.threaded:
            return self._grouped(_Queued(plan, drive, args), turn)
        with self._thread_slots:
            return self._run(plan, drive, args)

    def _run(self, plan: Any, drive: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self._stale:
            self._stale = False
            self._reconnect_idle()
        fairy = self.engine.raw_connection()
        try:
            driver: Any = fairy.driver_connection
            if self.threaded:
                job = driver._execute(self._on, _sqlite_of(driver), plan, drive, args)
                return await_only(job)
            outcome = self._on(driver, plan, drive, args)
            if not driver.in_transaction:
                # nothing to roll back: the pool's reset on return (a ROLLBACK call and
                # its events) is skipped, as `Connection` skips it after its own commit
                fairy._checkin(transaction_was_reset=True)
            return outcome
        except _Failed as failed:
            raise self.wrapped(failed.error, failed.sql, failed.params, fairy, None) from (
                failed.error
            )
        except BaseException as exit_:
            if not isinstance(exit_, Exception):
                fairy.invalidate()  # cancelled: the connection's state is unknown
            raise
        finally:
            if fairy.dbapi_connection is not None:
                fairy.close()

    # -- writes in groups ------------------------------------------------------------
    #
    # SQLite commits one transaction at a time, and at `synchronous=FULL` every commit
    # waits for an fsync of the WAL (2-5 ms on this project's machine, against 0.1 ms
    # of CPU for a `put`). Writing plans that queue for the write turn are run by one
    # of them, the leader, in one transaction: each plan inside a savepoint of its own
    # (a plan that fails is rolled back to it and gets its error; the others go on),
    # then one COMMIT. Every call still returns only after the commit holding its
    # writes is on disk, and each plan is still all or nothing, so nothing is less
    # durable or less atomic than one transaction per call; a lone writer runs as
    # before (a group of one, no savepoint).

    def _grouped(self, entry: _Queued, turn: Any) -> Any:
        """Threads: queue `entry`; the first in an empty queue leads (runs a group),
        the others wait until their group ran or they are handed the lead."""
        entry.done = threading.Event()
        with self._queue_lock:
            self._waiting.append(entry)
            entry.lead = not self._leading
            self._leading = True
        if not entry.lead:
            assert entry.done is not None
            entry.done.wait()
        if entry.lead:
            self._lead(turn)
        return entry.result()

    def _lead(self, turn: Any) -> None:
        """Run the queue's first group (the leader first in it), then hand the lead to
        the next waiting plan, if any."""
        with self._queue_lock:
            group = self._waiting[:GROUP_LIMIT]
            del self._waiting[:GROUP_LIMIT]
        try:
            with turn, self._thread_slots:
                self._run_group(group)
        finally:
            with self._queue_lock:
                following = self._waiting[0] if self._waiting else None
                if following is None:
                    self._leading = False
                else:
                    following.lead = True
            for entry in group:
                entry.finished = True
                if entry.done is not None:
                    entry.done.set()
            if following is not None and following.done is not None:
                following.done.set()

    def _run_group(self, group: list[_Queued]) -> None:
        """One group on one pooled connection, in the calling thread (sqlite3)."""
        fairy = self.engine.raw_connection()
        try:
            self._on_group(fairy.driver_connection, group)
        except _Failed as failed:
            error = self.wrapped(failed.error, failed.sql, failed.params, fairy, None)
            error.__cause__ = failed.error
            for entry in group:
                entry.fail(error)
        except BaseException as exit_:
            for entry in group:
                entry.fail(exit_)
            if not isinstance(exit_, Exception):
                fairy.invalidate()
                raise
        else:
            self._settle(group, fairy)
            driver: Any = fairy.driver_connection
            if not driver.in_transaction:
                fairy._checkin(transaction_was_reset=True)
        finally:
            if fairy.dbapi_connection is not None:
                fairy.close()

    async def _agrouped(self, entry: _Queued, turn: Any) -> Any:
        """The event loop: queue `entry` and wait for the drainer (one task, started
        by the first in an empty queue) to run its group. A caller cancelled while it
        waits is left out of groups not yet begun."""
        entry.waiter = asyncio.get_running_loop().create_future()
        self._awaiting.append(entry)
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain(turn))
        await entry.waiter
        return entry.result()

    async def _drain(self, turn: Any) -> None:
        """Run the queued plans, a group at a time, each group with the write turn."""
        group: list[_Queued] = []
        try:
            while self._awaiting:
                group = [e for e in self._awaiting[:GROUP_LIMIT] if not e.cancelled()]
                del self._awaiting[:GROUP_LIMIT]
                if group:
                    assert self._slots is not None  # made by `arun`
                    async with turn, self._slots:
                        await self._arun_group(group)
                    for entry in group:
                        entry.wake()
                group = []
        except BaseException as exit_:
            for entry in group + self._awaiting:
                entry.fail(exit_)
                entry.wake()
            self._awaiting.clear()
            raise
        finally:
            self._drainer = None

    async def _arun_group(self, group: list[_Queued]) -> None:
        """One group on one pooled aiosqlite connection, as one job on its thread."""
        fairy = self._take()
        if fairy is None:
            await greenlet_spawn(self._run_group_in_greenlet, group)
            return
        try:
            driver: Any = fairy.driver_connection
            await driver._execute(self._on_group, _sqlite_of(driver), group)
            if any(isinstance(e.error, _Failed) for e in group):
                await greenlet_spawn(self._settle, group, fairy)
        except _Failed as failed:
            error = await greenlet_spawn(
                self.wrapped, failed.error, failed.sql, failed.params, fairy, None
            )
            error.__cause__ = failed.error
            for entry in group:
                entry.fail(error)
        finally:
            if fairy.dbapi_connection is not None and self._room(fairy):
                fairy._checkin(transaction_was_reset=True)
            else:
                await greenlet_spawn(fairy.close)

    def _run_group_in_greenlet(self, group: list[_Queued]) -> None:
        fairy = self.engine.raw_connection()
        try:
            driver: Any = fairy.driver_connection
            await_only(driver._execute(self._on_group, _sqlite_of(driver), group))
            self._settle(group, fairy)
        except _Failed as failed:
            error = self.wrapped(failed.error, failed.sql, failed.params, fairy, None)
            error.__cause__ = failed.error
            for entry in group:
                entry.fail(error)
        except BaseException as exit_:
            for entry in group:
                entry.fail(exit_)
            if not isinstance(exit_, Exception):
                fairy.invalidate()
                raise
        finally:
            fairy.close()

    def _settle(self, group: list[_Queued], fairy: Any) -> None:
        """A plan's failed statement as the error `Connection` would raise (see
        `wrapped`), while the group's connection is still out."""
        for entry in group:
            failed = entry.error
            if isinstance(failed, _Failed):
                error = self.wrapped(failed.error, failed.sql, failed.params, fairy, None)
                error.__cause__ = failed.error
                entry.error = error

    def _on_group(self, raw: Any, group: list[_Queued]) -> None:
        """On the connection's thread: BEGIN IMMEDIATE, each plan (in a savepoint when
        there are others), COMMIT. A failing BEGIN or COMMIT fails the whole group
        (`_Failed`); a failing plan only itself (`entry.error`)."""
        try:
            saved = raw.isolation_level
        except sqlite3.ProgrammingError as error:  # closed under the pool: a lost one
            raise _Failed(error, "", None) from error
        raw.isolation_level = None

        def execute(step: Step) -> Rows | None:
            return self._execute(raw, step)

        def run(sql: str) -> None:
            try:
                raw.execute(sql)
            except self.dialect.loaded_dbapi.Error as error:
                raise _Failed(error, sql, None) from error

        alone = len(group) == 1
        try:
            run("BEGIN IMMEDIATE")
            try:
                for entry in group:
                    if not alone:
                        run("SAVEPOINT plan")
                    try:
                        entry.outcome = entry.drive(entry.plan, *entry.args, execute)
                    except Exception as error:
                        entry.error = error
                        if not raw.in_transaction:
                            raise  # SQLite rolled the whole transaction back (I/O, full)
                        if not alone:
                            run("ROLLBACK TO plan")
                    if not alone:
                        run("RELEASE plan")
                if alone and group[0].error is not None:
                    run("ROLLBACK")
                else:
                    run("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
        finally:
            raw.isolation_level = saved

    def _on(self, raw: Any, plan: Any, drive: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            saved = raw.isolation_level
        except sqlite3.ProgrammingError as error:  # closed under the pool: a lost one
            raise _Failed(error, "", None) from error
        raw.isolation_level = None  # sqlite3's autocommit: no implicit BEGIN

        def execute(step: Step) -> Rows | None:
            return self._execute(raw, step)

        try:
            if not getattr(plan, "atomic", False):
                return drive(plan, *args, execute)
            raw.execute("BEGIN IMMEDIATE")
            try:
                outcome = drive(plan, *args, execute)
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
            return outcome
        finally:
            raw.isolation_level = saved

    def _execute(self, raw: Any, step: Step) -> Rows | None:
        compiled = self._sqlite_compile(step.statement)
        params = step.params
        sql = compiled.sql
        try:
            if params is not None and not isinstance(params, Mapping):
                bound = [self._bind(compiled, p) for p in params]
                if bound:
                    raw.executemany(bound[0][0], [values for _, values in bound])
                return None
            sql, values = self._bind(compiled, params)
            cursor = raw.execute(sql, values)
            if not step.fetch:
                return None
            names = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchall()
        except self.dialect.loaded_dbapi.Error as error:
            raise _Failed(error, sql, params) from error
        return self.converted(compiled, rows, names)

    def _bind(
        self, compiled: Compiled, params: Mapping[str, Any] | None
    ) -> tuple[str, tuple[Any, ...]]:
        """The SQL and its positional parameters through the bind processors; for a
        statement with expanding (`IN` lists) or literal-execute parameters, SQLAlchemy's
        own expansion of it for these values."""
        sqlc = compiled.compiled
        if sqlc.literal_execute_params or sqlc.post_compile_params:
            state = sqlc.construct_expanded_state(params, escape_names=False)
            procs = state.processors
            values = state.parameters
            return state.statement, tuple(
                procs[k](values[k]) if k in procs else values[k] for k in state.positiontup or ()
            )
        plan = self._positional.get(id(compiled))
        if plan is None:
            plan = self._positional[id(compiled)] = _positional(compiled)
        if plan and params is not None:
            out = []
            for key, name, const, processor in plan:
                if key in params:
                    value = params[key]
                elif name in params:
                    value = params[name]
                elif const is _REQUIRED:
                    break  # construct_params says which one is missing
                else:
                    value = const
                out.append(value if processor is None else processor(value))
            else:
                return compiled.sql, tuple(out)
        values = sqlc.construct_params(params, escape_names=False)
        binds = compiled.binds
        return compiled.sql, tuple(
            binds[k](values[k]) if k in binds else values[k] for k in compiled.order or ()
        )

    def converted(self, compiled: Compiled, rows: Any, names: Sequence[str]) -> Rows:
        """Rows as dicts by column name; only the columns that have a result processor
        (JSON documents) go through it (most of a read's columns are blobs and text)."""
        results = compiled.results
        if results is None:
            return [dict(zip(names, row, strict=True)) for row in rows]
        processed = [(names[i], i, p) for i, p in enumerate(results) if p is not None]
        out = []
        for row in rows:
            mapped = dict(zip(names, row, strict=True))
            for name, i, processor in processed:
                # a read's blob and write rows leave the documents NULL (the JSON
                # processor would still be called for each: 6 calls a read)
                if row[i] is not None:
                    mapped[name] = processor(row[i])
            out.append(mapped)
        return out

    def _sqlite_compile(self, statement: Executable) -> Compiled:
        made = self._sqlite_compiled.get(statement)
        if made is None:
            if len(self._sqlite_compiled) >= COMPILED_KEEP:
                self._sqlite_compiled.clear()
                self._positional.clear()
            made = self._sqlite_compiled[statement] = _compile_any(
                statement, self.dialect, self._schemas
            )
        return made


GROUP_LIMIT = 64
"""Writing plans run in one transaction, at most (a bound on how long one commit, and
the write lock, is held)."""


class _Queued:
    """A writing plan waiting for its turn (see `SqlitePath._grouped`)."""

    __slots__ = ("args", "done", "drive", "error", "finished", "lead", "outcome", "plan", "waiter")

    def __init__(self, plan: Any, drive: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.plan, self.drive, self.args = plan, drive, args
        self.outcome: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.lead = False
        self.done: threading.Event | None = None
        """Set when a thread's plan ran, or its thread is to lead (threads only)."""
        self.waiter: asyncio.Future[None] | None = None

    def fail(self, error: BaseException) -> None:
        """The whole group failed (its BEGIN or COMMIT, or the leader was interrupted):
        nothing of this plan was committed."""
        self.error = error if isinstance(error, Exception) else _Interrupted(error)

    def cancelled(self) -> bool:
        return self.waiter is not None and self.waiter.done()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.outcome


class _Interrupted(Exception):
    """The plan was not committed: the group it was in was interrupted (cancelled, or
    a `KeyboardInterrupt` in the leading thread)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"a group of writes was interrupted ({type(cause).__name__})")


_REQUIRED = object()
"""A bind parameter with no value of its own: the step's parameters must give it."""

_Param = tuple[str, str, Any, Callable[[Any], Any] | None]
"""One positional parameter: its key, its compiled name, its own value (or `_REQUIRED`),
its bind processor."""


def _positional(compiled: Compiled) -> tuple[_Param, ...]:
    """How a statement's positional parameters are read from a step's parameters, as
    `construct_params` would (a given key or name, else the parameter's own value),
    worked out once per statement: `construct_params` builds a dict of every bind on
    each call (about 20 us of a 100 us `get_tuple`). Empty where it cannot be used (a
    parameter whose value is computed per call), and `_bind` takes the long way."""
    sqlc = compiled.compiled
    out = []
    for name in compiled.order or ():
        bind = sqlc.binds[name]
        if bind.callable is not None:
            return ()
        const = _REQUIRED if bind.required else bind.value
        out.append((bind.key, name, const, compiled.binds.get(name)))
    return tuple(out)


def _trial_plan() -> Any:
    return Plan(steps=iter(()))  # type: ignore[arg-type]


def _drive_trial(plan: Any, execute: Callable[[Step], Rows | None]) -> Any:
    return [dict(r) for r in execute(Step(TRIAL, {"trial": 7}, fetch=True)) or ()]
