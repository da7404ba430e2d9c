"""The few things that differ per database, and the only module that imports
`sqlalchemy.dialects`.

- Upserts: PostgreSQL and SQLite share `INSERT ... ON CONFLICT`; SQLite takes no
  constraint name, so the conflict target is always the primary key's columns.
- Batches: PostgreSQL takes a whole batch of rows as a few array parameters
  (`unnest`), so a batch is one atomic statement of one shape; SQLite runs an
  executemany inside a transaction.
- Data-modifying CTEs: PostgreSQL writes blobs and their checkpoint in one statement;
  SQLite needs two, in a transaction.
- Column types: JSONB and BYTEA on PostgreSQL (`with_variant`), for `schema`.
- Per-thread locks between writers and sweepers: transaction-level advisory locks on
  PostgreSQL; none on SQLite, whose one writer at a time serializes them.
- JSON: walking `channel_versions` (`jsonb_each_text` / `json_each`), and the metadata
  filter: JSONB containment (`@>`, served by a GIN index) on PostgreSQL, the same
  meaning rebuilt on SQLite from `json_extract` / `json_type` at JSON paths (bound
  parameters), with `json_each` for arrays.
- MySQL / MariaDB (`_MySQL`): `ON DUPLICATE KEY UPDATE` upserts, `VARCHAR` key columns
  sized for InnoDB's 3,072-byte index key under utf8mb4 (`KEY_LENGTHS`, checked before
  a write), `LONGBLOB` values, `JSON_TABLE` for `channel_versions`, the containment
  filter rebuilt from `JSON_TYPE` / `JSON_EXTRACT`, and no fast path.

A filter key is always a bound value, never part of the SQL text; on SQLite a key goes
into a (bound) JSON path only when it is plain printable ASCII (`_plain_key`), else it
is matched as a value of `json_each`'s `key`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    FromClause,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    table,
    true,
    union_all,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB, OID, REGCLASS
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import type_api
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal, replacement_traverse

from .errors import ValueTooLargeError
from .rows import BYTES, DEAD_ROWS, FREE_PAGES, PAGE_COUNT, PAGE_SIZE, SCHEMA, TABLE


class _MySQLJson(mysql.JSON):  # type: ignore[type-arg]
    """JSON sent with its non-ASCII characters as they are, never `\\u` escapes:
    MariaDB keeps a JSON document as text and compares a path's key with the stored
    key's text, so a key stored escaped would never match the same key in a filter."""

    def bind_processor(self, dialect: Any) -> Any:
        string_process = self._str_impl.bind_processor(dialect)
        return self._make_bind_processor(string_process, _dumps_unescaped)  # type: ignore[no-untyped-call]


