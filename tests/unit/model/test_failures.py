"""Failure causes are codes set where an error is raised: no title decides anything.

The Failed inbox groups by the code and a repeated verification failure is
recognised by it, so rewording a title regroups nothing. Journal rows written
before the code existed get theirs once, in the migration, from the titles
Ferry grouped by until then.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

from desktop_app.core.check.findings import ConsistencyError
from desktop_app.core.db import migrate
from desktop_app.core.journal.facts import NewAttempt, NewTransfer
from desktop_app.core.journal.records import TransferError, TransferRecord
from desktop_app.core.journal.store import Journal
from desktop_app.core.model import errors
from desktop_app.core.model.errors import (
    CatalogError,
    ErrorCause,
    FerryError,
    StorageError,
    StorageErrorKind,
)
from desktop_app.core.model.failures import FailureCause, cause_of
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.runtime.facade import FacadeRefused
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import CredentialSource, S3Credentials
from desktop_app.core.settings.sso import SignInFailedError
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.sources import SourceProblem
from desktop_app.core.transfers.verification import (
    VERIFICATION_FAILED,
    verification_failed_before,
)
from tests.unit.model.test_states import new_transfer

STORAGE_CAUSES = {
    StorageErrorKind.TRANSIENT: ErrorCause.SERVER,
    StorageErrorKind.PERMANENT: ErrorCause.SERVER,
    StorageErrorKind.NO_SUCH_UPLOAD: ErrorCause.SERVER,
    StorageErrorKind.NOT_FOUND: ErrorCause.SERVER,
    StorageErrorKind.BAD_DIGEST: ErrorCause.SERVER,
    StorageErrorKind.NOT_SUPPORTED: ErrorCause.SERVER,
    StorageErrorKind.PRECONDITION_FAILED: ErrorCause.CONFLICT,
}

# Every FerryError subclass and its own cause (a raise site may name another).
CLASS_CAUSES: dict[type[FerryError], ErrorCause] = {
    FerryError: ErrorCause.OTHER,
    errors.ConfigError: ErrorCause.OTHER,
    errors.ProfileNotFoundError: ErrorCause.OTHER,
    errors.SignInRequiredError: ErrorCause.CREDENTIALS,
    errors.UnsafeFolderError: ErrorCause.OTHER,
    errors.ControlChannelError: ErrorCause.OTHER,
    errors.SecretStoreError: ErrorCause.CREDENTIALS,
    errors.SandboxError: ErrorCause.OTHER,
    errors.JournalLockedError: ErrorCause.OTHER,
    errors.JournalError: ErrorCause.OTHER,
    errors.IllegalMoveError: ErrorCause.OTHER,
    errors.CatalogError: ErrorCause.SERVER,
    errors.CatalogAccessError: ErrorCause.CREDENTIALS,
    errors.RelayLockTaken: ErrorCause.OTHER,
    errors.KeyConflictError: ErrorCause.CONFLICT,
    errors.NotInCatalogError: ErrorCause.OTHER,
    errors.ReservationLostError: ErrorCause.OTHER,
    errors.EventStreamError: ErrorCause.OTHER,
    errors.InvalidKeyError: ErrorCause.FILE,
    errors.SourceError: ErrorCause.FILE,
    errors.SourceChangedError: ErrorCause.FILE,
    errors.StorageError: ErrorCause.OTHER,  # each instance takes its kind's (below)
    ConsistencyError: ErrorCause.OTHER,
    SignInFailedError: ErrorCause.OTHER,
    FacadeRefused: ErrorCause.OTHER,
}


def _subclasses(cls: type[FerryError]) -> set[type[FerryError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("desktop_app."):
            found |= _subclasses(sub)
    return found


def _migration() -> ModuleType:
    path = (
        Path(migrate.__file__).parent.parent
        / "migrations"
        / "journal"
        / "versions"
        / "0008_error_cause.py"
    )
    spec = importlib.util.spec_from_file_location("journal_0008_error_cause", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _old_cause(kind: ErrorKind, title: str) -> str:
    """What the migration derives for an old row: the grouping by title Ferry had."""
    if kind in (ErrorKind.INPUT, ErrorKind.SOURCE_CHANGED, ErrorKind.FINAL):
        return "file"
    mapping: dict[str, str] = _migration()._BY_TITLE
    return mapping.get(title, "other")


# -- each error carries its cause --------------------------------------------


@pytest.mark.parametrize("kind", list(StorageErrorKind))
def test_every_storage_error_kind_has_its_cause(kind: StorageErrorKind) -> None:
    assert set(STORAGE_CAUSES) == set(StorageErrorKind), "a new kind needs its row here"
    assert kind.cause is STORAGE_CAUSES[kind]
    assert StorageError("x", kind=kind).cause is STORAGE_CAUSES[kind]
    named = StorageError("x", kind=kind, cause=ErrorCause.CREDENTIALS)
    assert named.cause is ErrorCause.CREDENTIALS, "a raise site's cause wins over the kind's"


@pytest.mark.parametrize("cls", list(CLASS_CAUSES), ids=lambda c: c.__name__)
def test_every_ferry_error_class_has_its_cause(cls: type[FerryError]) -> None:
    assert cls.cause is CLASS_CAUSES[cls]


def test_the_table_names_every_ferry_error_class() -> None:
    assert _subclasses(FerryError) == set(CLASS_CAUSES)


def test_a_raise_site_may_name_another_cause_and_the_class_keeps_its_own() -> None:
    error = CatalogError("x", title="Catalog unreachable", cause=ErrorCause.NETWORK)
    assert error.cause is ErrorCause.NETWORK
    assert CatalogError("x").cause is ErrorCause.SERVER


def test_source_problems_are_the_files() -> None:
    problem = SourceProblem(Path("/x"), "Not a regular file", "a socket", final=True)
    assert problem.cause is ErrorCause.FILE


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutObject")


# What each S3 answer becomes: the cause, and that it groups as the title did.
@pytest.mark.parametrize(
    ("code", "status", "cause"),
    [
        ("NoSuchUpload", 404, ErrorCause.SERVER),
        ("", 407, ErrorCause.CREDENTIALS),
        ("RequestTimeTooSkewed", 403, ErrorCause.OTHER),
        ("NoSuchBucket", 404, ErrorCause.SERVER),
        ("PreconditionFailed", 412, ErrorCause.CONFLICT),
        ("NoSuchKey", 404, ErrorCause.SERVER),
        ("InvalidAccessKeyId", 403, ErrorCause.CREDENTIALS),
        ("SignatureDoesNotMatch", 403, ErrorCause.CREDENTIALS),
        ("AccessDenied", 403, ErrorCause.CREDENTIALS),
        ("BadDigest", 400, ErrorCause.SERVER),
        ("NotImplemented", 501, ErrorCause.SERVER),
        ("SlowDown", 503, ErrorCause.SERVER),
        ("InvalidArgument", 400, ErrorCause.SERVER),
    ],
)
def test_storage_answers_carry_their_cause(code: str, status: int, cause: ErrorCause) -> None:
    profile = Profile(
        name="t", bucket="b", catalog_url="sqlite://", endpoint_url="http://127.0.0.1:1"
    )
    credentials = S3Credentials("key", "not-a-secret", CredentialSource.ENVIRONMENT)
    storage = S3Storage.connect(profile, credentials)
    error = storage.errors.from_client_error(_client_error(code, status), "upload", "k")
    assert error.cause is cause
    # Rows written before the code group as new ones do.
    assert _old_cause(error.error_kind, error.title) == cause.value


# -- the Failed inbox groups by the code ---------------------------------------


@pytest.mark.parametrize("cause", list(ErrorCause))
def test_every_cause_has_a_group(cause: ErrorCause) -> None:
    error = TransferError(ErrorKind.PERMANENT, "t", "m", cause)
    # A failed verification is told in its message; another program's object at
    # the key is a conflict a person resolves like any other.
    expected = {
        ErrorCause.VERIFICATION: FailureCause.OTHER,
        ErrorCause.FOREIGN_OBJECT: FailureCause.CONFLICT,
    }.get(cause) or FailureCause(cause.value)
    assert cause_of(error) is expected


@pytest.mark.parametrize("cause", list(ErrorCause))
def test_renaming_a_title_does_not_regroup(cause: ErrorCause) -> None:
    groups = {
        cause_of(TransferError(ErrorKind.PERMANENT, title, "m", cause))
        for title in ("Access denied", "Storage unreachable", "Key already taken", "Reworded", "")
    }
    assert len(groups) == 1


def test_a_reworded_error_keeps_its_group_end_to_end() -> None:
    raised = StorageError(
        "Denied.", kind=StorageErrorKind.PERMANENT, title="Permission missing", cause=None
    )
    assert cause_of(
        TransferError(raised.error_kind, raised.title, raised.message, raised.cause)
    ) is (FailureCause.SERVER)
    raised = StorageError(
        "Denied.",
        kind=StorageErrorKind.PERMANENT,
        title="Permission missing",
        cause=ErrorCause.CREDENTIALS,
    )
    failure = TransferError(raised.error_kind, raised.title, raised.message, raised.cause)
    assert cause_of(failure) is FailureCause.CREDENTIALS
    assert cause_of(None) is FailureCause.OTHER


def test_an_error_without_a_cause_takes_its_kinds() -> None:
    for kind in ErrorKind:
        expected = (
            ErrorCause.FILE
            if kind in (ErrorKind.INPUT, ErrorKind.SOURCE_CHANGED, ErrorKind.FINAL)
            else ErrorCause.OTHER
        )
        assert TransferError(kind, "t", "m").cause is expected


# -- the journal keeps the code ------------------------------------------------


def _new(state: TransferState, error: TransferError | None = None) -> NewTransfer:
    return dataclasses.replace(new_transfer(state), error=error)


def _uploading(journal: Journal) -> TransferRecord:
    """Born queued (the only way there is), then sending."""
    queued = journal.add(_new(TransferState.QUEUED))
    return journal.move(queued.id, TransferState.UPLOADING)


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    opened = Journal(tmp_path / "journal.sqlite3")
    yield opened
    opened.close()


def test_the_journal_keeps_the_cause_of_a_failure_and_of_each_attempt(journal: Journal) -> None:
    record = _uploading(journal)
    failure = TransferError(ErrorKind.TRANSIENT, "Reworded", "m", ErrorCause.NETWORK)
    now = record.created_at
    moved = journal.move(
        record.id,
        TransferState.FAILED,
        error=failure,
        attempt=NewAttempt(now, now, failure, 10),
    )
    assert moved.error == failure
    assert journal.get(record.id).error == failure
    [attempt] = journal.attempts_of([record.id])[record.id]
    assert attempt.error == failure
    added = journal.add(_new(TransferState.FAILED, failure))
    assert journal.get(added.id).error == failure


def _fail_attempt(journal: Journal, transfer_id: int, title: str, cause: ErrorCause) -> None:
    error = TransferError(ErrorKind.TRANSIENT, title, "m", cause)
    now = journal.get(transfer_id).created_at
    journal.move(
        transfer_id, TransferState.FAILED, error=error, attempt=NewAttempt(now, now, error, 0)
    )
    journal.move(transfer_id, TransferState.UPLOADING)


def test_a_verification_failure_is_recognised_by_its_code_not_its_title(journal: Journal) -> None:
    reworded = _uploading(journal)
    _fail_attempt(journal, reworded.id, "The bucket holds other bytes", ErrorCause.VERIFICATION)
    assert verification_failed_before(journal, reworded.id)

    titled = _uploading(journal)
    _fail_attempt(journal, titled.id, VERIFICATION_FAILED, ErrorCause.SERVER)
    assert not verification_failed_before(journal, titled.id)


# -- old rows get their cause once, in the migration ----------------------------

OLD_ROWS = [
    # kind, title, message, the cause the migration derives
    ("permanent", "Access denied", "m", "credentials"),
    ("transient", "Storage unreachable", "m", "network"),
    ("transient", "Storage problem", "m", "server"),
    ("permanent", "Key already taken", "m", "conflict"),
    ("transient", "Verification failed", "m", "verification"),
    ("permanent", "Verification failed", "m", "verification"),
    ("input", "Access denied", "m", "file"),
    ("source_changed", "File changed while uploading", "m", "file"),
    ("final", "Not a regular file", "m", "file"),
    ("interrupted", "Unexpected error", "m", "other"),
    ("permanent", "A title Ferry never had", "m", "other"),
    (None, None, None, None),  # no error
]


def _journal_at(path: Path, revision: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        command.upgrade(migrate._config(migrate.Schema.JOURNAL, connection), revision)
        connection.commit()
    engine.dispose()


def test_old_rows_get_their_cause_from_their_title_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    _journal_at(path, "j0007")
    with sqlite3.connect(path) as db:
        for number, (kind, title, message, _) in enumerate(OLD_ROWS, start=1):
            db.execute(
                "INSERT INTO transfers (id, source_path, source_size, source_mtime_ns, "
                "source_device, source_inode, profile, bucket, key, content_type, part_size, "
                "part_count, state, paused, attempts, error_kind, error_title, error_message, "
                "created_at, updated_at, on_conflict) VALUES (?, '/x', 1, 2, 3, 4, 'p', 'b', "
                "?, 'text/plain', 5242880, 1, ?, 0, 1, ?, ?, ?, '2024-01-01 00:00:00.000000', "
                "'2024-01-01 00:00:00.000000', 'fail')",
                (number, f"k{number}", "failed" if kind else "done", kind, title, message),
            )
            db.execute(
                "INSERT INTO attempts (transfer_id, number, started_at, ended_at, error_kind, "
                "error_title, error_message, bytes_sent) VALUES (?, 1, "
                "'2024-01-01 00:00:00.000000', '2024-01-01 00:00:00.000000', ?, ?, ?, 0)",
                (number, kind, title, message),
            )
    db.close()

    journal = Journal(path)  # upgrades to the head
    try:
        history = journal.attempts_of(range(1, len(OLD_ROWS) + 1))
        for number, (_, _, _, cause) in enumerate(OLD_ROWS, start=1):
            record = journal.get(number)
            [attempt] = history[number]
            if cause is None:
                assert record.error is None
                assert attempt.error is None
                continue
            assert record.error is not None
            assert attempt.error is not None
            assert record.error.cause.value == cause, OLD_ROWS[number - 1]
            assert attempt.error.cause.value == cause, OLD_ROWS[number - 1]
        # A transfer whose verification failed once before the upgrade stops at the second.
        verified = OLD_ROWS.index(("transient", "Verification failed", "m", "verification")) + 1
        assert verification_failed_before(journal, verified)
    finally:
        journal.close()
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT error_cause FROM transfers ORDER BY id").fetchall()
    db.close()
    assert [row[0] for row in stored] == [row[3] for row in OLD_ROWS]
