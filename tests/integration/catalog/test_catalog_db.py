"""Ferry changes only a database it knows as its catalog, on SQLite and PostgreSQL.

The second actor is another application's database (its own `alembic_version`
and `files`), an older Ferry catalog, and Ferry's own journal; `ferry` runs
as a user runs it, in a subprocess, against each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text

from desktop_app.core.catalog.service import open_catalog
from desktop_app.core.db import migrate
from desktop_app.core.db.migrate import Schema
from desktop_app.core.journal.store import Journal
from desktop_app.core.settings.paths import FerryPaths
from tests.conftest import pg_url_for_schema
from tests.integration.cli.test_cli import run_ferry

SECRET = "not-this-password"


def env_for(catalog_url: str) -> dict[str, str]:
    """A profile from the environment alone; nothing here reaches the (absent) S3 server."""
    return {
        "FERRY_ENDPOINT_URL": "http://127.0.0.1:9",
        "FERRY_BUCKET": "files",
        "FERRY_CATALOG_URL": catalog_url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
    }


def snapshot(url: str) -> dict[str, Any]:
    """Every table's columns and rows, as another program would see them."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            return {
                table: (
                    [c["name"] for c in inspector.get_columns(table)],
                    sorted(map(tuple, connection.execute(text(f'SELECT * FROM "{table}"')))),
                )
                for table in sorted(inspector.get_table_names())
            }
    finally:
        engine.dispose()


def make_application_database(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE files (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL)")
        )
        connection.execute(text("INSERT INTO files (id, name) VALUES (1, 'invoice.pdf')"))
        connection.execute(
            text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        )
        connection.execute(text("INSERT INTO alembic_version VALUES ('0005')"))
    engine.dispose()


def make_pre_marker_catalog(url: str) -> None:
    """A catalog as Ferry made it before the marker: revision 0006 in alembic_version."""
    from alembic import command

    engine = create_engine(url)
    with engine.connect() as connection:
        config = migrate._config(Schema.CATALOG, connection)
        config.attributes["version_table"] = "alembic_version"
        command.upgrade(config, "0006")
        connection.execute(
            text(
                "INSERT INTO files (bucket, key, owner, original_name, size, sha256, "
                "content_type, status, created_at) VALUES ('files', 'kept/a.txt', 'x', "
                "'a.txt', 3, :sha, 'text/plain', 'active', CURRENT_TIMESTAMP)"
            ),
            {"sha": "a" * 64},
        )
        connection.commit()
    engine.dispose()


def test_an_application_database_is_refused_and_left_as_it_was(
    catalog_url: str, tmp_path: Path
) -> None:
    make_application_database(catalog_url)
    before = snapshot(catalog_url)
    (tmp_path / "a.txt").write_text("alpha")
    for command in (["ls"], ["upload", str(tmp_path / "a.txt")]):
        # PostgreSQL here trusts every login: the password is sent and ignored.
        secret = {**env_for(catalog_url), "PGPASSWORD": SECRET}
        result = run_ferry(tmp_path / "home", *command, env=secret)
        assert result.returncode != 0, command
        message = result.stderr
        assert "Not a Ferry catalog" in message, message
        assert "files" in message, message
        assert "alembic_version is at 0005" in message, message
        assert "FERRY_CATALOG_URL" in message, message
        assert "empty database" in message, message
        assert SECRET not in message + result.stdout
        assert "Traceback" not in message
        # Their table keeps its columns and row, their version stays 0005, and
        # no table of Ferry's appeared beside them.
        assert snapshot(catalog_url) == before


def test_an_empty_database_becomes_a_marked_catalog(catalog_url: str, tmp_path: Path) -> None:
    listed = run_ferry(tmp_path / "home", "ls", "--json", env=env_for(catalog_url))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"files": []}
    tables = snapshot(catalog_url)
    assert "alembic_version" not in tables
    assert tables["ferry_schema_version"][1] == [(Schema.CATALOG.head,)]
    [(one, kind, catalog_id, _created)] = tables["ferry_catalog"][1]
    assert (one, kind) == (1, "ferry-catalog")
    assert len(catalog_id) == 32