def _dumps_unescaped(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


JsonDocument = (
    JSON().with_variant(JSONB(), "postgresql").with_variant(_MySQLJson(), "mysql", "mariadb")
)
"""Column type of a JSON document (`checkpoint`, `metadata`): JSONB on PostgreSQL, for
containment filters and their GIN index."""

MYSQL = ("mysql", "mariadb")
"""SQLAlchemy's names for the MySQL family (a `mariadb://` URL gets its own name)."""

Blob = LargeBinary().with_variant(BYTEA(), "postgresql").with_variant(LONGBLOB(), *MYSQL)
"""Column type of a serialized value (LONGBLOB on MySQL: BLOB stops at 64 kB)."""

KEY_LENGTHS = {
    "thread_id": 255,
    "checkpoint_ns": 255,
    "checkpoint_id": 64,
    "task_id": 64,
    "channel": 190,
    "version": 64,
}
"""Characters a key column holds on MySQL/MariaDB, where primary-key columns must be
`VARCHAR`: InnoDB's index key is at most 3,072 bytes and utf8mb4 counts 4 bytes per
character. The widest keys: blobs (255 + 255 + 190 + 64) * 4 = 3,056 bytes, writes
(255 + 255 + 64 + 64) * 4 + 4 = 2,556. Other dialects have no limit."""


def Key(name: str) -> Any:
    """Column type of key column `name`: TEXT, and `VARCHAR(KEY_LENGTHS[name])` on MySQL."""
    return Text().with_variant(String(KEY_LENGTHS[name]), *MYSQL)


LargeObjectId = OID

THREAD_LOCK_CLASS = literal_column("1668312436", Integer)
"""The first key of the per-thread advisory locks (`Dialect.thread_lock`): 'cpst' as
an int4, a constant in the SQL text."""
"""Type of a PostgreSQL large object's id (`staged_blobs`)."""

RegClass = REGCLASS
"""Type of a PostgreSQL table's name as the catalog resolves it (`checkpointer.citus`)."""


@dataclass(frozen=True)
class Dialect:
    """What a database can do, decided once per dialect name."""

    name: str
    batch_as_arrays: bool
    """A batch of rows is one statement with array parameters (atomic on its own)."""
    cte_dml: bool
    """Blobs and their checkpoint are written by one statement."""
    single_writer: bool = False
    """One write transaction at a time per database (SQLite): a saver queues its own
    writes instead of letting them poll the file lock, where one can starve past the
    busy timeout ("database is locked") under load."""
    lateral: bool = False
    """Supports `LATERAL` joins (a subquery reading columns of tables before it)."""
    direct: bool = False
    """Plans may run on the fast path (`checkpointer.fastpath`): autocommit plans
    statement by statement on PostgreSQL (asyncpg, psycopg), whole plans on SQLite
    (sqlite3, aiosqlite)."""
    lock_before_read: bool = False
    """A transaction that reads, then writes, must take the write lock first: SQLite
    cannot upgrade a read lock while another writer waits (it fails at once with
    "database is locked"), and pysqlite only opens the transaction at the first write."""
    staged_blobs: bool = False
    """A large blob can be sent in chunks to a server-side large object and stored from
    there (PostgreSQL): a driver holds each statement's parameters two or three times
    over (asyncpg: its bind buffer, the message, and asyncio's write buffer before
    Python 3.12), so one 200 MB parameter would cost up to 600 MB of client memory."""

    skip_locked: bool = False
    commit_each: bool = False
    """Single statements run in a transaction committed after each of them, not on an
    AUTOCOMMIT connection (MySQL): SQLAlchemy turns autocommit on at every checkout and
    off at check-in, each a round trip (measured: a read took 6 round trips, now 2)."""
    """`SELECT ... FOR UPDATE SKIP LOCKED`: concurrent sweepers take disjoint batches
    (PostgreSQL). SQLite has one writer at a time, which serializes them anyway."""

    gap_locks: bool = False
    """A locking read at REPEATABLE READ also locks the gaps around the rows it reads
    (InnoDB's next-key locks), so no row can be inserted into a range it read until
    the transaction ends (MySQL/MariaDB). A sweep that deletes locks its threads' rows
    this way (`Threads.sweep_locks`, after `repeatable_read`) instead of thread locks."""

    citus: bool = False
    """The tables may be distributed by `thread_id` (the `citus` extension is present;
    decided once per engine, `detect_citus`): every per-thread statement filters each
    table on the bound `thread_id` itself and writes rows as one multi-row `VALUES`
    insert, so Citus routes it to one shard; cross-thread reads join without LATERAL,
    which Citus cannot push down over the shards."""

    def thread_lock(
        self, thread_id: ColumnElement[Any], *, shared: bool
    ) -> ColumnElement[Any] | None:
        """A lock on one thread held to the end of the transaction, or None where the
        database serializes writers anyway (SQLite). Writers take it `shared` (waiting
        for a sweeper), a sweeper exclusively without waiting (true if taken): a
        checkpoint committed before the sweeper's lock is seen by its next statement,
        and none commits between the lock and the sweeper's commit."""
        return None

    def repeatable_read(self) -> Executable | None:
        """The statement that makes the transaction it opens REPEATABLE READ whatever
        the engine's level (`gap_locks`: at READ COMMITTED InnoDB locks no gaps), or
        None. It must be the transaction's first statement."""
        return None

    def stored_bytes(self, column: ColumnElement[Any], *, document: bool) -> ColumnElement[Any]:
        """About how many bytes a value takes (a sweep's report): its length, a JSON
        document's as text."""
        return func.length(cast(column, Text) if document else column)

    def table_sizes(self, tables: list[Table]) -> Select[Any]:
        """Rows (`table`, `bytes`, `dead_rows`) per table. PostgreSQL asks the catalog
        (indexes and TOAST included, dead tuples from the statistics collector) for
        the tables in schema `schema` (a bound key; NULL: the current schema); SQLite
        has no per-table size without the optional `dbstat` table, so the stored
        documents' and values' lengths stand in, and no dead rows."""
        raise NotImplementedError

    def table_sizes_params(self, schema: str | None) -> dict[str, Any]:
        """The parameters of `table_sizes` for the saver's schema."""
        return {}

    def file_pages(self) -> Select[Any] | None:
        """(page_count, freelist_count, page_size) of the database file (SQLite)."""
        return None

    def insert(self, table: Table) -> Any:
        raise NotImplementedError(f"no upsert for dialect {self.name!r}")

    key_lengths: ClassVar[Mapping[str, int] | None] = None
    """Longest value (characters) of each key column, where the database limits them."""

    def check_keys(self, rows: Any) -> None:
        """Raise `ValueError` naming the column and the limit for a key value longer
        than the database's key column holds (`key_lengths`), before anything is sent:
        MySQL would refuse the row (strict mode) or truncate it, merging two keys."""
        limits = self.key_lengths
        if not limits:
            return
        for row in [rows] if isinstance(rows, Mapping) else rows:
            depth = self.metadata_max_depth
            if depth is not None and _depth(row.get("metadata"), depth + 1) > depth:
                raise ValueError(
                    f"metadata is nested more than {depth} levels deep: on {self.name} the "
                    f"limit is {depth} nested objects or arrays (MariaDB's JSON functions "
                    "stop before 32; docs/mysql.md, Limits)"
                )
            for name, limit in limits.items():
                value = row.get(name)
                if isinstance(value, str) and len(value) > limit:
                    raise ValueError(
                        f"{name} is {len(value)} characters long; on {self.name} a {name} "
                        f"holds at most {limit} (an InnoDB key is at most 3,072 bytes, 4 per "
                        f"character in utf8mb4; docs/mysql.md, Limits): {value[:40]!r}..."
                    )

    metadata_max_depth: ClassVar[int | None] = None
    """Levels of nesting the database's JSON functions read in a metadata document,
    where that is fewer than `codec.METADATA_MAX_DEPTH`."""

    def check_statement(self, conn: Connection, params: Any) -> None:
        """Raise before a statement whose parameters the server would refuse (MySQL:
        over `max_allowed_packet`, which closes the connection instead of answering)."""

    def run_id(self, expression: ColumnElement[str]) -> ColumnElement[str]:
        """The run id of a checkpoint as `delete_for_runs` filters on it: `expression`
        (PostgreSQL's expression index matches it), or a generated column on MySQL."""
        return expression

    def version_value(self, versions: Any, document: ColumnElement[Any]) -> ColumnElement[Any]:
        """The value column of a `channel_versions(document)` row."""
        return versions.c.value  # type: ignore[no-any-return]

    def new_database(self, conn: Connection) -> None:
        """Before migrations create our tables: settings a database takes only while it
        has no table at all (SQLite's `auto_vacuum`); nothing elsewhere."""

    prepares = False
    """`prepare` has something to do (else no connection is taken for it)."""

    def prepare(self, conn: Connection) -> None:
        """Once per saver, at its first use, on an autocommit connection: settings the
        database keeps (none here)."""

    def upsert(
        self,
        table: Table,
        insert: Any,
        update: list[str],
        where: ColumnElement[bool] | None = None,
    ) -> Insert:
        """`insert` with `ON CONFLICT (primary key) DO UPDATE SET col = excluded.col`."""
        return insert.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=list(table.primary_key.columns),
            set_={name: insert.excluded[name] for name in update},
            where=where,
        )

    def insert_or_ignore(self, table: Table, insert: Any) -> Insert:
        return insert.on_conflict_do_nothing(  # type: ignore[no-any-return]
            index_elements=list(table.primary_key.columns)
        )

    def array_rows(
        self,
        texts: Mapping[str, str],
        binaries: Mapping[str, str] | None = None,
        integers: Mapping[str, str] | None = None,
    ) -> Any:
        """A batch of rows bound as one array parameter per column (`{column: key}`),
        as a derived table `batch` with those columns (`batch_as_arrays` only)."""
        raise NotImplementedError(f"no array parameters for dialect {self.name!r}")

    def channel_versions(self, document: ColumnElement[Any]) -> FromClause:
        """Rows `(key, value)` of a checkpoint document's `channel_versions`, as text."""
        raise NotImplementedError

    def checkpoint_format(self, document: ColumnElement[Any]) -> ColumnElement[int]:
        """The document's `v` (format version) as an integer."""
        raise NotImplementedError

    def json_member(self, document: ColumnElement[Any], name: str) -> ColumnElement[Any]:
        """The object at a top-level key of a document (`name` is ours, never input),
        as JSON the driver decodes to a dict."""
        raise NotImplementedError

    def json_has_key(
        self, document: ColumnElement[Any], name: str, key: ColumnElement[str]
    ) -> ColumnElement[bool]:
        """Whether the object at `name` has the (bound) key `key`."""
        raise NotImplementedError

    def json_text(
        self, document: ColumnElement[Any], name: str, key: ColumnElement[str]
    ) -> ColumnElement[str]:
        """The value at `name` -> `key` (a bound key) as text."""
        raise NotImplementedError

    def metadata_filter(
        self, column: ColumnElement[Any], filter: Mapping[str, Any], prefix: str
    ) -> tuple[ColumnElement[bool], dict[str, Any]]:
        """A clause true where the metadata contains `filter` as PostgreSQL's JSONB `@>`
        defines it (every given key, with a value containing the given one), and its
        parameters. The clause's shape depends only on the filter's structure, not on
        its keys or scalar values, so the compiled cache stays small."""
        raise NotImplementedError

    def may_have_blob(
        self, document: ColumnElement[Any], key: ColumnElement[str]
    ) -> ColumnElement[bool]:
        """Whether channel `key` of a checkpoint document can have a blob row: it is not
        held inline, or inline as the `true` marker a `_DeltaSnapshot` leaves. Lets reads
        skip the blob probe of inline values (here: no cheap test, always probe)."""
        return true()

    def metadata_filter_params(self, filter: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        """The parameters `metadata_filter` gives for `filter`, for a statement of its
        shape already built (building the clause again costs more than running it)."""
        return self.metadata_filter(literal_column("metadata"), filter, prefix)[1]


def _depth(value: Any, stop: int) -> int:
    """Levels of objects and arrays in a JSON value (counting stops at `stop`)."""
    if stop <= 0 or not isinstance(value, (Mapping, list, tuple)):
        return 0
    items = value.values() if isinstance(value, Mapping) else value
    return 1 + max((_depth(item, stop - 1) for item in items), default=0)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (dict, list, tuple)):
        return "container"
    raise TypeError(f"metadata filter value {value!r} is not JSON")


