"""Bucket vs catalog vs journal: every disagreement, with its evidence and a safe repair.

The check streams the bucket listing and the catalog rows in key byte order
and merge-joins them, holding one key's rows at a time. Servers do not all
list in byte order (SeaweedFS lists a "directory" before keys that sort
between it and its contents, e.g. ``a/B`` before ``a-b``), so the listing is
first spooled into a temporary SQLite file ordered by the key's bytes; memory
stays flat whatever the bucket's size. The catalog side is ours and must come
in byte order: a violation fails the check loudly instead of inventing
findings.

Nothing younger than the grace period is reported or touched (it may be in
flight), nor anything the journal is still uploading. Repairs are planned
first (a dry run shows the plan); carrying them out is a separate call, each
step audited in the catalog and announced in its outbox.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

from desktop_app.core.catalog import CatalogService, FileRecord, UploadIntent
from desktop_app.core.catalog_schema import FileStatus
from desktop_app.core.errors import FerryError, StorageError, StorageErrorKind
from desktop_app.core.journal import Journal
from desktop_app.core.storage import ObjectInfo, S3Storage

log = logging.getLogger(__name__)


class FindingKind(enum.Enum):
    ORPHAN_OBJECT = "orphan_object"
    MISSING_OBJECT = "missing_object"
    MISMATCH = "mismatch"
    STALE_PENDING = "stale_pending"
    DELETED_STILL_STORED = "deleted_still_stored"
    STALE_MULTIPART = "stale_multipart"


class RepairAction(enum.Enum):
    DELETE_OBJECT = "delete_object"
    ADOPT = "adopt"
    REUPLOAD = "reupload"
    MARK_MISSING = "mark_missing"
    ACTIVATE = "activate"
    REMOVE_ROW = "remove_row"
    ABORT_UPLOAD = "abort_upload"
    NONE = "none"


class ConsistencyError(FerryError):
    title = "Consistency check failed"


@dataclass(frozen=True)
class ObjectEvidence:
    size: int
    etag: str
    last_modified: str
    sha256: str | None = None


@dataclass(frozen=True)
class RowEvidence:
    id: int
    status: str
    owner: str
    size: int
    sha256: str
    etag: str | None
    created_at: str
    deleted_at: str | None

    @classmethod
    def of(cls, row: FileRecord) -> RowEvidence:
        return cls(
            row.id,
            row.status.value,
            row.owner,
            row.size,
            row.sha256,
            row.etag,
            row.created_at.isoformat(),
            row.deleted_at.isoformat() if row.deleted_at else None,
        )


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    key: str
    explanation: str
    repair: RepairAction
    object: ObjectEvidence | None = None
    row: RowEvidence | None = None
    upload_id: str | None = None
    initiated: str | None = None
    source: str | None = None  # the local copy a re-upload would use

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["repair"] = self.repair.value
        return data


@dataclass(frozen=True)
class Scanned:
    objects: int
    rows: int
    multipart_uploads: int
    within_grace: int


@dataclass(frozen=True)
class _UploadsSeen:
    young: int
    notes: tuple[str, ...]


@dataclass(frozen=True)
class CheckReport:
    findings: list[Finding]
    scanned: Scanned
    started_at: datetime
    duration_s: float
    grace_seconds: int
    notes: tuple[str, ...] = ()  # what could not be checked on this server, said plainly

    @property
    def counts(self) -> dict[str, int]:
        counts = {kind.value: 0 for kind in FindingKind}
        for finding in self.findings:
            counts[finding.kind.value] += 1
        return counts

    @property
    def consistent(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "findings": [f.to_json() for f in self.findings],
            "scanned": asdict(self.scanned),
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "grace_seconds": self.grace_seconds,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class RepairResult:
    finding: Finding
    done: bool
    message: str


@dataclass
class CheckOptions:
    grace_seconds: int = 24 * 3600
    retention_seconds: int = 0
    only: set[FindingKind] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[int, int], None] | None = None  # objects, rows scanned so far


REPORT_COLUMNS = ("kind", "key", "repair", "explanation", "object_size", "row_size", "row_status")


def write_report(report: CheckReport, path: Path) -> None:
    """Save a report as JSON (.json) or CSV (anything else)."""
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        for finding in report.findings:
            writer.writerow(
                [
                    finding.kind.value,
                    finding.key,
                    finding.repair.value,
                    finding.explanation,
                    finding.object.size if finding.object else "",
                    finding.row.size if finding.row else "",
                    finding.row.status if finding.row else "",
                ]
            )


class _SortedListing:
    """The bucket listing spooled to disk and read back in key byte order."""

    def __init__(self, objects: Iterator[ObjectInfo], directory: Path | None) -> None:
        handle, name = tempfile.mkstemp(prefix="ferry-listing-", suffix=".sqlite3", dir=directory)
        os.close(handle)
        self.path = Path(name)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-8192")  # at most 8 MiB of cache
        self.db.execute(
            "CREATE TABLE objects (key BLOB PRIMARY KEY, size INTEGER, etag TEXT, modified TEXT)"
            " WITHOUT ROWID"
        )
        self.count = 0
        batch: list[tuple[bytes, int, str, str]] = []
        for item in objects:
            batch.append(
                (item.key.encode("utf-8"), item.size, item.etag, item.last_modified.isoformat())
            )
            if len(batch) >= 1000:
                self._flush(batch)
        self._flush(batch)

    def _flush(self, batch: list[tuple[bytes, int, str, str]]) -> None:
        if batch:
            self.db.executemany("INSERT INTO objects VALUES (?, ?, ?, ?)", batch)
            self.count += len(batch)
            batch.clear()

    def __iter__(self) -> Iterator[ObjectInfo]:
        cursor = self.db.execute("SELECT key, size, etag, modified FROM objects ORDER BY key")
        for key, size, etag, modified in cursor:
            yield ObjectInfo(key.decode("utf-8"), size, etag, datetime.fromisoformat(modified))

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)


def _checked_order(rows: Iterator[FileRecord]) -> Iterator[FileRecord]:
    previous: bytes | None = None
    for row in rows:
        current = row.key.encode("utf-8")
        if previous is not None and current < previous:
            raise ConsistencyError(
                f"The catalog returned {row.key!r} after a greater key: it does not sort keys "
                'in byte order (a PostgreSQL column without COLLATE "C"?). The check stopped '
                "rather than report false findings; run `ferry catalog upgrade`."
            )
        previous = current
        yield row


def _merge(
    objects: Iterator[ObjectInfo], rows: Iterator[FileRecord]
) -> Iterator[tuple[str, ObjectInfo | None, list[FileRecord]]]:
    """(key, object or None, rows for that key) in key byte order."""
    grouped = groupby(rows, key=lambda r: r.key)
    obj = next(objects, None)
    group = next(grouped, None)
    while obj is not None or group is not None:
        obj_key = obj.key.encode("utf-8") if obj is not None else None
        row_key = group[0].encode("utf-8") if group is not None else None
        if row_key is None or (obj_key is not None and obj_key < row_key):
            assert obj is not None
            yield obj.key, obj, []
            obj = next(objects, None)
        elif obj_key is None or row_key < obj_key:
            assert group is not None
            yield group[0], None, list(group[1])
            group = next(grouped, None)
        else:
            assert obj is not None and group is not None
            yield obj.key, obj, list(group[1])
            obj = next(objects, None)
            group = next(grouped, None)


class ConsistencyChecker:
    """Finds and repairs disagreements between one bucket prefix, its catalog and the journal."""

    def __init__(
        self,
        *,
        storage: S3Storage,
        catalog: CatalogService,
        journal: Journal,
        prefix: str,
        reupload: Callable[[Path, str, int, str], bool],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        spool_dir: Path | None = None,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.journal = journal
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.reupload = reupload
        self.now = now
        self.spool_dir = spool_dir

    # -- the check --------------------------------------------------------------

    def check(self, options: CheckOptions) -> CheckReport:
        started, clock = self.now(), time.monotonic()
        cutoff = started - timedelta(seconds=options.grace_seconds)
        in_flight = self.journal.in_flight_keys(self.storage.bucket)
        findings: list[Finding] = []
        young = 0
        rows_seen = 0
        listing = _SortedListing(self.storage.iter_objects(self.prefix), self.spool_dir)
        try:
            rows = _checked_order(self.catalog.iter_in_key_order(self.storage.bucket, self.prefix))
            for key, obj, key_rows in _merge(iter(listing), rows):
                if options.cancel.is_set():
                    raise ConsistencyError("The check was cancelled.", title="Cancelled")
                rows_seen += len(key_rows)
                if options.progress is not None and rows_seen % 1000 == 0:
                    options.progress(listing.count, rows_seen)
                if key in in_flight:
                    continue
                finding, is_young = self._judge(key, obj, key_rows, cutoff, options)
                young += is_young
                if finding is not None:
                    findings.append(finding)
            uploads, unlisted = self._stale_uploads(cutoff, findings)
            young += unlisted.young
        finally:
            listing.close()
        if options.only is not None:
            findings = [f for f in findings if f.kind in options.only]
        return CheckReport(
            findings=findings,
            scanned=Scanned(listing.count, rows_seen, uploads, young),
            started_at=started,
            duration_s=time.monotonic() - clock,
            grace_seconds=options.grace_seconds,
            notes=unlisted.notes,
        )

    def _stale_uploads(self, cutoff: datetime, findings: list[Finding]) -> tuple[int, _UploadsSeen]:
        """Unfinished multipart uploads nobody owns; a server that cannot list them says so."""
        uploads = young = 0
        owned = self.journal.upload_ids()
        try:
            for upload in self.storage.iter_multipart_uploads(self.prefix):
                uploads += 1
                if upload.upload_id in owned:
                    continue
                if upload.initiated > cutoff:
                    young += 1
                    continue
                findings.append(
                    Finding(
                        FindingKind.STALE_MULTIPART,
                        upload.key,
                        "An unfinished multipart upload that no transfer owns; it costs storage "
                        "until aborted.",
                        RepairAction.ABORT_UPLOAD,
                        upload_id=upload.upload_id,
                        initiated=upload.initiated.isoformat(),
                    )
                )
        except StorageError as exc:
            if exc.kind is not StorageErrorKind.NOT_SUPPORTED:
                raise
            note = (
                f"This server cannot list unfinished multipart uploads ({exc.code}); objects "
                "and rows were checked, partial uploads could not be."
            )
            return uploads, _UploadsSeen(young, (note,))
        return uploads, _UploadsSeen(young, ())

    def _judge(
        self,
        key: str,
        obj: ObjectInfo | None,
        rows: list[FileRecord],
        cutoff: datetime,
        options: CheckOptions,
    ) -> tuple[Finding | None, bool]:
        live = next((r for r in rows if r.status is not FileStatus.DELETED), None)
        evidence = (
            ObjectEvidence(obj.size, obj.etag, obj.last_modified.isoformat()) if obj else None
        )
        if obj is not None and live is None:
            if obj.last_modified > cutoff:
                return None, True
            deleted = [r for r in rows if r.status is FileStatus.DELETED]
            if deleted:
                last = deleted[-1]
                retention_over = (
                    last.deleted_at is None
                    or last.deleted_at <= self.now() - timedelta(seconds=options.retention_seconds)
                )
                return Finding(
                    FindingKind.DELETED_STILL_STORED,
                    key,
                    "The catalog says this file was deleted, but its object is still stored.",
                    RepairAction.DELETE_OBJECT if retention_over else RepairAction.NONE,
                    object=evidence,
                    row=RowEvidence.of(last),
                ), False
            head = self.storage.head_object(key)
            sha = head.sha256 if head else None
            proven = head is not None and sha is not None and len(sha) == 64
            return Finding(
                FindingKind.ORPHAN_OBJECT,
                key,
                "An object no catalog row points at"
                + ("; its metadata proves its content, so it can be adopted." if proven else "."),
                RepairAction.ADOPT if proven else RepairAction.DELETE_OBJECT,
                object=ObjectEvidence(obj.size, obj.etag, obj.last_modified.isoformat(), sha),
            ), False
        if live is None:
            return None, False
        row_evidence = RowEvidence.of(live)
        if live.created_at > cutoff and live.status is FileStatus.PENDING:
            return None, True
        if live.status is FileStatus.PENDING:
            verifies = obj is not None and self._verifies(key, live)
            return Finding(
                FindingKind.STALE_PENDING,
                key,
                "An upload intent older than the grace period with no transfer in flight; "
                + (
                    "its object verifies, so it can be activated."
                    if verifies
                    else "its object is absent or does not verify, so the intent can be removed."
                ),
                RepairAction.ACTIVATE if verifies else RepairAction.REMOVE_ROW,
                object=evidence,
                row=row_evidence,
            ), False
        if live.status is FileStatus.MISSING:
            return None, False  # already known and marked
        if obj is not None and not (
            obj.size != live.size or (live.etag is not None and obj.etag != live.etag)
        ):
            return None, False  # they agree: the common case, decided without I/O
        source = self._unchanged_source(key, live)
        action = RepairAction.REUPLOAD if source else RepairAction.MARK_MISSING
        if obj is None:
            return Finding(
                FindingKind.MISSING_OBJECT,
                key,
                "The catalog lists this file as stored, but the bucket has no such object; "
                + (
                    "an unchanged local copy can be uploaded again."
                    if source
                    else "no unchanged local copy is known, so the row can be marked missing."
                ),
                action,
                row=row_evidence,
                source=str(source) if source else None,
            ), False
        return Finding(
            FindingKind.MISMATCH,
            key,
            f"The object ({obj.size} bytes, ETag {obj.etag}) differs from the catalog row "
            f"({live.size} bytes, ETag {live.etag}).",
            action,
            object=evidence,
            row=row_evidence,
            source=str(source) if source else None,
        ), False

    def _verifies(self, key: str, row: FileRecord) -> bool:
        head = self.storage.head_object(key)
        return head is not None and head.size == row.size and head.sha256 == row.sha256

    def _unchanged_source(self, key: str, row: FileRecord) -> Path | None:
        transfer = self.journal.latest_done_for_key(self.storage.bucket, key)
        if transfer is None:
            return None
        path = Path(transfer.source_path)
        try:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(8 * 1024 * 1024):
                    digest.update(chunk)
        except OSError:
            return None
        return path if digest.hexdigest() == row.sha256 else None

    # -- repairs --------------------------------------------------------------------

    def repair(self, findings: list[Finding]) -> list[RepairResult]:
        """Carry out the planned repair of each finding; each one stands alone."""
        admin = self.catalog.is_admin()
        results = []
        for finding in findings:
            try:
                results.append(self._repair_one(finding, admin))
            except FerryError as exc:
                results.append(RepairResult(finding, False, exc.message))
        return results

    def _repair_one(self, finding: Finding, admin: bool) -> RepairResult:
        action, key = finding.repair, finding.key
        row = finding.row
        # Without rows, nobody can say whose an orphan or a stale upload is.
        needs_admin = (row is not None and row.owner != self.catalog.owner) or finding.kind in (
            FindingKind.ORPHAN_OBJECT,
            FindingKind.STALE_MULTIPART,
        )
        if needs_admin and not admin and action is not RepairAction.NONE:
            return RepairResult(
                finding, False, "Only a catalog admin (role ferry_admin) may repair this."
            )
        if action is RepairAction.NONE:
            return RepairResult(finding, False, "Kept: the retention period has not passed.")
        if action is RepairAction.ABORT_UPLOAD:
            assert finding.upload_id is not None
            self.storage.abort_multipart_upload(key, finding.upload_id)
            return RepairResult(finding, True, "Aborted the unfinished upload.")
        if action is RepairAction.DELETE_OBJECT:
            self.storage.delete_object(key)
            if row is not None:
                self.catalog.record_repair(row.id, "deleted the object left behind")
            return RepairResult(finding, True, "Deleted the object.")
        if action is RepairAction.ADOPT:
            assert finding.object is not None and finding.object.sha256 is not None
            self.catalog.adopt(
                UploadIntent(
                    self.storage.bucket,
                    key,
                    key.rsplit("/", 1)[-1],
                    finding.object.size,
                    finding.object.sha256,
                ),
                etag=finding.object.etag,
            )
            return RepairResult(finding, True, "Adopted into the catalog.")
        assert row is not None
        if action is RepairAction.ACTIVATE:
            head = self.storage.head_object(key)
            if head is None or head.sha256 != row.sha256 or head.size != row.size:
                return RepairResult(finding, False, "The object no longer verifies; not activated.")
            self.catalog.repair_activate(row.id, etag=head.etag)
            return RepairResult(finding, True, "Activated: the object verified.")
        if action is RepairAction.REMOVE_ROW:
            if finding.object is not None:
                self.storage.delete_object(key)  # unverified bytes of an unfinished upload
            self.catalog.release(
                row.id, reason="stale upload intent removed by the check", token=None
            )
            return RepairResult(finding, True, "Removed the stale intent.")
        if action is RepairAction.MARK_MISSING:
            self.catalog.mark_missing(row.id, reason=f"{finding.kind.value} found by the check")
            return RepairResult(finding, True, "Marked missing.")
        if action is RepairAction.REUPLOAD:
            assert finding.source is not None
            self.catalog.mark_missing(row.id, reason="re-uploading from the local copy")
            ok = self.reupload(Path(finding.source), key, row.id, row.sha256)
            return RepairResult(
                finding, ok, "Uploaded again from the local copy." if ok else "Re-upload failed."
            )
        raise AssertionError(action)
