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
- JSON: walking `channel_versions` (`jsonb_each_text` / `json_each`), and the metadata
  filter: JSONB containment (`@>`, served by a GIN index) on PostgreSQL, the same
  meaning rebuilt from nested `json_each` on SQLite.

A filter key is always a bound value, never part of the SQL text or of a JSON path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    FromClause,
    Integer,
    LargeBinary,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
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
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB, OID, REGCLASS
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.dml import Insert

from .rows import BYTES, DEAD_ROWS, FREE_PAGES, PAGE_COUNT, PAGE_SIZE, SCHEMA, TABLE

JsonDocument = JSON().with_variant(JSONB(), "postgresql")
"""Column type of a JSON document (`checkpoint`, `metadata`): JSONB on PostgreSQL, for
containment filters and their GIN index."""

Blob = LargeBinary().with_variant(BYTEA(), "postgresql")
"""Column type of a serialized value."""

LargeObjectId = OID
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
    """`SELECT ... FOR UPDATE SKIP LOCKED`: concurrent sweepers take disjoint batches
    (PostgreSQL). SQLite has one writer at a time, which serializes them anyway."""

    citus: bool = False
    """The tables may be distributed by `thread_id` (the `citus` extension is present;
    decided once per engine, `detect_citus`): every per-thread statement filters each
    table on the bound `thread_id` itself and writes rows as one multi-row `VALUES`
    insert, so Citus routes it to one shard; cross-thread reads join without LATERAL,
    which Citus cannot push down over the shards."""

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
    objects and arrays, their structure (never keys or scalar values). Filters of one
    shape compile to one statement, so it can be cached by shape."""
    return tuple(_value_shape(value) for value in filter.values())


def _value_shape(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ("object", tuple(_value_shape(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(_value_shape(v) for v in value))
    return _json_kind(value)


class _Postgres(Dialect):
    def insert(self, table: Table) -> Any:
        return postgresql.insert(table)

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
        # PostgreSQL's `@>` rebuilt from `json_each`: one EXISTS per filter key, and per
        # nested key or array element, each walking the stored value one level down.
        params: dict[str, Any] = {}
        clauses = [
            _sqlite_member(column, value, params, prefix, key=key) for key, value in filter.items()
        ]
        return and_(true(), *clauses), params


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
        types = ("integer", "real") if kind == "number" else ("text",)
        return and_(each.c.type.in_(types), each.c.atom == bindparam(name))
    if isinstance(value, Mapping):
        return and_(
            each.c.type == "object",
            *(_sqlite_member(each.c.value, v, params, prefix, key=k) for k, v in value.items()),
        )
    return and_(
        each.c.type == "array",
        *(_sqlite_member(each.c.value, v, params, prefix) for v in value),
    )


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
    raise NotImplementedError(
        f"langgraph-checkpoint-sqlalchemy supports PostgreSQL and SQLite, not {name!r}"
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
    "Blob",
    "Dialect",
    "JsonDocument",
    "LargeObjectId",
    "RegClass",
    "detect_citus",
    "filter_shape",
    "for_name",
]
