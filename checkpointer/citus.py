"""Distributing the tables on Citus: the three tables sharded by `thread_id` and
colocated, so every per-thread statement runs on one shard (see `Dialect.citus`).

Idempotent: a table already distributed by `thread_id` in the checkpoints' colocation
group is left as it is; one distributed otherwise is an error naming it. Rows already
in a table are moved into its shards. On a database without the `citus` extension
(plain PostgreSQL, SQLite) nothing is done.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import (
    Connection,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
)

from . import schema as tables
from .dialects import RegClass as REGCLASS
from .dialects import detect_citus
from .errors import CheckpointerError

log = logging.getLogger("checkpointer")

DISTRIBUTION_COLUMN = "thread_id"

TABLES = (tables.checkpoints, tables.checkpoint_blobs, tables.checkpoint_writes)
"""In this order: the first is the colocation group the others join."""


class DistributionError(CheckpointerError, RuntimeError):
    """The tables cannot be distributed as asked (no worker nodes, a table distributed
    by another column or in another colocation group)."""


_citus_tables = table(
    "citus_tables",
    column("table_name"),
    column("citus_table_type", Text),
    column("distribution_column", Text),
    column("colocation_id"),
)


def _name(name: str, schema: str | None) -> Any:
    """`[schema.]name` as a `regclass` (quoted by the server, never spliced)."""
    if schema is None:
        return cast(func.quote_ident(literal(name, Text)), REGCLASS)
    qualified = func.format(
        literal("%I.%I", Text), bindparam("schema", schema, Text), literal(name, Text)
    )
    return cast(qualified, REGCLASS)


def distribute(connection: Connection, schema: str | None = None) -> list[str]:
    """Distribute our three tables by `thread_id`, colocated; returns the tables this
    call distributed (empty when they already were, or without Citus). Raises
    `DistributionError` on a Citus cluster without worker nodes."""
    if not detect_citus(connection):
        log.info("no citus extension in this database: the tables stay as they are")
        return []
    found = {
        str(row.name): row
        for row in connection.execute(
            select(
                func.cast(cast(_citus_tables.c.table_name, REGCLASS), Text).label("name"),
                _citus_tables.c.citus_table_type.label("kind"),
                _citus_tables.c.distribution_column.label("column"),
                _citus_tables.c.colocation_id.label("group"),
            ).where(
                cast(_citus_tables.c.table_name, REGCLASS).in_(
                    [_name(t.name, schema) for t in TABLES]
                )
            )
        )
    }
    names = [
        str(connection.execute(select(func.cast(_name(t.name, schema), Text))).scalar())
        for t in TABLES
    ]
    for name in names:
        row = found.get(name)
        if row is not None and (row.kind != "distributed" or row.column != DISTRIBUTION_COLUMN):
            raise DistributionError(
                f"table {name} is already a Citus {row.kind} table"
                + (f" distributed by {row.column!r}" if row.column not in (None, "<none>") else "")
                + f": the saver needs it distributed by {DISTRIBUTION_COLUMN!r}; undistribute "
                f"it (SELECT undistribute_table('{name}')) and distribute again"
            )
    groups = {found[n].group for n in names if n in found}
    if len(groups) > 1:
        raise DistributionError(
            f"tables {', '.join(n for n in names if n in found)} are distributed by "
            f"{DISTRIBUTION_COLUMN!r} but not colocated: undistribute them and distribute again"
        )
    missing = [n for n in names if n not in found]
    if not missing:
        return []
    workers = connection.execute(
        select(func.count()).select_from(
            func.citus_get_active_worker_nodes().table_valued("node_name", "node_port")
        )
    ).scalar()
    if not workers:
        raise DistributionError(
            "this Citus cluster has no active worker nodes to hold the shards: add them on "
            "the coordinator (SELECT citus_add_node('host', port)), then distribute again"
        )
    anchor = names[0]
    for name in missing:
        colocate = literal("default", Text) if name == anchor else literal(anchor, Text)
        connection.execute(
            select(
                func.create_distributed_table(
                    _cast_name(name),
                    literal(DISTRIBUTION_COLUMN, Text),
                    literal_column("'hash'"),  # an enum: a bound text would not match
                    colocate,
                )
            )
        )
        # the rows copied into the shards stay on disk in the coordinator's table
        connection.execute(
            select(func.truncate_local_data_after_distributing_table(_cast_name(name)))
        )
        log.info("distributed %s by %s", name, DISTRIBUTION_COLUMN)
    connection.commit()
    return missing


def _cast_name(name: str) -> Any:
    """A name as the server printed it (already quoted) as a `regclass`."""
    return cast(literal(name, Text), REGCLASS)


__all__ = ["DISTRIBUTION_COLUMN", "DistributionError", "distribute"]
