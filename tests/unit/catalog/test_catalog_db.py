"""Database errors are read by their codes (SQLSTATE, SQLite result codes), never
by their English text: real errors from a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from desktop_app.core.catalog.database import DatabaseFault, classify_db_error, translate_db_error
from desktop_app.core.model.errors import CatalogAccessError


def sqlite_error(path: Path, statement: str, *, uri: str | None = None) -> sqlite3.Error:
    connection = sqlite3.connect(uri or str(path), uri=uri is not None, timeout=0)
    try:
        connection.execute(statement)
        connection.commit()
    except sqlite3.Error as exc:
        return exc
    finally:
        connection.close()
    raise AssertionError(f"{statement} did not fail")


def test_sqlite_errors_are_read_by_their_result_codes(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE files (id INTEGER PRIMARY KEY)")
    read_only = sqlite_error(path, "INSERT INTO files VALUES (1)", uri=f"file:{path}?mode=ro")
    assert classify_db_error(read_only) is DatabaseFault.REFUSED

    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        busy = sqlite_error(path, "INSERT INTO files VALUES (2)")
    finally:
        holder.rollback()
        holder.close()
    assert classify_db_error(busy) is DatabaseFault.UNREACHABLE

    no_table = sqlite_error(path, "SELECT * FROM nowhere")
    assert classify_db_error(no_table) is DatabaseFault.OTHER


def test_postgresql_errors_are_read_by_their_sqlstate(postgres_admin_url: str) -> None:
    def error_of(*statements: str) -> psycopg.Error:
        with psycopg.connect(postgres_admin_url) as connection:
            try:
                for statement in statements:
                    connection.execute(statement)
            except psycopg.Error as exc:
                return exc
        raise AssertionError(f"{statements} did not fail")

    read_only = error_of("SET TRANSACTION READ ONLY", "CREATE TEMP TABLE ferry_t_refused (id int)")
    assert read_only.sqlstate == "25006"
    assert classify_db_error(read_only) is DatabaseFault.REFUSED
    no_right = error_of(
        "CREATE ROLE ferry_t_nobody NOLOGIN",
        "SET LOCAL ROLE ferry_t_nobody",
        "CREATE TABLE public.ferry_t_nowhere (id int)",
    )
    assert no_right.sqlstate == "42501"
    assert classify_db_error(no_right) is DatabaseFault.REFUSED
    assert classify_db_error(error_of("SELEC 1")) is DatabaseFault.OTHER


def test_a_refusal_through_sqlalchemy_tells_the_person_to_ask_for_rights(
    postgres_admin_url: str,
) -> None:
    engine = create_engine(postgres_admin_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            connection.execute(text("SET TRANSACTION READ ONLY"))
            with pytest.raises(SQLAlchemyError) as caught:
                connection.execute(text("CREATE TEMP TABLE ferry_t_refused (id int)"))
    finally:
        engine.dispose()
    translated = translate_db_error(caught.value, "record the upload")
    assert isinstance(translated, CatalogAccessError)
    assert "Ask the catalog's administrator" in translated.message
