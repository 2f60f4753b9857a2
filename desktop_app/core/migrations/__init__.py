"""Numbered Alembic migrations: catalog/ for the catalog, journal/ for the journal."""
