"""Alembic environment: runs on the connection handed in by core.migrate."""

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    # Ferry's own name (migrate.Schema.CATALOG), never another application's alembic_version.
    version_table=context.config.attributes["version_table"],
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
