"""The three Core tables of the storage contract, on one `MetaData`.

Key columns are TEXT, and VARCHAR on MySQL/MariaDB (`dialects.KEY_LENGTHS`).
Names, columns and primary keys match the tables langgraph-checkpoint-postgres 3.x
creates, so either saver can read and write a PostgreSQL database the other wrote.
Constraint and index names follow PostgreSQL's own defaults (`<table>_pkey`), so
Alembic's comparison with a database created by the official saver finds no drift.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, text

from .dialects import MYSQL, Blob, JsonDocument, Key

metadata = MetaData(
    naming_convention={
        "pk": "%(table_name)s_pkey",
        "ix": "%(table_name)s_%(column_0_N_name)s_idx",
    }
)
"""The `MetaData` holding our tables: pass it to Alembic or exclude it from your own."""

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("thread_id", Key("thread_id"), primary_key=True),
    Column("checkpoint_ns", Key("checkpoint_ns"), primary_key=True, server_default=""),
    Column("checkpoint_id", Key("checkpoint_id"), primary_key=True),
    Column("parent_checkpoint_id", Text, nullable=True),
    Column("type", Text, nullable=True),
    Column("checkpoint", JsonDocument, nullable=False),
    Column("metadata", JsonDocument, nullable=False, server_default=text("'{}'")),
)

checkpoint_blobs = Table(
    "checkpoint_blobs",
    metadata,
    Column("thread_id", Key("thread_id"), primary_key=True),
    Column("checkpoint_ns", Key("checkpoint_ns"), primary_key=True, server_default=""),
    Column("channel", Key("channel"), primary_key=True),
    Column("version", Key("version"), primary_key=True),
    Column("type", Text, nullable=False),
    Column("blob", Blob, nullable=True),
)

checkpoint_writes = Table(
    "checkpoint_writes",
    metadata,
    Column("thread_id", Key("thread_id"), primary_key=True),
    Column("checkpoint_ns", Key("checkpoint_ns"), primary_key=True, server_default=""),
    Column("checkpoint_id", Key("checkpoint_id"), primary_key=True),
    Column("task_id", Key("task_id"), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("channel", Text, nullable=False),
    Column("type", Text, nullable=True),
    Column("blob", Blob, nullable=False),
    Column("task_path", Text, nullable=False, server_default=""),
)

# Settings of the database itself (revision 0005): `blob_encoding` = "incremental" once a
# saver with that option has written (or may write) encoded blob rows, so a saver
# without it refuses the database instead of misreading it (`checkpointer.incremental`).
checkpointer_settings = Table(
    "checkpointer_settings",
    metadata,
    Column("name", String(64), primary_key=True),  # a sized key: MySQL indexes no TEXT
    Column("value", Text, nullable=False),
)

# The run id of a checkpoint, as an expression whose key is a constant in the SQL text:
# PostgreSQL matches an expression index only against the same expression, and a bound
# key (`metadata ->> $1`) would not match it under a generic plan.
run_id = checkpoints.c.metadata.op("->>", return_type=Text)(text("'run_id'"))

# PostgreSQL-only indexes (SQLite has no GIN, and its embedded use keeps tables small):
# metadata filters (`alist(filter=...)`) use JSONB containment, served by a GIN index;
# `delete_for_runs` finds checkpoints by run id through an expression index.
Index(
    "checkpoints_metadata_idx",
    checkpoints.c.metadata,
    postgresql_using="gin",
    postgresql_ops={"metadata": "jsonb_path_ops"},
    postgresql_with={"fastupdate": "off"},  # no pending list: see revision 0003
).ddl_if(dialect="postgresql")
# Partial: only checkpoints with a run id, which every lookup by run implies (0006).
Index("checkpoints_run_id_idx", run_id, postgresql_where=run_id.isnot(None)).ddl_if(
    dialect="postgresql"
)
# The thread list and sweeps walk root checkpoints by id (revision 0004; since 0006
# without `thread_id`, whose ties an incremental sort breaks).
Index(
    "checkpoints_root_id_idx",
    checkpoints.c.checkpoint_id,
    postgresql_where=checkpoints.c.checkpoint_ns == text("''"),
).ddl_if(dialect="postgresql")
# MySQL/MariaDB (revisions 0002 and 0004): no partial indexes, so the root-checkpoint
# index leads with the namespace; `delete_for_runs` is served by an index on `run_id`,
# a virtual column generated from the metadata, which is not part of this table
# (env.py leaves it out of the comparison): statements name it through the dialect.
Index(
    "checkpoints_root_id_idx",
    checkpoints.c.checkpoint_ns,
    checkpoints.c.checkpoint_id,
    checkpoints.c.thread_id,
).ddl_if(dialect=MYSQL)  # type: ignore[arg-type]  # a tuple is accepted
