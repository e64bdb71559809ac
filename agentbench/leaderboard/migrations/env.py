"""Alembic environment: runs on the connection `db.migrate` passes in (or a URL in
`sqlalchemy.url` for the alembic command line)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from agentbench.leaderboard.db import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
