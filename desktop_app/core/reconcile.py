"""Bucket vs catalog vs journal: every disagreement, with its evidence and a safe repair.

The check streams the bucket listing and the catalog rows in key byte order
and merge-joins them, holding one key's rows at a time. Servers do not all
list in byte order (SeaweedFS lists a "directory" before keys that sort
between it and its contents, e.g. ``a/B`` before ``a-b``). The listing is
first taken as it comes, its order verified key by key; at the first key out
of byte order the pass is dropped (it has judged nothing it acted on) and the
check starts again with the listing spooled into a temporary SQLite file
ordered by the key's bytes. Either way memory stays flat whatever the
bucket's size. The catalog side is ours and must come
in byte order: a violation fails the check loudly instead of inventing
findings.

In a bucket that keeps versions a second pass lists the versions
(ListObjectVersions) and looks up, a page at a time, the rows that recorded
the older (noncurrent) ones: Ferry's version of a deleted file is "deleted,
still stored" (its repair removes exactly that version, by id), and Ferry's
version of a live file under a newer one nobody registered is another
program's version on top, told and never deleted.

Nothing younger than the grace period is reported or touched (it may be in
flight), nor anything the journal is still uploading. Repairs are planned
first (a dry run shows the plan); carrying them out is a separate call, each
step audited in the catalog and announced in its outbox.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from desktop_app.core.catalog import CatalogService, FileRecord, KeyRepair, UploadIntent
from desktop_app.core.catalog_records import ALIVE_SECONDS, ObjectAtKey
from desktop_app.core.catalog_schema import FileStatus
from desktop_app.core.check_streams import (
    KeySeen,
    OutOfOrder,
    PagesAhead,
    SortedListing,
    StreamedListing,
    in_byte_order,
    merge_by_key,
)
from desktop_app.core.errors import ErrorCause, FerryError, StorageError, StorageErrorKind
from desktop_app.core.journal import Journal
from desktop_app.core.storage import ObjectInfo, ObjectVersion, S3Storage, Versioning

log = logging.getLogger(__name__)


class FindingKind(enum.Enum):
    ORPHAN_OBJECT = "orphan_object"
    MISSING_OBJECT = "missing_object"
    MISMATCH = "mismatch"
    STALE_PENDING = "stale_pending"
    DELETED_STILL_STORED = "deleted_still_stored"
    STALE_MULTIPART = "stale_multipart"
    SOMEONE_ELSES = "someone_elses"  # another user's live file: told, never acted on by you
    # Another program's version written over Ferry's in a bucket that keeps
    # versions: Ferry's is still stored beneath it. Never deleted by Ferry.
    FOREIGN_VERSION_ON_TOP = "foreign_version_on_top"


# Findings that describe, and ask nothing of, the person checking.
INFORMATIONAL = frozenset({FindingKind.SOMEONE_ELSES})


class RepairAction(enum.Enum):
    DELETE_OBJECT = "delete_object"
    ADOPT = "adopt"
    REUPLOAD = "reupload"
    MARK_MISSING = "mark_missing"
    ACTIVATE = "activate"
    REMOVE_ROW = "remove_row"
    ABORT_UPLOAD = "abort_upload"
    DELETE_VERSION = "delete_version"  # one older version of Ferry's, by its id
    NONE = "none"


class RepairOutcome(enum.Enum):
    DONE = "done"
    CHANGED = "changed since the check"  # the re-check saw another state: nothing done
    REFUSED = "refused"  # not this login's to repair, or kept on purpose
    FAILED = "failed"


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
class RowStamp:
    """What a re-check compares: a row of the key as the check saw it."""

    id: int
    status: str
    etag: str | None
    # Touched since the check: its upload is alive, so a repair drops the finding.
    alive_at: str | None = None

    @classmethod
    def of(cls, row: FileRecord) -> RowStamp:
        alive_at = row.alive_at.isoformat() if row.alive_at else None
        return cls(row.id, row.status.value, row.etag, alive_at)


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
    rows_seen: tuple[RowStamp, ...] = ()  # every row of the key the check could see
    # In a bucket that keeps versions: the version of Ferry's the finding is about
    # (for DELETE_VERSION, the one the repair removes, and only that one).
    version_id: str | None = None

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
    others_files: int = 0  # objects under someone else's live row, left to them
    older_versions: int = 0  # noncurrent versions listed, in a bucket that keeps versions
    # Ferry's versions of deleted files kept on purpose: the profile's retention
    # period has not passed (`ferry delete` hid them behind a marker).
    kept_versions: int = 0


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
        return all(f.kind in INFORMATIONAL for f in self.findings)

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
    outcome: RepairOutcome
    message: str

    @property
    def done(self) -> bool:
        return self.outcome is RepairOutcome.DONE


@dataclass
class CheckOptions:
    grace_seconds: int = 24 * 3600
    retention_seconds: int = 0
    only: set[FindingKind] | None = None
    delete_orphans: bool = False  # plan deletion, not adoption, of objects nobody registered
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


def _rows_out_of_order(_before: str, after: str) -> ConsistencyError:
    return ConsistencyError(
        f"The catalog returned {after!r} after a greater key: it does not sort keys "
        'in byte order (a PostgreSQL column without COLLATE "C"?). The check stopped '
        "rather than report false findings; run `ferry catalog upgrade`."
    )


class _OtherServersRows:
    """Leaves out rows registered at another server than the one checked.

    A bucket name is unique per server only: another server's rows would all
    look missing here, and their repair would mark good files lost.
    """

    def __init__(self, endpoint_id: str) -> None:
        self.endpoint_id = endpoint_id
        self.skipped: dict[str, int] = {}

    def drop(self, rows: Iterator[FileRecord]) -> Iterator[FileRecord]:
        for row in rows:
            if row.endpoint is not None and row.endpoint != self.endpoint_id:
                self.skipped[row.endpoint] = self.skipped.get(row.endpoint, 0) + 1
                continue
            yield row

    def notes(self) -> tuple[str, ...]:
        return tuple(
            f"{count} catalog row(s) of files stored at another server ({endpoint}) were not "
            "checked; check them with a profile for that server."
            for endpoint, count in sorted(self.skipped.items())
        )


@dataclass(frozen=True)
class _Cutoffs:
    """What counts as old, each on the clock that wrote the times it is compared with.

    Row times are the catalog's (its database's clock), bucket times the S3
    server's (its ``Date``): this computer's clock, maybe minutes off, judges
    neither.
    """

    rows_before: datetime  # a pending row created after this is within the grace period
    alive_since: datetime  # a pending row touched after this has its upload alive
    retention_before: datetime  # a row deleted before this is past retention
    objects_before: datetime  # an object or upload written after this is within grace

    @classmethod
    def of(cls, catalog_now: datetime, bucket_now: datetime, options: CheckOptions) -> _Cutoffs:
        grace = timedelta(seconds=options.grace_seconds)
        return cls(
            rows_before=catalog_now - grace,
            alive_since=catalog_now - timedelta(seconds=ALIVE_SECONDS),
            retention_before=catalog_now - timedelta(seconds=options.retention_seconds),
            objects_before=bucket_now - grace,
        )


class _Verdict(enum.Enum):
    YOUNG = "young"  # within the grace period, or in flight: not judged
    OTHERS = "others"  # someone else's file: counted, not reported


def _evidence(obj: ObjectInfo | None) -> ObjectEvidence | None:
    return ObjectEvidence(obj.size, obj.etag, obj.last_modified.isoformat()) if obj else None


def _agrees(obj: ObjectInfo | None, row: FileRecord) -> bool:
    """The listed object is the one the row registered (size, and ETag if known)."""
    return obj is not None and obj.size == row.size and row.etag in (None, obj.etag)


def _same_object(found: ObjectInfo | None, seen: ObjectEvidence | None) -> bool:
    if found is None or seen is None:
        return found is None and seen is None
    return found.size == seen.size and found.etag == seen.etag


@dataclass(frozen=True)
class _VersionsSeen:
    listed: int
    young: int
    notes: tuple[str, ...]
    kept: int = 0


class _Kept(enum.Enum):
    KEPT = "kept"  # an older version of a deleted file within the retention period


_VERSIONING_UNKNOWN = (
    "The server would not say whether the bucket keeps versions (no permission "
    "s3:GetBucketVersioning?), so older versions of deleted files were not looked for."
)


def _version_evidence(version: ObjectVersion) -> ObjectEvidence:
    return ObjectEvidence(version.size, version.etag, version.last_modified.isoformat())


def _judge_version(
    row: FileRecord, version: ObjectVersion, cutoffs: _Cutoffs
) -> Finding | _Verdict | _Kept | None:
    """An older version a row recorded: Ferry's bytes of a deleted file still stored?

    Within the retention period it is where `ferry delete` left it on purpose:
    counted, not reported (every delete would otherwise fail the check for
    that long).
    """
    if row.status is not FileStatus.DELETED:
        return None  # a live file's version under a newer one: see _foreign_on_top
    if row.deleted_at is not None and row.deleted_at > cutoffs.rows_before:
        return _Verdict.YOUNG  # its delete may be under way
    if row.deleted_at is not None and row.deleted_at > cutoffs.retention_before:
        return _Kept.KEPT
    return Finding(
        FindingKind.DELETED_STILL_STORED,
        version.key,
        f"Deleted, still stored: the catalog says this file was deleted, but the version "
        f"Ferry wrote ({version.version_id}) is still stored in the bucket's history, "
        "behind a newer version or a delete marker; exactly that version can be deleted "
        "(nothing else at the key is touched).",
        RepairAction.DELETE_VERSION,
        object=_version_evidence(version),
        row=RowEvidence.of(row),
        version_id=version.version_id,
    )


def _foreign_on_top(mismatch: Finding, version: ObjectVersion) -> Finding:
    """A mismatch whose row's version is still stored beneath the current object."""
    current = mismatch.object
    return dataclasses.replace(
        mismatch,
        kind=FindingKind.FOREIGN_VERSION_ON_TOP,
        explanation=(
            "Another program wrote a newer version of this key"
            + (f" ({current.size} bytes, ETag {current.etag})" if current else "")
            + f" over Ferry's; Ferry's version ({version.version_id}) is still stored beneath "
            "it. Ferry never deletes another program's version: remove it with that program "
            "to make Ferry's current again, or delete the file in Ferry to remove Ferry's."
        ),
        repair=RepairAction.NONE,
        source=None,
        version_id=version.version_id,
    )


