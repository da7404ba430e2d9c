"""Least privilege: a deploy role migrates into a schema it owns; an application role
that may only read and write rows (no DDL) then runs the saver, fail-closed check and
`setup()` included. The grants are the README's recipe, verbatim."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from langgraph.types import Command
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SchemaNotReadyError

from ..deploy_support import build_graph, run_alembic, sync_pg_url, versions, with_conn
from ..pg_server import database_url

SCHEMA = "langgraph"
CONFIG = {"configurable": {"thread_id": "least-privilege"}}


@pytest.fixture
def roles(fresh_pg: str) -> Iterator[tuple[str, str]]:
    """A deploy role owning schema `langgraph` (a DBA's one-off), and an app role."""
    suffix = uuid.uuid4().hex[:8]
    deploy, app = f"deploy_{suffix}", f"app_{suffix}"
    admin = sync_pg_url(fresh_pg)
    with with_conn(admin) as conn:
        conn.execute(text(f"CREATE ROLE {deploy} LOGIN"))
        conn.execute(text(f"CREATE ROLE {app} LOGIN"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA} AUTHORIZATION {deploy}"))
        conn.commit()
    try:
        yield deploy, app
    finally:
        with with_conn(admin) as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"DROP OWNED BY {deploy}, {app}"))
            conn.commit()
        with with_conn(sync_pg_url("postgres")) as conn:
            conn.execute(text(f"DROP ROLE {app}"))
            conn.execute(text(f"DROP ROLE {deploy}"))
            conn.commit()


GRANTS = """
GRANT USAGE ON SCHEMA langgraph TO {app};
GRANT SELECT, INSERT, UPDATE, DELETE
    ON langgraph.checkpoints, langgraph.checkpoint_blobs, langgraph.checkpoint_writes TO {app};
GRANT SELECT ON langgraph.checkpointer_alembic_version TO {app};
"""


async def test_app_role_runs_the_saver_after_a_deploy_role_migrated(
    fresh_pg: str, roles: tuple[str, str]
) -> None:
    deploy, app = roles
    app_engine = create_async_engine(database_url(fresh_pg, "asyncpg").set(username=app))
    try:
        # Before the deploy: the app fails closed, with the fix in the message.
        with pytest.raises(SchemaNotReadyError, match="-x schema=langgraph upgrade head"):
            await AsyncSQLAlchemySaver(app_engine, schema=SCHEMA).aget_tuple(CONFIG)

        # The deploy job: the CLI as the deploy role, URL and schema from the environment.
        deploy_url = sync_pg_url(fresh_pg, username=deploy)
        run_alembic("upgrade", "head", url=deploy_url, schema=SCHEMA)
        grants = [g for g in GRANTS.format(app=app).split(";") if g.strip()]
        with with_conn(deploy_url) as conn:
            for statement in grants[:-1]:
                conn.execute(text(statement))
            conn.commit()
            assert versions(conn, SCHEMA) == ["0006"]
            # Without SELECT on the version table, the message names the missing grant.
            with pytest.raises(
                SchemaNotReadyError, match=r"GRANT SELECT ON langgraph\.checkpointer"
            ):
                await AsyncSQLAlchemySaver(app_engine, schema=SCHEMA).aget_tuple(CONFIG)
            conn.execute(text(grants[-1]))
            conn.commit()

        saver = AsyncSQLAlchemySaver(app_engine, schema=SCHEMA)
        assert await saver.setup() == []  # at head: no DDL needed, none attempted
        graph = build_graph(saver)
        await graph.ainvoke({"log": ["start"], "answer": ""}, CONFIG)
        assert (await graph.aget_state(CONFIG)).next == ("ask",)
        final = await graph.ainvoke(Command(resume="yes"), CONFIG)
        assert final["log"][-1] == "finished"
        assert len([c async for c in saver.alist(CONFIG)]) >= 3
        await saver.adelete_thread("least-privilege")
        assert await saver.aget_tuple(CONFIG) is None

        # The app role really is limited to rows.
        async with app_engine.connect() as conn:
            with pytest.raises(ProgrammingError, match="permission denied"):
                await conn.execute(text("CREATE TABLE langgraph.intruder (id int)"))
            await conn.rollback()
            with pytest.raises(ProgrammingError, match="must be owner"):
                await conn.execute(text("DROP INDEX langgraph.checkpoints_run_id_idx"))
            await conn.rollback()
            with pytest.raises(ProgrammingError, match="permission denied"):
                await conn.execute(
                    text("UPDATE langgraph.checkpointer_alembic_version SET version_num = 'x'")
                )
            await conn.rollback()
    finally:
        await app_engine.dispose()
    # Nothing the app did needed the search_path or the public schema.
    with with_conn(sync_pg_url(fresh_pg)) as conn:
        assert versions(conn) == []