def filter_shape(filter: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a metadata filter's clause depends on: the kinds of its values and, inside
    objects and arrays, their structure, and whether each key can be a JSON path label
    (`_plain_key`; never the keys or scalar values themselves). Filters of one shape
    compile to one statement, so it can be cached by shape."""
    return tuple((_plain_key(key), _value_shape(value)) for key, value in filter.items())


def _value_shape(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ("object", filter_shape(value))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(_value_shape(v) for v in value))
    return _json_kind(value)


_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - set('"\\/<>&')
"""Characters a key may have to be looked up by a JSON path on SQLite: SQLite compares a
path's label with a stored key as the key is spelled in the JSON text, escapes and all,
and a quoted label ends at the first `"`. Printable ASCII is written unescaped by every
JSON encoder we know (`json`, `orjson`), except `"` and `\\` (always escaped), and `/`
and `<>&` (escaped by some, for HTML)."""


def _plain_key(key: str) -> bool:
    return all(c in _PLAIN for c in key)


class _Postgres(Dialect):
    def insert(self, table: Table) -> Any:
        return postgresql.insert(table)

    def stored_bytes(self, column: ColumnElement[Any], *, document: bool) -> ColumnElement[Any]:
        # as stored (compressed, TOAST included): casting each JSONB document to text
        # took a third of a sweep's delete statement. Citus refuses a function that is
        # not IMMUTABLE in RETURNING (pg_column_size is STABLE): the length instead.
        if self.citus:
            return super().stored_bytes(column, document=document)
        return func.pg_column_size(column)

    def thread_lock(
        self, thread_id: ColumnElement[Any], *, shared: bool
    ) -> ColumnElement[Any] | None:
        # The two-int form: its keys never meet the migration lock's bigint key
        # (pg_locks.objsubid 2 against 1), and the class keeps clear of the app's.
        key = (THREAD_LOCK_CLASS, func.hashtext(thread_id))
        if shared:
            return func.pg_advisory_xact_lock_shared(*key)
        return func.pg_try_advisory_xact_lock(*key, type_=Boolean)

    def table_sizes_params(self, schema: str | None) -> dict[str, Any]:
        return {SCHEMA: schema}

    def table_sizes(self, tables: list[Table]) -> Select[Any]:
        pg_class = table(
            "pg_class",
            column("oid"),
            column("relname"),
            column("relnamespace"),
            schema="pg_catalog",
        )
        pg_namespace = table("pg_namespace", column("oid"), column("nspname"), schema="pg_catalog")
        names = [literal_column(f"'{t.name}'", Text) for t in tables]  # our names, not input
        schema = bindparam(SCHEMA, type_=Text)
        size: ColumnElement[Any] = func.pg_total_relation_size(pg_class.c.oid)
        if self.citus:
            # a distributed table's rows are in its shards, on the workers
            partitions = table("pg_dist_partition", column("logicalrelid"), schema="pg_catalog")
            distributed = exists().where(partitions.c.logicalrelid == pg_class.c.oid)
            size = case((distributed, func.citus_total_relation_size(pg_class.c.oid)), else_=size)
        return (
            select(
                pg_class.c.relname.label(TABLE),
                size.label(BYTES),
                func.pg_stat_get_dead_tuples(pg_class.c.oid).label(DEAD_ROWS),
            )
            .join_from(pg_class, pg_namespace, pg_namespace.c.oid == pg_class.c.relnamespace)
            .where(
                pg_class.c.relname.in_(names),
                pg_namespace.c.nspname == func.coalesce(schema, func.current_schema()),
            )
        )

    def array_rows(
        self,
        texts: Mapping[str, str],
        binaries: Mapping[str, str] | None = None,
        integers: Mapping[str, str] | None = None,
    ) -> Any:
        typed: list[tuple[Mapping[str, str], Any]] = [
            (texts, Text),
            (binaries or {}, BYTEA),
            (integers or {}, Integer),
        ]
        names = [column for columns, _ in typed for column in columns]
        arrays = [
            bindparam(key, type_=ARRAY(item)) for columns, item in typed for key in columns.values()
        ]
        return func.unnest(*arrays).table_valued(*names).render_derived(name="batch")

    def channel_versions(self, document: ColumnElement[Any]) -> FromClause:
        return (
            func.jsonb_each_text(document.op("->")(literal("channel_versions", Text)))
            .table_valued("key", "value")
            .lateral()
        )

    def checkpoint_format(self, document: ColumnElement[Any]) -> ColumnElement[int]:
        return cast(document.op("->>", return_type=Text)(literal("v", Text)), Integer)

    def json_member(self, document: ColumnElement[Any], name: str) -> ColumnElement[Any]:
        return document.op("->", return_type=JSONB)(literal(name, Text))

    def json_has_key(
        self, document: ColumnElement[Any], name: str, key: ColumnElement[str]
    ) -> ColumnElement[bool]:
        return self.json_member(document, name).has_key(key)  # type: ignore[no-any-return]

    def json_text(
        self, document: ColumnElement[Any], name: str, key: ColumnElement[str]
    ) -> ColumnElement[str]:
        return self.json_member(document, name).op("->>", return_type=Text)(key)

    def metadata_filter(
        self, column: ColumnElement[Any], filter: Mapping[str, Any], prefix: str
    ) -> tuple[ColumnElement[bool], dict[str, Any]]:
        # JSONB containment is the reference meaning of a filter, answered from the GIN
        # index: nested objects and arrays are contained, not compared for equality.
        clause = column.op("@>", return_type=postgresql.BOOLEAN)(
            bindparam(f"{prefix}all", type_=JSONB)
        )
        return clause, self.metadata_filter_params(filter, prefix)

    def metadata_filter_params(self, filter: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        return {f"{prefix}all": dict(filter)}

    def may_have_blob(
        self, document: ColumnElement[Any], key: ColumnElement[str]
    ) -> ColumnElement[bool]:
        values = self.json_member(document, "channel_values")
        marker = values.op("->", return_type=JSONB)(key) == literal_column("'true'::jsonb", JSONB)
        return or_(not_(values.has_key(key)), marker)


class _Sqlite(Dialect):
    prepares = True

    def insert(self, table: Table) -> Any:
        return sqlite.insert(table)

    def new_database(self, conn: Connection) -> None:
        """A database with no table yet gets `auto_vacuum=FULL`, so the pages a sweep,
        a prune or a deleted thread frees go back to the file system at that commit
        (after a WAL checkpoint) instead of staying in the file. Not INCREMENTAL: its
        `PRAGMA incremental_vacuum` frees one page per step, and the drivers' `execute`
        steps a statement without result columns once. The mode can change only before
        the first table, or by a `VACUUM` that rewrites the file: a database that
        already has tables (older ones, a host app's) is left as it is
        (docs/operations.md has the one-off commands)."""
        if not conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar():
            conn.exec_driver_sql("PRAGMA auto_vacuum=FULL")

    def prepare(self, conn: Connection) -> None:
        """A file in SQLite's default rollback journal (`delete`) is switched to WAL,
        as the official `SqliteSaver.setup()` does: readers no longer block the writer,
        and a commit is one append to the WAL (and, at the default `synchronous=FULL`,
        one fsync of it) instead of journal and database syncs. WAL is stored in the
        file, so this is a lasting change to the caller's database, as the official
        saver's. Other modes last only as long as the connection that set them: a
        caller who wants one sets it on connect (a `connect` event), and it is kept, as
        are in-memory databases (`memory`); `synchronous` is never touched. If the
        switch cannot take its lock now (another process writing), the saver works on
        in the current mode and says so on the `checkpointer` logger."""
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        if str(mode).lower() != "delete":
            return
        try:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        except OperationalError as error:
            logging.getLogger("checkpointer").info(
                "SQLite journal mode left at %s: %s", mode, error.orig
            )

    def table_sizes(self, tables: list[Table]) -> Select[Any]:
        parts = []
        for t in tables:
            sizes = [
                func.coalesce(func.length(cast(c, Text) if c.name != "blob" else c), 0)
                for c in t.columns
                if c.name in ("checkpoint", "metadata", "blob")
            ]
            total: ColumnElement[Any] = sizes[0]
            for size in sizes[1:]:
                total = total + size
            parts.append(
                select(
                    literal_column(f"'{t.name}'", Text).label(TABLE),
                    func.coalesce(func.sum(total), 0).label(BYTES),
                    cast(null(), Integer).label(DEAD_ROWS),
                ).select_from(t)
            )
        return union_all(*parts)  # type: ignore[return-value]

    def file_pages(self) -> Select[Any] | None:
        def pragma(name: str) -> Any:
            return select(getattr(func, f"pragma_{name}")().table_valued(name).c[name])

        return select(
            pragma(PAGE_COUNT).scalar_subquery().label(PAGE_COUNT),
            pragma(FREE_PAGES).scalar_subquery().label(FREE_PAGES),
            pragma(PAGE_SIZE).scalar_subquery().label(PAGE_SIZE),
        )

    def channel_versions(self, document: ColumnElement[Any]) -> FromClause:
        # json_each may read columns of tables before it in FROM, like LATERAL.
        return func.json_each(document, literal("$.channel_versions", Text)).table_valued(
            "key", "value"
        )

    def checkpoint_format(self, document: ColumnElement[Any]) -> ColumnElement[int]:
        return cast(func.json_extract(document, literal("$.v", Text)), Integer)

    def json_member(self, document: ColumnElement[Any], name: str) -> ColumnElement[Any]:
        # json_extract returns an object as JSON text, which the JSON type decodes.
        return func.json_extract(document, literal(f"$.{name}", Text), type_=JSON)

    def _each(self, document: ColumnElement[Any], name: str) -> Any:
        # A key is matched as a value, never spliced into a JSON path (SQLite's path
        # syntax has no escape for a quote inside a key).
        return func.json_each(document, literal(f"$.{name}", Text)).table_valued("key", "value")

    def json_has_key(
        self, document: ColumnElement[Any], name: str, key: ColumnElement[str]
    ) -> ColumnElement[bool]:
        each = self._each(document, name)
        return exists(select(literal(1)).select_from(each).where(each.c.key == key))

    def json_text(
        self, document: ColumnElement[Any], name: str, key: ColumnElement[str]
    ) -> ColumnElement[str]:
        each = self._each(document, name)
        return select(cast(each.c.value, Text)).where(each.c.key == key).scalar_subquery()

    def metadata_filter(
        self, column: ColumnElement[Any], filter: Mapping[str, Any], prefix: str
    ) -> tuple[ColumnElement[bool], dict[str, Any]]:
        # PostgreSQL's `@>` rebuilt from `json_extract` / `json_type` at bound JSON paths:
        # a nested object adds to the path, not a level of subqueries (a walk with one
        # EXISTS over `json_each` per level cost 2.5x the official saver's scan, and
        # SQLite's parser ran out of stack at about 10 levels); only an array is a
        # `json_each` subquery, for "some element contains".
        params: dict[str, Any] = {}
        where = _Path(None, "$")
        clauses = [
            _sqlite_key(column, where, key, value, params, prefix) for key, value in filter.items()
        ]
        return and_(true(), *clauses), params


@dataclass(frozen=True)
class _Path:
    """A JSON path into a document: `base` (a SQL expression, say `json_each`'s
    `fullkey` of an array element) followed by `rest`, path text we wrote from plain
    keys (bound, never in the SQL)."""

    base: ColumnElement[str] | None
    rest: str

    def then(self, key: str) -> _Path:
        return _Path(self.base, f'{self.rest}."{key}"')

    def bound(self, params: dict[str, Any], prefix: str) -> ColumnElement[str]:
        if self.base is not None and not self.rest:
            return self.base
        name = f"{prefix}{len(params)}"
        params[name] = self.rest
        rest = bindparam(name, type_=Text)
        return rest if self.base is None else self.base.concat(rest)


def _sqlite_key(
    doc: ColumnElement[Any],
    where: _Path,
    key: str,
    value: Any,
    params: dict[str, Any],
    prefix: str,
    froms: list[Any] | None = None,
) -> ColumnElement[bool]:
    """True where the object at `where` in `doc` has a member `key` containing `value`.
    A key that cannot be a path label is matched as a value of `json_each`'s `key`."""
    if _plain_key(key):
        return _sqlite_at(doc, where.then(key), value, params, prefix, froms)
    each = func.json_each(doc, where.bound(params, prefix)).table_valued(
        "key", "type", "atom", "value"
    )
    name = f"{prefix}{len(params)}"
    params[name] = key
    return exists(
        select(literal(1))
        .select_from(each)
        .where(
            each.c.key == bindparam(name, type_=Text),
            _sqlite_contains(each, value, params, prefix),
        )
    )


def _sqlite_at(
    doc: ColumnElement[Any],
    where: _Path,
    value: Any,
    params: dict[str, Any],
    prefix: str,
    froms: list[Any] | None = None,
) -> ColumnElement[bool]:
    """True where the value at `where` in `doc` contains `value` (JSONB containment:
    equal scalars, numbers by value but never booleans, objects holding every given
    key, arrays with an element containing each given one). A missing path is NULL.
    Inside an array, the `json_each` of every element asked for (at any depth) joins
    `froms`, the FROM list of the array's one EXISTS: "some element contains x, and
    some element of it contains y" is one EXISTS over a join, not one EXISTS in
    another, so arrays in arrays do not nest subqueries either."""
    if isinstance(value, Mapping) and value:
        # the members' paths say it is an object: this path is not asked for
        return and_(
            *(_sqlite_key(doc, where, k, v, params, prefix, froms) for k, v in value.items())
        )
    path = where.bound(params, prefix)
    kind = func.json_type(doc, path)
    if isinstance(value, Mapping):
        return _is(kind, "object")
    what = _json_kind(value)
    if what in ("null", "true", "false"):
        return _is(kind, what)
    if what in ("number", "text"):
        name = f"{prefix}{len(params)}"
        # SQLite reads a JSON integer beyond 64 bits as a real (and cannot bind one).
        params[name] = float(value) if what == "number" and abs(value) >= 2**63 else value
        # the value first: json_type is only asked of the rows whose value matched
        # (true and false read as 1 and 0, an object or array as its JSON text)
        typed = (
            or_(_is(kind, "integer"), _is(kind, "real")) if what == "number" else _is(kind, "text")
        )
        return and_(_is(func.json_extract(doc, path), bindparam(name)), typed)
    joined: list[Any] = [] if froms is None else froms
    holds = [_is(kind, "array")]
    for element in value:
        each = func.json_each(doc, path).table_valued("key", "type", "atom", "value", "fullkey")
        if not isinstance(element, (Mapping, list, tuple)):
            # a leaf: an EXISTS of its own beside the others (one level, never deeper)
            found = _sqlite_contains(each, element, params, prefix)
            holds.append(exists(select(literal(1)).select_from(each).where(found)))
        elif len(joined) >= JOIN_WIDTH:
            holds.append(_sqlite_at(doc, where, [element], params, prefix))
        else:
            joined.append(each)
            at = _Path(each.c.fullkey, "")
            holds.append(_sqlite_at(doc, at, element, params, prefix, joined))
    if froms is not None:
        return and_(*holds)
    if not joined:
        return and_(*holds)
    source = joined[0]
    for each in joined[1:]:
        source = source.join(each, true())
    return exists(select(literal(1)).select_from(source).where(*holds))


JOIN_WIDTH = 24
"""`json_each` joined in one EXISTS of a filter, at most (SQLite joins at most 64
tables); a wider filter opens another EXISTS inside it, one level deeper."""


def _is(value: ColumnElement[Any], other: Any) -> ColumnElement[bool]:
    """`value IS other`: false, never NULL, where a path is missing (`json_type` and
    `json_extract` give NULL), so that a filter negated (a sweep's `keep`) still holds
    for documents without the key."""
    return value.is_not_distinct_from(other)


def _sqlite_member(
    container: ColumnElement[Any],
    value: Any,
    params: dict[str, Any],
    prefix: str,
    *,
    key: str | None = None,
) -> ColumnElement[bool]:
    """True where the JSON `container` has a member (the one named `key`, or any array
    element) that contains `value`."""
    each = func.json_each(container).table_valued("key", "type", "atom", "value")
    where = []
    if key is not None:
        name = f"{prefix}{len(params)}"
        params[name] = key
        where.append(each.c.key == bindparam(name, type_=Text))
    where.append(_sqlite_contains(each, value, params, prefix))
    return exists(select(literal(1)).select_from(each).where(*where))


def _sqlite_contains(
    each: Any, value: Any, params: dict[str, Any], prefix: str
) -> ColumnElement[bool]:
    """True where the `json_each` row `each` holds a value containing `value`, as
    JSONB containment defines it: equal scalars (numbers by value, so 1 matches 1.0
    but never true), objects holding every given key, arrays holding every element."""
    kind = _json_kind(value)
    if kind in ("null", "true", "false"):
        return each.c.type == kind  # type: ignore[no-any-return]
    if kind in ("number", "text"):
        name = f"{prefix}{len(params)}"
        # SQLite reads a JSON integer beyond 64 bits as a real (and cannot bind one).
        params[name] = float(value) if kind == "number" and abs(value) >= 2**63 else value
        # `or_`, not `in_`: an `IN` list is expanded per call (the statement is re-rendered)
        typed = (
            or_(each.c.type == "integer", each.c.type == "real")
            if kind == "number"
            else each.c.type == "text"
        )
        return and_(typed, each.c.atom == bindparam(name))
    if isinstance(value, Mapping):
        return and_(
            each.c.type == "object",
            *(_sqlite_member(each.c.value, v, params, prefix, key=k) for k, v in value.items()),
        )
    return and_(
        each.c.type == "array",
        *(_sqlite_member(each.c.value, v, params, prefix) for v in value),
    )


class typed_null(ColumnElement[Any]):
    """`CAST(NULL AS <type>)`: a NULL of a known type in a `UNION ALL` branch. MariaDB
    has no `CAST(... AS JSON)`: there (and on MySQL) a JSON one is a plain NULL, whose
    type the union takes from its first branch."""

    inherit_cache = True
    _traverse_internals = [("type", InternalTraversal.dp_type)]

    def __init__(self, type_: Any) -> None:
        self.type = type_api.to_instance(type_)


@compiles(typed_null)
def _compile_typed_null(element: typed_null, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(cast(null(), element.type), **kw)


@compiles(typed_null, "mysql")
@compiles(typed_null, "mariadb")
def _compile_typed_null_mysql(element: typed_null, compiler: SQLCompiler, **kw: Any) -> str:
    if isinstance(element.type.dialect_impl(compiler.dialect), JSON):
        return "NULL"
    return compiler.process(cast(null(), element.type), **kw)


class _RepeatableRead(Executable, ClauseElement):
    """`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ` (MySQL/MariaDB): the level of
    the next transaction only, sent before its first statement (MySQL's drivers send
    no BEGIN: a transaction opens at its first statement, and this one opens none)."""

    inherit_cache = True


@compiles(_RepeatableRead, "mysql")
@compiles(_RepeatableRead, "mariadb")
def _compile_repeatable_read(element: _RepeatableRead, compiler: SQLCompiler, **kw: Any) -> str:
    return "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"


class _MySQLInsert(mysql.Insert):
    """MySQL's INSERT, with `excluded` naming the row being inserted (MySQL's `inserted`,
    rendered `VALUES(col)`), so statements write `insert.excluded.col` for every dialect."""

    inherit_cache = True

    @property
    def excluded(self) -> Any:
        return self.inserted


def _inline_constant(element: Any) -> Any:
    value = getattr(element, "value", None)
    if isinstance(element, BindParameter) and type(value) is int:
        return literal_column(str(value), element.type)
    return None


class _json_keys(FunctionElement[Any]):
    """`JSON_TABLE(JSON_KEYS(document, '$.<member>'), '$[*]' COLUMNS (key ...))`: one row
    per key of a document's top-level object `member` (MySQL's JSON_TABLE reads arrays
    only). Like LATERAL, it may read columns of the tables before it in FROM."""

    name = "json_keys"
    inherit_cache = True


@compiles(_json_keys, "mysql")
@compiles(_json_keys, "mariadb")
def _compile_json_keys(element: _json_keys, compiler: SQLCompiler, **kw: Any) -> str:
    document, member = element.clauses
    width = KEY_LENGTHS["channel"]
    return (
        f"JSON_TABLE(JSON_KEYS({compiler.process(document, **kw)}, "
        f"{compiler.process(member, **kw)}), '$[*]' COLUMNS "
        f"(`key` VARCHAR({width}) CHARACTER SET utf8mb4 PATH '$'))"
    )


def _mysql_path(prefix: str, key: ColumnElement[str]) -> ColumnElement[str]:
    """A JSON path to the (bound) member `key` under `prefix`: the key is JSON-quoted,
    never spliced into the path text."""
    return func.concat(literal(prefix, Text), func.json_quote(key))


_MYSQL_NUMBER = ("INTEGER", "UNSIGNED INTEGER", "DOUBLE", "DECIMAL", "NUMBER")
"""`JSON_TYPE` of a number (MySQL and MariaDB name them differently)."""

_DECIMAL = mysql.DECIMAL(65, 30)
"""Numbers in a filter are compared as DECIMAL(65, 30): by value (1 = 1.0, as JSONB),
exactly to 35 integer and 30 fractional digits."""


_PACKET = "checkpointer_max_allowed_packet"
"""Where a connection's `info` keeps its server's `max_allowed_packet`."""

_SMALL_STATEMENT = 512 * 1024
"""Parameters below this are never checked (MySQL's smallest useful packet is 1 MB)."""

_ESCAPED = (b"\0", b"'", b'"', b"\\", b"\n", b"\r", b"\x1a")
"""Bytes a MySQL driver escapes (doubles) in a binary literal of the text protocol."""


def _sent_bytes(value: Any) -> int:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return len(data) + sum(data.count(b) for b in _ESCAPED)
    if isinstance(value, str):
        return len(value) * 2 if len(value) > 1024 else len(value.encode())
    return 16


class _MySQL(Dialect):
    key_lengths = KEY_LENGTHS
    metadata_max_depth = 31

    def check_statement(self, conn: Connection, params: Any) -> None:
        """A statement is one packet: one over the server's `max_allowed_packet` makes
        it close the connection (the driver reports only "server has gone away"). An
        executemany sends its rows in statements of their own when they are large, so
        each row is measured alone. The limit is read once per connection."""
        rows = params if isinstance(params, list) else [params] if params else []
        size = max((sum(map(_sent_bytes, row.values())) for row in rows), default=0)
        if size < _SMALL_STATEMENT:
            return
        limit = conn.info.get(_PACKET)
        if limit is None:
            limit = conn.info[_PACKET] = int(
                conn.scalar(select(literal_column("@@max_allowed_packet"))) or 0
            )
        if size + 4096 > limit:
            raise ValueTooLargeError(
                f"a statement of about {size:,} bytes (a value of the checkpoint or write) "
                f"is over this server's max_allowed_packet ({limit:,} bytes), the most "
                f"MySQL/MariaDB takes in one statement: raise max_allowed_packet on the "
                f"server (SET GLOBAL max_allowed_packet = {max(size * 2, 64 << 20)}, and in "
                f"its configuration file), or store smaller values; nothing was written"
            )

    def insert(self, table: Table) -> Any:
        return _MySQLInsert(table)

    def repeatable_read(self) -> Executable | None:
        return _RepeatableRead()

    def upsert(
        self,
        table: Table,
        insert: Any,
        update: list[str],
        where: ColumnElement[bool] | None = None,
    ) -> Insert:
        """`ON DUPLICATE KEY UPDATE col = VALUES(col)`; a `where` becomes a `CASE` per
        column (MySQL has no conditional upsert), which may only read the inserted row
        and key columns (MySQL assigns left to right, so a non-key column may already
        hold its new value)."""
        values: dict[str, Any] = {}
        if where is not None:
            # A constant of `where` is rendered inline: a driver's executemany rewrites
            # the VALUES list and would misplace a parameter after it.
            where = replacement_traverse(where, {}, _inline_constant)  # type: ignore[call-overload]
        for name in update:
            new = insert.inserted[name]
            values[name] = new if where is None else case((where, new), else_=table.c[name])
        return insert.on_duplicate_key_update(values)  # type: ignore[no-any-return]

    def insert_or_ignore(self, table: Table, insert: Any) -> Insert:
        # MySQL has no DO NOTHING, and INSERT IGNORE would also hide other errors
        # (truncation, bad values): a no-op self-assignment of a key column.
        key = next(iter(table.primary_key.columns))
        return insert.on_duplicate_key_update({key.name: table.c[key.name]})  # type: ignore[no-any-return]

    def table_sizes_params(self, schema: str | None) -> dict[str, Any]:
        return {}

    def table_sizes(self, tables: list[Table]) -> Select[Any]:
        info = table(
            "TABLES",
            column("TABLE_SCHEMA"),
            column("TABLE_NAME"),
            column("DATA_LENGTH"),
            column("INDEX_LENGTH"),
            schema="information_schema",
        )
        names = [literal_column(f"'{t.name}'", Text) for t in tables]  # our names, not input
        return select(
            info.c.TABLE_NAME.label(TABLE),
            (info.c.DATA_LENGTH + info.c.INDEX_LENGTH).label(BYTES),
            cast(null(), Integer).label(DEAD_ROWS),
        ).where(func.database() == info.c.TABLE_SCHEMA, info.c.TABLE_NAME.in_(names))

    def run_id(self, expression: ColumnElement[str]) -> ColumnElement[str]:
        # The generated column of revision 0002, indexed: MariaDB matches an index only
        # against the column, never against the expression it is generated from.
        return literal_column("run_id", Text)

    def channel_versions(self, document: ColumnElement[Any]) -> FromClause:
        return _json_keys(document, literal("$.channel_versions", Text)).table_valued("key")

    def version_value(self, versions: Any, document: ColumnElement[Any]) -> ColumnElement[Any]:
        return self.json_text(document, "channel_versions", versions.c.key)

    def checkpoint_format(self, document: ColumnElement[Any]) -> ColumnElement[int]:
        return cast(func.json_extract(document, literal("$.v", Text)), Integer)

    def json_member(self, document: ColumnElement[Any], name: str) -> ColumnElement[Any]:
        return func.json_extract(document, literal(f"$.{name}", Text), type_=JSON)

    def json_has_key(
        self, document: ColumnElement[Any], name: str, key: ColumnElement[str]
    ) -> ColumnElement[bool]:
        path = _mysql_path(f"$.{name}.", key)
        return func.json_contains_path(document, literal("one", Text), path) == 1

    def json_text(
        self, document: ColumnElement[Any], name: str, key: ColumnElement[str]
    ) -> ColumnElement[str]:
        path = _mysql_path(f"$.{name}.", key)
        return func.json_unquote(func.json_extract(document, path), type_=Text)

    def metadata_filter(
        self, column: ColumnElement[Any], filter: Mapping[str, Any], prefix: str
    ) -> tuple[ColumnElement[bool], dict[str, Any]]:
        # PostgreSQL's `@>` rebuilt from JSON_TYPE / JSON_EXTRACT (JSON_CONTAINS differs:
        # it finds a scalar inside an array member, and MariaDB's compares true with 1).
        params: dict[str, Any] = {}
        limit = self.metadata_max_depth
        if limit is not None and _depth(filter, limit + 1) > limit:
            # deeper than any document the database can hold (`check_keys` refuses
            # one): nothing contains it, as on PostgreSQL, without building a query
            # nested that deep
            return false(), params
        clauses = [
            _mysql_contains(_mysql_member(column, params, prefix, key), value, params, prefix)
            for key, value in filter.items()
        ]
        # A missing key makes its comparisons NULL: false here, as `@>` is, so that a
        # negated filter (a sweep's `keep`) stays true for it.
        matched = func.coalesce(and_(true(), *clauses), false(), type_=Boolean)
        return matched, params


def _mysql_member(
    container: ColumnElement[Any], params: dict[str, Any], prefix: str, key: str
) -> ColumnElement[Any]:
    """The member `key` (bound) of the JSON object `container`; NULL when absent."""
    name = f"{prefix}{len(params)}"
    params[name] = key
    return func.json_extract(container, _mysql_path("$.", bindparam(name, type_=Text)))


def _mysql_contains(
    value_sql: ColumnElement[Any], value: Any, params: dict[str, Any], prefix: str
) -> ColumnElement[bool]:
    """True where the JSON `value_sql` contains `value` as JSONB containment defines
    it: equal scalars of one JSON type (numbers by value, so 1 matches 1.0 but never
    true), objects holding every given key, arrays holding every element somewhere."""
    kind = _json_kind(value)
    json_type = func.json_type(value_sql)
    if kind == "null":
        return json_type == "NULL"
    if kind in ("true", "false"):
        # MariaDB's JSON_EXTRACT returns text, MySQL's a JSON value: both print so.
        return and_(json_type == "BOOLEAN", cast(value_sql, Text) == literal_column(f"'{kind}'"))
    name = f"{prefix}{len(params)}"
    if kind == "number":
        params[name] = str(value)
        return and_(
            json_type.in_(_MYSQL_NUMBER),
            cast(func.json_unquote(value_sql), _DECIMAL) == cast(bindparam(name), _DECIMAL),
        )
    if kind == "text":
        params[name] = value
        # compared as bytes: case, accents and trailing spaces all count, as in JSONB
        binary = mysql.BINARY()
        return and_(
            json_type == "STRING",
            cast(func.json_unquote(value_sql), binary) == cast(bindparam(name, type_=Text), binary),
        )
    if isinstance(value, Mapping):
        return and_(
            json_type == "OBJECT",
            *(
                _mysql_contains(_mysql_member(value_sql, params, prefix, k), v, params, prefix)
                for k, v in value.items()
            ),
        )
    # an array: every element contained by some element of the stored array
    clauses: list[ColumnElement[bool]] = [json_type == "ARRAY"]
    for element in value:
        items = _json_items(value_sql).table_valued("i")
        item = func.json_extract(value_sql, func.concat("$[", items.c.i - 1, "]"))
        # only `items` belongs to this subquery: an enclosing array's positions are
        # correlated, never joined again (auto-correlation reaches one level only)
        clauses.append(
            exists(
                select(literal(1))
                .select_from(items)
                .where(_mysql_contains(item, element, params, prefix))
                .correlate_except(items)
            )
        )
    return and_(*clauses)


class _json_items(FunctionElement[Any]):
    """`JSON_TABLE(array, '$[*]' COLUMNS (i FOR ORDINALITY))`: the positions of an
    array's elements, from 1."""

    name = "json_items"
    inherit_cache = True


@compiles(_json_items, "mysql")
@compiles(_json_items, "mariadb")
def _compile_json_items(element: _json_items, compiler: SQLCompiler, **kw: Any) -> str:
    (array,) = element.clauses
    return f"JSON_TABLE({compiler.process(array, **kw)}, '$[*]' COLUMNS (i FOR ORDINALITY))"


def engine_defaults(url: Any) -> dict[str, Any]:
    """`create_engine` settings `from_conn_string` gives an engine it creates for `url`.

    MySQL: no reset on return to the pool. SQLAlchemy's default sends a ROLLBACK on every
    check-in, even after a COMMIT (measured: 3 of the 13 round trips of an agent step), and
    the saver never returns a connection with a transaction open: it commits, or rolls
    back on error itself."""
    if url.get_backend_name() in MYSQL:
        return {"pool_reset_on_return": None}
    return {}


@cache
def for_name(name: str, citus: bool = False) -> Dialect:
    """The `Dialect` of a SQLAlchemy dialect name, with a message for unsupported ones;
    `citus`: PostgreSQL with the `citus` extension (see `Dialect.citus`)."""
    if name == "postgresql":
        return _Postgres(
            name,
            batch_as_arrays=True,
            cte_dml=True,
            lateral=True,
            direct=True,
            staged_blobs=True,
            skip_locked=not citus,  # Citus locks rows only in single-shard queries
            citus=citus,
        )
    if name == "sqlite":
        return _Sqlite(
            name,
            batch_as_arrays=False,
            cte_dml=False,
            single_writer=True,
            lock_before_read=True,
            direct=True,
        )
    if name in MYSQL:
        # No fast path (`direct`): checkpointer.fastpath knows asyncpg, psycopg and
        # SQLite's drivers only, so MySQL runs through SQLAlchemy's Connection.
        return _MySQL(
            name,
            batch_as_arrays=False,
            cte_dml=False,
            skip_locked=True,
            commit_each=True,
            gap_locks=True,
        )
    raise NotImplementedError(
        f"langgraph-checkpoint-sqlalchemy supports PostgreSQL, SQLite and MySQL/MariaDB, "
        f"not {name!r}"
    )


def detect_citus(conn: Connection) -> bool:
    """Whether the database has the `citus` extension (PostgreSQL only): the statement
    shapes of `Dialect.citus`, chosen once per engine at a saver's first use."""
    if conn.dialect.name != "postgresql":
        return False
    extension = table("pg_extension", column("extname"), schema="pg_catalog")
    found = select(exists().where(extension.c.extname == literal("citus", Text)))
    return bool(conn.execute(found).scalar())


__all__ = [
    "KEY_LENGTHS",
    "MYSQL",
    "Blob",
    "Dialect",
    "JsonDocument",
    "Key",
    "LargeObjectId",
    "RegClass",
    "detect_citus",
    "engine_defaults",
    "filter_shape",
    "for_name",
    "typed_null",
]