class ConsistencyChecker:
    """Finds and repairs disagreements between one bucket prefix, its catalog and the journal.

    Promises (invariant 9): a repair re-checks its finding in its own
    transaction on the key (rows read and locked, a fresh HEAD) and drops it
    if anything changed; it never deletes an object a live row points at,
    whoever owns that row, nor one Ferry did not put there unless a person
    chose deletion for that finding; an object nobody registered is adopted
    only under the SHA-256 of its bytes, read back; a normal user's check
    never acts on another user's file.
    """

    def __init__(
        self,
        *,
        storage: S3Storage,
        catalog: CatalogService,
        journal: Journal,
        prefix: str,
        reupload: Callable[[Path, str, int, str, str | None], bool],
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
        try:
            return self._check(options, spool=False)
        except OutOfOrder as disorder:
            log.info(
                "%s does not list in byte order (%s): the check starts again with the "
                "listing sorted on disk",
                self.storage.endpoint_label,
                disorder,
            )
            return self._check(options, spool=True)

    def _check(self, options: CheckOptions, *, spool: bool) -> CheckReport:
        started, clock = self.now(), time.monotonic()
        cutoffs = _Cutoffs.of(self.catalog.database_now(), self.storage.server_now(), options)
        in_flight = self.journal.in_flight_keys(self.storage.bucket)
        admin = self.catalog.is_admin()
        findings: list[Finding] = []
        young = others = rows_seen = 0
        objects = PagesAhead(self.storage.iter_object_pages(self.prefix), name="ferry-listing")
        listing = SortedListing(objects, self.spool_dir) if spool else StreamedListing(objects)
        try:
            elsewhere = _OtherServersRows(self.storage.endpoint_id)
            rows = elsewhere.drop(
                in_byte_order(
                    self.catalog.iter_in_key_order(self.storage.bucket, self.prefix),
                    _rows_out_of_order,
                )
            )
            # An admin sees every row; a user learns of others' keys, and nothing more.
            others_keys: Iterator[str] = (
                iter(())
                if admin
                else self.catalog.iter_others_keys(self.storage.bucket, self.prefix)
            )
            for seen in merge_by_key(iter(listing), rows, others_keys):
                if options.cancel.is_set():
                    raise ConsistencyError("The check was cancelled.", title="Cancelled")
                rows_seen += len(seen.rows)
                if options.progress is not None and rows_seen % 1000 == 0:
                    options.progress(listing.count, rows_seen)
                if seen.key in in_flight:
                    continue
                verdict = self._judge(seen, cutoffs, options)
                if verdict is _Verdict.YOUNG:
                    young += 1
                elif verdict is _Verdict.OTHERS:
                    others += 1
                elif isinstance(verdict, Finding):
                    findings.append(verdict)
            uploads, unlisted = self._stale_uploads(cutoffs.objects_before, admin, findings)
            young += unlisted.young
        finally:
            listing.close()
            objects.close()
        versions = self._older_versions(cutoffs, in_flight, findings)
        young += versions.young
        if options.only is not None:
            findings = [f for f in findings if f.kind in options.only]
        return CheckReport(
            findings=findings,
            scanned=Scanned(
                listing.count, rows_seen, uploads, young, others, versions.listed, versions.kept
            ),
            started_at=started,
            duration_s=time.monotonic() - clock,
            grace_seconds=options.grace_seconds,
            notes=unlisted.notes + versions.notes + elsewhere.notes() + self._clock_notes(),
        )

    def _older_versions(
        self, cutoffs: _Cutoffs, in_flight: set[str], findings: list[Finding]
    ) -> _VersionsSeen:
        """In a bucket that keeps versions: Ferry's older versions, a page at a time.

        Only versions a row recorded are Ferry's (by version id, never by
        content); every other version is left alone, whoever wrote it. A
        mismatch found by the first pass whose row's version is still stored
        beneath a newer one becomes "another program's version on top".
        """
        versioning = self.storage.versioning()
        if versioning is Versioning.UNKNOWN:
            return _VersionsSeen(0, 0, (_VERSIONING_UNKNOWN,))
        if not versioning.keeps_versions:
            return _VersionsSeen(0, 0, ())
        mismatches = {
            (f.key, f.row.id): n
            for n, f in enumerate(findings)
            if f.kind is FindingKind.MISMATCH and f.row is not None
        }
        listed = young = kept = 0
        try:
            for page in self.storage.iter_object_versions(self.prefix):
                older = {(v.key, v.version_id): v for v in page if not v.latest}
                listed += len(older)
                for row in self.catalog.rows_of_versions(self.storage.bucket, list(older)):
                    if row.key in in_flight or row.endpoint not in (None, self.storage.endpoint_id):
                        continue
                    assert row.version_id is not None
                    version = older[(row.key, row.version_id)]
                    mismatch = mismatches.get((row.key, row.id))
                    if mismatch is not None:
                        findings[mismatch] = _foreign_on_top(findings[mismatch], version)
                        continue
                    verdict = _judge_version(row, version, cutoffs)
                    if verdict is _Verdict.YOUNG:
                        young += 1
                    elif verdict is _Kept.KEPT:
                        kept += 1
                    elif isinstance(verdict, Finding):
                        findings.append(verdict)
        except StorageError as exc:
            if not _odd_listing_answer(exc):
                raise
            note = (
                f"This server says the bucket keeps versions but would not list them (it "
                f"answered {exc.code}); older versions of deleted files were not looked for."
            )
            return _VersionsSeen(listed, young, (note,), kept)
        return _VersionsSeen(listed, young, (), kept)

    def _clock_notes(self) -> tuple[str, ...]:
        skew = self.storage.clock.notable_offset()
        if skew is None:
            return ()
        return (f"{skew} Object and upload ages were judged on the server's clock.",)

    def _stale_uploads(
        self, cutoff: datetime, admin: bool, findings: list[Finding]
    ) -> tuple[int, _UploadsSeen]:
        """Unfinished multipart uploads nobody owns; a server that cannot list them says so.

        An upload on a key with a live row is someone's upload in progress
        (another Ferry's journal knows it): left alone.
        """
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
                if self.catalog.key_is_live(self.storage.bucket, upload.key):
                    young += 1
                    continue
                findings.append(
                    Finding(
                        FindingKind.STALE_MULTIPART,
                        upload.key,
                        "An unfinished multipart upload that no transfer owns; it costs storage "
                        "until aborted.",
                        RepairAction.ABORT_UPLOAD if admin else RepairAction.NONE,
                        upload_id=upload.upload_id,
                        initiated=upload.initiated.isoformat(),
                    )
                )
        except StorageError as exc:
            if not _odd_listing_answer(exc):
                raise
            note = (
                f"This server cannot list unfinished multipart uploads (it answered "
                f"{exc.code}); objects and rows were checked, partial uploads could not be."
            )
            return uploads, _UploadsSeen(young, (note,))
        return uploads, _UploadsSeen(young, ())

    def _judge(
        self, seen: KeySeen, cutoffs: _Cutoffs, options: CheckOptions
    ) -> Finding | _Verdict | None:
        key, obj, rows = seen.key, seen.object, seen.rows
        live = next((r for r in rows if r.live), None)
        if live is not None and live.status is FileStatus.ACTIVE and _agrees(obj, live):
            return None  # the common case, decided before any evidence is written down
        stamps = tuple(RowStamp.of(r) for r in rows)
        evidence = _evidence(obj)
        if live is None and seen.others_hold:
            if not rows:
                # Counted where there is an object: a key may be only their history.
                return _Verdict.OTHERS if obj is not None else None
            return Finding(
                FindingKind.SOMEONE_ELSES,
                key,
                "Someone else's file: another user's live row holds this key now. Your own "
                "rows for it are history; only that user or an admin may act on it.",
                RepairAction.NONE,
                object=evidence,
                row=RowEvidence.of(rows[-1]),
                rows_seen=stamps,
            )
        if obj is not None and live is None:
            if obj.last_modified > cutoffs.objects_before:
                return _Verdict.YOUNG
            last = rows[-1] if rows else None
            if last is not None and last.etag == obj.etag and last.size == obj.size:
                retention_over = (
                    last.deleted_at is None or last.deleted_at <= cutoffs.retention_before
                )
                return Finding(
                    FindingKind.DELETED_STILL_STORED,
                    key,
                    "The catalog says this file was deleted, but its object is still stored.",
                    RepairAction.DELETE_OBJECT if retention_over else RepairAction.NONE,
                    object=evidence,
                    row=RowEvidence.of(last),
                    rows_seen=stamps,
                )
            return Finding(
                FindingKind.ORPHAN_OBJECT,
                key,
                "An object no catalog row points at (written by another program, or left "
                "behind); "
                + (
                    "deletion was chosen for it."
                    if options.delete_orphans
                    else "it can be adopted into the catalog once its bytes are read back."
                ),
                RepairAction.DELETE_OBJECT if options.delete_orphans else RepairAction.ADOPT,
                object=evidence,
                row=RowEvidence.of(last) if last is not None else None,
                rows_seen=stamps,
            )
        if live is None:
            return None
        row_evidence = RowEvidence.of(live)
        if live.status is FileStatus.PENDING:
            alive = live.alive_at is not None and live.alive_at > cutoffs.alive_since
            if live.created_at > cutoffs.rows_before or alive:
                return _Verdict.YOUNG
            candidate = obj is not None and obj.size == live.size
            return Finding(
                FindingKind.STALE_PENDING,
                key,
                "An upload intent older than the grace period with no upload alive; "
                + (
                    "its object has the expected size: it is activated if its bytes have the "
                    "intended SHA-256."
                    if candidate
                    else "its object is absent or has another size, so the intent can be "
                    "removed (an object stays, to be adopted)."
                ),
                RepairAction.ACTIVATE if candidate else RepairAction.REMOVE_ROW,
                object=evidence,
                row=row_evidence,
                rows_seen=stamps,
            )
        if live.status is FileStatus.MISSING:
            return None  # already known and marked
        # An active row the object disagrees with (agreeing ones returned at the top).
        if obj is None:
            # Listed before this row was registered? Only a fresh look may say "absent".
            fresh = self.storage.head_object(key)
            if fresh is not None and fresh.size == live.size and fresh.etag == live.etag:
                return None
            obj = fresh
            evidence = _evidence(fresh)
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
                rows_seen=stamps,
            )
        return Finding(
            FindingKind.MISMATCH,
            key,
            f"The object ({obj.size} bytes, ETag {obj.etag}) differs from the catalog row "
            f"({live.size} bytes, ETag {live.etag}).",
            action,
            object=evidence,
            row=row_evidence,
            source=str(source) if source else None,
            rows_seen=stamps,
        )

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

    def repair(
        self, findings: list[Finding], *, adopt_owner: str | None = None
    ) -> list[RepairResult]:
        """Carry out the planned repair of each finding; each one stands alone.

        ``adopt_owner``: an admin adopts orphans for this user (default: the
        login running the repair).
        """
        admin = self.catalog.is_admin()
        if adopt_owner is not None and not admin and adopt_owner != self.catalog.owner:
            raise ConsistencyError(
                "Only a catalog admin (role ferry_admin) may adopt files for another user.",
                title="Not allowed",
                cause=ErrorCause.CREDENTIALS,
            )
        results = []
        for finding in findings:
            try:
                results.append(self._repair_one(finding, admin, adopt_owner))
            except FerryError as exc:
                results.append(RepairResult(finding, RepairOutcome.FAILED, exc.message))
        return results

    def _refusal(self, finding: Finding, admin: bool) -> str | None:
        """Why this login may not carry out this finding's repair, if it may not."""
        if finding.repair is RepairAction.NONE:
            if finding.kind is FindingKind.SOMEONE_ELSES:
                return "Someone else's file: left to its owner or an admin."
            if finding.kind is FindingKind.STALE_MULTIPART:
                return "Only a catalog admin (role ferry_admin) may abort others' uploads."
            if finding.kind is FindingKind.FOREIGN_VERSION_ON_TOP:
                return "Another program's version: Ferry never deletes it."
            return "Kept: the retention period has not passed."
        row = finding.row
        others_row = (
            row is not None
            and row.owner != self.catalog.owner
            and row.status != (FileStatus.DELETED.value)
        )
        # Nobody can say whose an object without a row, or an upload, is.
        foreign = finding.repair is RepairAction.ABORT_UPLOAD or (
            finding.kind is FindingKind.ORPHAN_OBJECT
            and finding.repair is RepairAction.DELETE_OBJECT
        )
        if (others_row or foreign) and not admin:
            return "Only a catalog admin (role ferry_admin) may repair this."
        return None

    def _repair_one(self, finding: Finding, admin: bool, adopt_owner: str | None) -> RepairResult:
        refusal = self._refusal(finding, admin)
        if refusal is not None:
            return RepairResult(finding, RepairOutcome.REFUSED, refusal)
        action = finding.repair
        if action is RepairAction.ABORT_UPLOAD:
            return self._abort_upload(finding)
        if action is RepairAction.REUPLOAD:
            return self._reupload(finding, admin)
        if action is RepairAction.DELETE_VERSION:
            return self._delete_version(finding)
        read: tuple[str, int] | None = None
        if action in (RepairAction.ADOPT, RepairAction.ACTIVATE):
            # Read before the key is locked: a large object takes a while.
            assert finding.object is not None
            try:
                read = self.storage.read_sha256(finding.key, if_match=finding.object.etag)
            except StorageError as exc:
                if exc.kind not in (
                    StorageErrorKind.PRECONDITION_FAILED,
                    StorageErrorKind.NOT_FOUND,
                ):
                    raise
                return _changed(finding)
        with self.catalog.repairing(self.storage.bucket, finding.key) as locked:
            unchanged, head = self._recheck(finding, locked, admin)
            if not unchanged:
                return _changed(finding)
            return self._act(finding, locked, head, read, adopt_owner)

    def _recheck(
        self, finding: Finding, locked: KeyRepair, admin: bool
    ) -> tuple[bool, ObjectInfo | None]:
        """Is the key, inside the repair's transaction, still what the check saw?

        Its rows (id, status, ETag), whose it is, and the object by a fresh
        HEAD (ETag, size); the HEAD's answer comes back for the repair to use.
        """
        if tuple(RowStamp.of(r) for r in locked.rows) != finding.rows_seen:
            return False, None
        if locked.others_live and (not admin or finding.kind is FindingKind.ORPHAN_OBJECT):
            return False, None
        if locked.others_deleted_last and not admin:
            return False, None  # their object, maybe: theirs or an admin's to clean up
        head = self.storage.head_object(finding.key)
        return _same_object(head, finding.object), head

    def _act(
        self,
        finding: Finding,
        locked: KeyRepair,
        head: ObjectInfo | None,
        read: tuple[str, int] | None,
        adopt_owner: str | None,
    ) -> RepairResult:
        """The repair itself, inside the key's transaction, its finding just re-checked."""
        action, key, row = finding.repair, finding.key, finding.row
        done = RepairOutcome.DONE
        if action is RepairAction.DELETE_OBJECT:
            assert finding.object is not None
            if locked.live is not None or locked.others_live:
                return _changed(finding)  # never an object a live row points at
            details: dict[str, Any] = {"etag": finding.object.etag, "size": finding.object.size}
            if head is not None and head.version_id is not None:
                # The version the HEAD just showed, bytes and all: a plain delete
                # would only hide it behind a delete marker.
                self.storage.delete_version(key, head.version_id, etag=finding.object.etag)
                details["version_id"] = head.version_id
            elif head is not None:  # a refusal is looked at: Swift's multipart objects
                self.storage.delete_object(
                    key, if_match=finding.object.etag, size=head.size, sha256=head.sha256
                )
            else:
                self.storage.delete_object(key, if_match=finding.object.etag)
            if finding.kind is FindingKind.ORPHAN_OBJECT:
                locked.record("deleted an object nobody registered, as chosen", details)
                return RepairResult(finding, done, "Deleted the object, as you chose.")
            locked.record("deleted the object left behind", details, row.id if row else None)
            return RepairResult(finding, done, "Deleted the object.")
        if action is RepairAction.ADOPT:
            assert finding.object is not None and read is not None
            sha256, size = read
            hint = head.sha256 if head is not None else None  # metadata: only a hint
            wrong_hint = hint is not None and hint != sha256
            adopted = locked.adopt(
                UploadIntent(
                    self.storage.bucket,
                    key,
                    key.rsplit("/", 1)[-1],
                    size,
                    sha256,
                    endpoint=self.storage.endpoint_id,
                ),
                etag=finding.object.etag,
                owner=adopt_owner,
                details={"read_back": True, "metadata_sha256": hint},
                version_id=head.version_id if head is not None else None,
            )
            note = f" Its metadata claimed SHA-256 {hint}, not its content's." if wrong_hint else ""
            return RepairResult(
                finding, done, f"Adopted for {adopted.owner} with the SHA-256 of its bytes.{note}"
            )
        assert row is not None
        at_key = ObjectAtKey(looked=True, etag=head.etag if head is not None else None)
        if action is RepairAction.ACTIVATE:
            assert finding.object is not None and read is not None
            if read == (row.sha256, row.size):
                version = head.version_id if head is not None else None
                locked.activate(row.id, etag=finding.object.etag, version_id=version)
                return RepairResult(
                    finding, done, "Activated: its bytes have the intended SHA-256."
                )
            # Same size, other bytes: the intent goes, or every check would offer this again.
            locked.release(row.id, reason="its object holds other bytes", at_key=at_key)
            return RepairResult(
                finding,
                done,
                "Removed the stale intent: its object's bytes are not the intended content "
                "(the object stays, to be adopted or deleted).",
            )
        if action is RepairAction.REMOVE_ROW:
            locked.release(row.id, reason="stale upload intent removed by the check", at_key=at_key)
            return RepairResult(finding, done, "Removed the stale intent.")
        if action is RepairAction.MARK_MISSING:
            locked.mark_missing(row.id, reason=f"{finding.kind.value} found by the check")
            return RepairResult(finding, done, "Marked missing.")
        raise AssertionError(action)

    def _delete_version(self, finding: Finding) -> RepairResult:
        """Remove one older version of Ferry's, and nothing else.

        Re-checked in the key's transaction: the row is still deleted and still
        names that version, no live row names it, and a HEAD of the version
        (in :meth:`S3Storage.delete_version`) still shows the ETag the check saw.
        """
        assert finding.version_id is not None and finding.row is not None
        assert finding.object is not None
        version, seen = finding.version_id, finding.row.id
        with self.catalog.repairing(self.storage.bucket, finding.key) as locked:
            row = next((r for r in locked.rows if r.id == seen), None)
            if row is None or row.live or row.version_id != version:
                return _changed(finding)
            if any(r.live and r.version_id == version for r in locked.rows):
                return _changed(finding)
            try:
                removed = self.storage.delete_version(
                    finding.key, version, etag=finding.object.etag, file=row.original_name
                )
            except StorageError as exc:
                if exc.kind is StorageErrorKind.PRECONDITION_FAILED:
                    return _changed(finding)
                raise
            if not removed:
                return _changed(finding)
            details = {"version_id": version, "etag": finding.object.etag}
            locked.record("deleted Ferry's older version of a deleted file", details, row.id)
        return RepairResult(
            finding,
            RepairOutcome.DONE,
            f"Deleted Ferry's version {version}: its bytes are gone; nothing else at the key "
            "was touched.",
        )

    def _abort_upload(self, finding: Finding) -> RepairResult:
        assert finding.upload_id is not None
        with self.catalog.repairing(self.storage.bucket, finding.key) as locked:
            if locked.live is not None or locked.others_live:
                return _changed(finding)  # someone's upload of this key is under way
            self.storage.abort_multipart_upload(finding.key, finding.upload_id)
            locked.record("aborted an abandoned upload", {"upload_id": finding.upload_id})
        return RepairResult(finding, RepairOutcome.DONE, "Aborted the unfinished upload.")

    def _reupload(self, finding: Finding, admin: bool) -> RepairResult:
        assert finding.source is not None and finding.row is not None
        row = finding.row
        with self.catalog.repairing(self.storage.bucket, finding.key) as locked:
            if not self._recheck(finding, locked, admin)[0]:
                return _changed(finding)
            locked.mark_missing(row.id, reason="re-uploading from the local copy")
        # Outside the key's transaction: the upload registers under the same lock.
        # Written over only the object the person saw in the report (a mismatch);
        # for a missing one, only an empty key.
        seen = finding.object.etag if finding.object is not None else None
        ok = self.reupload(Path(finding.source), finding.key, row.id, row.sha256, seen)
        if ok:
            return RepairResult(finding, RepairOutcome.DONE, "Uploaded again from the local copy.")
        return RepairResult(finding, RepairOutcome.FAILED, "Re-upload failed.")


def _odd_listing_answer(error: StorageError) -> bool:
    """An answer to a listing of uploads that says the server does not keep such a
    list (rclone's serve s3 answers NoSuchUpload, others 501 or 405, or a body
    botocore cannot parse), rather than that it could not be reached or refused
    the credentials: a note in the report, not a failed check."""
    if error.cause in (ErrorCause.CREDENTIALS, ErrorCause.NETWORK):
        return False
    odd = (
        StorageErrorKind.NOT_SUPPORTED,
        StorageErrorKind.NO_SUCH_UPLOAD,
        StorageErrorKind.NOT_FOUND,
    )
    return error.kind in odd or error.code == "ResponseParserError"


def _changed(finding: Finding) -> RepairResult:
    return RepairResult(
        finding,
        RepairOutcome.CHANGED,
        "Changed since the check (the object or the key's rows are not what it saw); "
        "nothing was done. Run the check again.",
    )
