"""`ferry status` reads the journal and the catalog's outbox without SQLAlchemy (#35).

What it reads that way must be what the journal and the catalog say through
their own code, and anything unusual (an older catalog, another database, a
URL to decode) must go the old way, with the old words.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from desktop_app.core.catalog.database import CatalogMode
from desktop_app.core.catalog.peek import OutboxBacklog, sqlite_outbox_backlog
from desktop_app.core.catalog.service import open_catalog
from desktop_app.core.db import migrate
from desktop_app.core.db.migrate import Schema
from desktop_app.core.journal.facts import NewAttempt, NewTransfer
from desktop_app.core.journal.records import (
    JournalReader,
    SourceIdentity,
    TransferError,
    TransferRecord,
)
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import CatalogError, ErrorCause, JournalError
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.status import StatusReader
from desktop_app.core.settings.paths import FerryPaths
from desktop_app.core.settings.profiles import Profile, ProfileStore, plain_sqlite_file
from desktop_app.core.settings.secrets import SecretStore

MIB = 1024 * 1024


def _new(n: int) -> NewTransfer:
    return NewTransfer(
        source_path=f"/data/f{n}.bin",
        identity=SourceIdentity(20 * MIB, 1_000 + n, 7, 100 + n, 2_000 + n),
        profile="p",
        bucket="b",
        key=f"inbox/f{n}.bin",
        content_type="application/octet-stream",
        part_size=5 * MIB,
        part_count=4,
    )


def _fill(path: Path) -> tuple[list[TransferRecord], dict[int, list[NewAttempt]]]:
    """Transfers in several states, attempts, and parts sent outside any attempt;
    the records and attempts as the writing journal answered them."""
    journal = Journal(path)
    try:
        records = journal.add_many([_new(n) for n in range(6)])
        written: dict[int, list[NewAttempt]] = {}
        start = datetime(2026, 12, 3, 8, 0, 0, 123456, tzinfo=UTC)
        failure = TransferError(ErrorKind.TRANSIENT, "Network", "reset", ErrorCause.NETWORK)
        for record in records[:3]:
            journal.move(record.id, TransferState.UPLOADING)
            journal.plan_parts(record.id, f"up-{record.id}", [(1, 0, 5 * MIB), (2, 5 * MIB, MIB)])
            journal.confirm_part(record.id, 1, "0" * 32, '"etag-1"')  # sent, never recorded
            attempt = NewAttempt(start, start + timedelta(seconds=3), failure, 5 * MIB)
            journal.move(record.id, TransferState.FAILED, error=failure, attempt=attempt)
            written[record.id] = [attempt]
        journal.set_paused([records[4].id], True)
        journal.move(records[5].id, TransferState.CANCELLED)
        return [journal.get(r.id) for r in records], written
    finally:
        journal.close()


def test_the_reader_reads_what_the_journal_wrote(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    records, written = _fill(path)
    with JournalReader(path) as reader:
        assert reader.all() == records
        assert reader.all([TransferState.FAILED]) == records[:3]
        ids = [r.id for r in records]
        attempts = reader.attempts_of(ids)
        for record in records:
            expected = written.get(record.id, [])
            assert [
                (a.started_at, a.ended_at, a.error, a.bytes_sent) for a in attempts[record.id]
            ] == [(a.started_at, a.ended_at, a.error, a.bytes_sent) for a in expected]
        unrecorded = reader.unrecorded_sending(ids)
        assert [len(unrecorded[i]) for i in ids] == [1, 1, 1, 0, 0, 0]
        assert unrecorded[ids[0]][0].parts == 1
        assert unrecorded[ids[0]][0].bytes_sent == 5 * MIB
    # Beside a running Ferry: the read-only journal answers the same.
    alongside = Journal(path, read_only=True)
    try:
        with JournalReader(path) as reader:
            assert reader.all() == alongside.all()
            assert reader.attempts_of(ids) == alongside.attempts_of(ids)
            assert reader.unrecorded_sending(ids) == alongside.unrecorded_sending(ids)
    finally:
        alongside.close()


def test_no_journal_yet_holds_no_transfers_and_a_truncated_one_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "journal.sqlite3"
    with JournalReader(missing) as reader:
        assert reader.all() == []
        assert reader.attempts_of([1]) == {1: []}
    assert not missing.exists()  # reading made nothing
    missing.write_bytes(b"")
    with pytest.raises(JournalError, match="0 bytes"):
        JournalReader(missing)


def _journal_at(path: Path, revision: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        command.upgrade(migrate._config(Schema.JOURNAL, connection), revision)
        connection.commit()
    engine.dispose()


def test_a_journal_at_an_older_revision_is_migrated_before_use(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    _journal_at(path, "j0009")  # before version_id
    # Read only (a status beside a running Ferry) it is not changed, and says it cannot be read.
    for reader in (JournalReader(path), Journal(path, read_only=True)):
        with pytest.raises(JournalError, match=r"Reading the journal failed \(OperationalError\)"):
            reader.all()
        reader.close()
    opened = Journal(path)  # the Ferry that writes it upgrades it first
    try:
        assert opened.all() == []
        added = opened.add(_new(1))
    finally:
        opened.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM journal_version").fetchall() == [
            (Schema.JOURNAL.head,)
        ]
    db.close()
    with JournalReader(path) as reader:
        assert reader.all() == [added]


def test_a_journal_at_the_head_is_opened_without_loading_alembic(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()  # made and brought to the head
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from desktop_app.core.journal.store import Journal\n"
        f"Journal(Path({str(path)!r})).close()\n"
        "print('alembic' in sys.modules)\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert answer.stdout.strip() == "False"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/catalog.sqlite3",
        "sqlite:///relative/catalog.db",
        "sqlite:////tmp/a b/#1/c@d.db",
        "sqlite:////tmp/x.db?mode=ro",
        "sqlite:////tmp/with%20escape.db",
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite+pysqlite:////tmp/x.db",
        "postgresql+psycopg://ferry@db/ferry",
    ],
)
def test_a_plain_sqlite_url_is_the_file_sqlalchemy_would_open(url: str) -> None:
    found = plain_sqlite_file(url)
    if found is None:
        return  # read by SQLAlchemy, as before
    parsed = make_url(url)
    assert parsed.get_backend_name() == "sqlite"
    assert parsed.password is None
    assert parsed.database is not None
    assert found == str(Path(parsed.database).absolute())


def _catalog(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    open_catalog(url, owner="me").close()
    return url


def _events(url: str, rows: list[tuple[str, str | None, str | None]]) -> None:
    """Outbox rows: created_at, published_at, skipped_reason."""
    path = plain_sqlite_file(url)
    assert path is not None
    with sqlite3.connect(path) as db:
        for n, (created, published, skipped) in enumerate(rows):
            db.execute(
                "INSERT INTO outbox (event_type, owner, payload, created_at, published_at, "
                "event_uid, skipped_reason) VALUES ('file.uploaded', 'me', '{}', ?, ?, ?, ?)",
                (created, published, f"uid-{n}", skipped),
            )
    db.close()


def _backlog_by_the_catalog(url: str) -> OutboxBacklog:
    catalog = open_catalog(url, owner="me", mode=CatalogMode.READ_ONLY)
    try:
        return catalog.outbox_backlog()
    finally:
        catalog.close()


def test_the_backlog_read_through_sqlite3_is_the_catalogs(tmp_path: Path) -> None:
    url = _catalog(tmp_path)
    assert sqlite_outbox_backlog(url) == _backlog_by_the_catalog(url) == OutboxBacklog(0, 0, None)
    _events(
        url,
        [
            ("2026-12-03 07:00:00.000001", None, None),
            ("2026-12-03 06:00:00.500000", None, None),
            ("2026-12-03 05:00:00.000000", "2026-12-03 05:00:01.000000", None),
            ("2026-12-03 04:00:00.000000", None, "too large"),
        ],
    )
    backlog = sqlite_outbox_backlog(url)
    assert backlog == _backlog_by_the_catalog(url)
    assert backlog == OutboxBacklog(2, 1, datetime(2026, 12, 3, 6, 0, 0, 500000, tzinfo=UTC))


def test_any_other_catalog_is_left_to_the_catalog_itself(tmp_path: Path) -> None:
    url = _catalog(tmp_path)
    path = plain_sqlite_file(url)
    assert path is not None
    assert sqlite_outbox_backlog(f"sqlite:///{tmp_path / 'none-yet.sqlite3'}") is None
    assert not (tmp_path / "none-yet.sqlite3").exists()  # made by open_catalog, not here
    assert sqlite_outbox_backlog("postgresql+psycopg://ferry@127.0.0.1:9/ferry") is None
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE things (id INTEGER)")
    db.close()
    assert sqlite_outbox_backlog(f"sqlite:///{foreign}") is None
    journal = tmp_path / "journal.sqlite3"
    Journal(journal).close()
    assert sqlite_outbox_backlog(f"sqlite:///{journal}") is None
    with sqlite3.connect(path) as db:  # an older revision
        db.execute("UPDATE ferry_schema_version SET version_num = '0008'")
    db.close()
    assert sqlite_outbox_backlog(url) is None


def test_status_on_an_older_catalog_says_to_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    env = Environment(
        FerryPaths.from_environment({"FERRY_HOME": str(tmp_path / "home")}),
        {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
        SecretStore(_NoKeyring()),
    )
    env.paths.ensure()
    url = _catalog(tmp_path)
    ProfileStore(env.paths.profiles_file).save(
        Profile(name="p", bucket="bucket", catalog_url=url, endpoint_url="http://127.0.0.1:9"),
        make_default=True,
    )
    with StatusReader.open(env) as status:
        assert status.transfers() == []
        assert status.outbox_backlog() == OutboxBacklog(0, 0, None)
    catalog_file = plain_sqlite_file(url)
    assert catalog_file is not None
    with sqlite3.connect(catalog_file) as db:
        db.execute("UPDATE ferry_schema_version SET version_num = '0008'")
    db.close()
    before = Path(catalog_file).read_bytes()
    with pytest.raises(CatalogError, match="The catalog needs an upgrade: run `ferry catalog"):
        StatusReader.open(env)
    assert Path(catalog_file).read_bytes() == before


class _NoKeyring:
    """A keyring with nothing in it, that says so if it is asked."""

    priority = 0  # not usable: Ferry reads no secret from it

    # keyring's own signatures, arguments unread.
    def get_password(self, service: str, username: str) -> str | None:  # noqa: ARG002
        return None

    def set_password(self, service: str, username: str, password: str) -> None:  # noqa: ARG002
        raise AssertionError("nothing is stored by a status")

    def delete_password(self, service: str, username: str) -> None:  # noqa: ARG002
        raise AssertionError("nothing is deleted by a status")


@pytest.mark.parametrize("folder", ["with#hash", "with%23escape", "with?mark"])
def test_a_journal_in_a_folder_whose_name_means_something_in_a_uri_is_read(
    tmp_path: Path, folder: str
) -> None:
    path = tmp_path / folder / "journal.sqlite3"
    path.parent.mkdir()
    journal = Journal(path)
    try:
        added = journal.add(_new(1))
    finally:
        journal.close()
    for reader in (JournalReader(path), Journal(path, read_only=True)):
        try:
            assert reader.all() == [added]
        finally:
            reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]  # nothing made beside it
