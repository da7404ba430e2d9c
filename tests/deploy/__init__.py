"""Deploying: Alembic migrations, schemas, roles, wheels, PgBouncer."""