def test_a_read_only_command_leaves_an_older_catalog_as_it_was_and_says_to_upgrade(
    catalog_url: str, tmp_path: Path
) -> None:
    make_pre_marker_catalog(catalog_url)
    before = snapshot(catalog_url)
    for command in (["ls"], ["status"], ["profile", "test"]):
        result = run_ferry(tmp_path / "home", *command, env=env_for(catalog_url))
        assert result.returncode != 0, command
        said = result.stdout + result.stderr
        assert "The catalog needs an upgrade: run `ferry catalog upgrade`" in said, said
        assert "revision 0006" in said
        assert snapshot(catalog_url) == before, command


def test_an_older_catalog_is_recognised_and_its_version_moved(
    catalog_url: str, tmp_path: Path
) -> None:
    make_pre_marker_catalog(catalog_url)
    upgraded = run_ferry(tmp_path / "home", "catalog", "upgrade", env=env_for(catalog_url))
    assert upgraded.returncode == 0, upgraded.stderr
    tables = snapshot(catalog_url)
    assert "alembic_version" not in tables
    assert tables["ferry_schema_version"][1] == [(Schema.CATALOG.head,)]
    assert len(tables["ferry_catalog"][1]) == 1
    listed = run_ferry(tmp_path / "home", "ls", "--json", env=env_for(catalog_url))
    assert listed.returncode == 0, listed.stderr
    assert [f["key"] for f in json.loads(listed.stdout)["files"]] == ["kept/a.txt"]


def test_the_journal_is_refused_as_a_catalog_and_left_as_it_was(tmp_path: Path) -> None:
    home = tmp_path / "home"
    journal = FerryPaths.from_environment({"FERRY_HOME": str(home)}).journal_file
    # Before the journal exists: it would be created holding the catalog's tables.
    fresh = run_ferry(home, "ls", env=env_for(f"sqlite:///{journal}"))
    assert fresh.returncode != 0, fresh.stderr
    assert "The journal is not a catalog" in fresh.stderr, fresh.stderr
    assert not journal.exists() or "files" not in snapshot(f"sqlite:///{journal}")

    Journal(journal).close()  # as the first Ferry to run makes it
    before = journal.read_bytes()
    copy = tmp_path / "elsewhere" / "copy.sqlite3"
    copy.parent.mkdir()
    shutil.copy(journal, copy)
    # By its path (spelled another way) and, for a copy, by its tables.
    for url in (f"sqlite:///{journal.parent}/../data/{journal.name}", f"sqlite:///{copy}"):
        refused = run_ferry(home, "ls", env=env_for(url))
        assert refused.returncode != 0, url
        assert "The journal is not a catalog" in refused.stderr, refused.stderr
        assert "FERRY_CATALOG_URL" in refused.stderr
    assert journal.read_bytes() == before
    assert "files" not in snapshot(f"sqlite:///{copy}")


def test_a_ferry_opening_while_another_makes_the_catalog_waits_and_uses_it(
    postgres_admin_url: str, pg_schema: str
) -> None:
    """Twenty Ferrys opening a new team catalog at once: one makes it, none calls it foreign.

    The second Ferry's first look (is the marker there?) runs before the first
    Ferry commits and its next look (which tables?) after; the commit is made
    to land exactly there.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    url = pg_url_for_schema(postgres_admin_url, pg_schema)
    maker_engine = create_engine(url)
    maker = maker_engine.connect()
    from alembic import command

    migrate.hold_upgrade_lock(maker)
    command.upgrade(migrate._config(Schema.CATALOG, maker), "head")
    committed: list[bool] = []

    def commit_after_first_look(
        conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any
    ) -> None:
        if conn is not maker and not committed and "ferry_catalog" in f"{statement}{parameters}":
            committed.append(True)
            maker.commit()

    event.listen(Engine, "after_cursor_execute", commit_after_first_look)
    try:
        catalog = open_catalog(url, owner="alice")
    finally:
        event.remove(Engine, "after_cursor_execute", commit_after_first_look)
        maker.close()
        maker_engine.dispose()
    try:
        assert committed, "the maker's commit never landed between the two looks"
        assert catalog.get(1) is None
        assert catalog.key_is_live("files", "a.txt") is False
    finally:
        catalog.close()
    assert snapshot(url)["ferry_schema_version"][1] == [(Schema.CATALOG.head,)]
