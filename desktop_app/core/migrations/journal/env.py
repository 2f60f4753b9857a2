"""Alembic environment: runs on the connection handed in by core.migrate."""

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    version_table="journal_version",
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
