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

The parts: what a check reports (:mod:`desktop_app.core.check.findings`),
the streams it joins (:mod:`desktop_app.core.check.streams`), the pure judge
of one key (:mod:`desktop_app.core.check.judge`) and the repairs
(:mod:`desktop_app.core.check.repairs`). This module walks the streams,
does the I/O that confirms a finding (a fresh HEAD, a local copy's hash) on
a few threads beside the walk, and keeps the order of the findings.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from desktop_app.core.catalog.service import CatalogService, FileRecord
from desktop_app.core.check.findings import (
    INFORMATIONAL,
    REPORT_COLUMNS,
    CheckOptions,
    CheckReport,
    ConsistencyError,
    Finding,
    FindingKind,
    ObjectEvidence,
    RepairAction,
    RepairOutcome,
    RepairResult,
    RowEvidence,
    RowStamp,
    Scanned,
    write_report,
)
from desktop_app.core.check.judge import (
    Cutoffs,
    Disagreement,
    Judged,
    Verdict,
    classify,
    confirm,
    foreign_on_top,
    judge_version,
    stale_multipart,
    still_registered,
)
from desktop_app.core.check.repairs import CheckRepairs
from desktop_app.core.check.streams import (
    OutOfOrder,
    PagesAhead,
    SortedListing,
    StreamedListing,
    in_byte_order,
    merge_by_key,
)
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.bucket_objects import ObjectInfo, ObjectVersion
from desktop_app.core.model.errors import ErrorCause, StorageError, StorageErrorKind
from desktop_app.core.storage.listing import iter_multipart_uploads, iter_object_pages
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.versions import Versioning, iter_object_versions, versioning

__all__ = [
    "INFORMATIONAL",
    "REPORT_COLUMNS",
    "CheckOptions",
    "CheckReport",
    "ConsistencyChecker",
    "ConsistencyError",
    "Finding",
    "FindingKind",
    "ObjectEvidence",
    "RepairAction",
    "RepairOutcome",
    "RepairResult",
    "RowEvidence",
    "RowStamp",
    "Scanned",
    "write_report",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Threads that confirm findings beside the walk (fresh HEADs, local copies'
# hashes): at most this many, and never more than the S3 client's connections.
CONFIRMING_THREADS = 16


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
class _UploadsSeen:
    young: int
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _VersionsSeen:
    listed: int
    young: int
    notes: tuple[str, ...]
    kept: int = 0


_VERSIONING_UNKNOWN = (
    "The server would not say whether the bucket keeps versions (no permission "
    "s3:GetBucketVersioning?), so older versions of deleted files were not looked for."
)


@dataclass(frozen=True)
class _Unconfirmed:
    """A disagreement met by the walk, its fresh HEAD (if it needs one) under way."""

    disagreement: Disagreement
    fresh: Future[ObjectInfo | None] | None


class _Confirmations:
    """Disagreements confirmed on a few threads, beside the walk and after it.

    During the walk a disagreement without a listed object gets its fresh
    HEAD on the pool. :meth:`resolve` then, on the walking thread and in the
    walk's order, drops each one its HEAD cleared (the registered object is
    there after all), asks the journal for the others' local copies (the
    journal is read on this thread only: a read-only one may live in its
    memory alone), has the copies hashed on the pool, and writes each finding
    in its place. An error of a HEAD or a read is raised there.
    """

    def __init__(
        self,
        head: Callable[[str], ObjectInfo | None],
        local_copy: Callable[[str], Path | None],
        unchanged: Callable[[Path, FileRecord], Path | None],
        threads: int,
    ) -> None:
        self._head = head
        self._local_copy = local_copy
        self._unchanged = unchanged
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None  # started by the first disagreement

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="ferry-confirm")
        return self._pool.submit(fn, *args)

    def submit(self, disagreement: Disagreement) -> _Unconfirmed:
        needs_head = disagreement.needs_head
        fresh = self._submit(self._head, disagreement.key) if needs_head else None
        return _Unconfirmed(disagreement, fresh)

    def resolve(self, walked: Iterable[Finding | _Unconfirmed]) -> list[Finding]:
        staged: list[Finding | tuple[Disagreement, ObjectInfo | None, Future[Path | None]]] = []
        for item in walked:
            if isinstance(item, Finding):
                staged.append(item)
                continue
            disagreement, obj = item.disagreement, item.disagreement.object
            if item.fresh is not None:
                obj = item.fresh.result()
                if still_registered(obj, disagreement.row):
                    continue
            copy = self._local_copy(disagreement.key)
            source = self._submit(self._unchanged, copy, disagreement.row) if copy else _NO_COPY
            staged.append((disagreement, obj, source))
        return [
            item if isinstance(item, Finding) else confirm(item[0], item[1], item[2].result())
            for item in staged
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


_NO_COPY: Future[Path | None] = Future()
_NO_COPY.set_result(None)


@dataclass
class _Walked:
    """What the walk over the merged streams found, findings in key order."""

    findings: list[Finding | _Unconfirmed] = field(default_factory=list)
    young: int = 0
    others: int = 0
    rows: int = 0

    def add(self, judged: Judged, confirmations: _Confirmations) -> None:
        if isinstance(judged, Finding):
            self.findings.append(judged)
        elif isinstance(judged, Disagreement):
            self.findings.append(confirmations.submit(judged))
        elif judged is Verdict.YOUNG:
            self.young += 1
        elif judged is Verdict.OTHERS:
            self.others += 1


@dataclass(frozen=True)
class _FirstPass:
    findings: list[Finding]
    walked: _Walked
    uploads: int
    unlisted: _UploadsSeen
    elsewhere: tuple[str, ...]  # notes on rows of other servers, left out


class ConsistencyChecker:
    """Finds and repairs disagreements between one bucket prefix, its catalog and the journal.

    Promises (invariant 9): a repair re-checks its finding in its own
    transaction on the key (rows read and locked, a fresh HEAD) and drops it
    if anything changed; it never deletes an object a live row points at,
    whoever owns that row, nor one Ferry did not put there unless a person
    chose deletion for that finding; an object nobody registered is adopted
    only under the SHA-256 of its bytes, read back; a normal user's check
    never acts on another user's file (:class:`CheckRepairs`).
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
        # Its first pages come while the catalog and the journal are asked.
        objects = PagesAhead(iter_object_pages(self.storage, self.prefix), name="ferry-listing")
        try:
            cutoffs = Cutoffs.of(self.catalog.database_now(), self.storage.server_now(), options)
            in_flight = self.journal.in_flight_keys(self.storage.bucket)
            admin = self.catalog.is_admin()
            listing = SortedListing(objects, self.spool_dir) if spool else StreamedListing(objects)
            try:
                first = self._first_pass(listing, cutoffs, in_flight, admin, options)
            finally:
                listing.close()
        finally:
            objects.close()
        findings = first.findings
        versions = self._older_versions(cutoffs, in_flight, findings)
        if options.only is not None:
            findings = [f for f in findings if f.kind in options.only]
        walked = first.walked
        return CheckReport(
            findings=findings,
            scanned=Scanned(
                listing.count,
                walked.rows,
                first.uploads,
                walked.young + first.unlisted.young + versions.young,
                walked.others,
                versions.listed,
                versions.kept,
            ),
            started_at=started,
            duration_s=time.monotonic() - clock,
            grace_seconds=options.grace_seconds,
            notes=first.unlisted.notes + versions.notes + first.elsewhere + self._clock_notes(),
        )

    def _first_pass(
        self,
        listing: StreamedListing | SortedListing,
        cutoffs: Cutoffs,
        in_flight: set[str],
        admin: bool,
        options: CheckOptions,
    ) -> _FirstPass:
        """The listing joined with the rows, then the unfinished uploads; the findings
        in that order, each disagreement's confirmed in its place."""
        confirmations = _Confirmations(
            self.storage.head_object, self._last_source, _unchanged, self._confirming_threads()
        )
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
            walked = self._walk(
                listing, rows, others_keys, in_flight, cutoffs, options, confirmations
            )
            # Listed while the last disagreements are being confirmed.
            uploads_found: list[Finding] = []
            uploads, unlisted = self._stale_uploads(cutoffs.objects_before, admin, uploads_found)
            findings = confirmations.resolve(walked.findings) + uploads_found
        finally:
            confirmations.close()
        return _FirstPass(findings, walked, uploads, unlisted, elsewhere.notes())

    def _walk(
        self,
        listing: StreamedListing | SortedListing,
        rows: Iterator[FileRecord],
        others_keys: Iterator[str],
        in_flight: set[str],
        cutoffs: Cutoffs,
        options: CheckOptions,
        confirmations: _Confirmations,
    ) -> _Walked:
        """Each key of the merged streams judged (:func:`classify`); what needs I/O to
        confirm it goes to ``confirmations`` and keeps its place."""
        walked = _Walked()
        cancel, progress, delete_orphans = options.cancel, options.progress, options.delete_orphans
        rows_seen = 0
        for seen in merge_by_key(iter(listing), rows, others_keys):
            if cancel.is_set():
                raise ConsistencyError("The check was cancelled.", title="Cancelled")
            rows_seen += len(seen.rows)
            if progress is not None and rows_seen % 1000 == 0:
                progress(listing.count, rows_seen)
            if seen.key in in_flight:
                continue
            judged = classify(seen, cutoffs, delete_orphans=delete_orphans)
            if judged is not None:
                walked.add(judged, confirmations)
        walked.rows = rows_seen
        return walked

    def _confirming_threads(self) -> int:
        connections = getattr(self.storage.client.meta.config, "max_pool_connections", None)
        return max(1, min(CONFIRMING_THREADS, connections or CONFIRMING_THREADS))

    def _last_source(self, key: str) -> Path | None:
        """Where the key's last finished upload read its file, if the journal knows."""
        transfer = self.journal.latest_done_for_key(self.storage.bucket, key)
        return Path(transfer.source_path) if transfer is not None else None

    def _older_versions(
        self, cutoffs: Cutoffs, in_flight: set[str], findings: list[Finding]
    ) -> _VersionsSeen:
        """In a bucket that keeps versions: Ferry's older versions, a page at a time.

        Only versions a row recorded are Ferry's (by version id, never by
        content); every other version is left alone, whoever wrote it. A
        mismatch found by the first pass whose row's version is still stored
        beneath a newer one becomes "another program's version on top".
        """
        bucket = versioning(self.storage)
        if bucket is Versioning.UNKNOWN:
            return _VersionsSeen(0, 0, (_VERSIONING_UNKNOWN,))
        if not bucket.keeps_versions:
            return _VersionsSeen(0, 0, ())
        mismatches = {
            (f.key, f.row.id): n
            for n, f in enumerate(findings)
            if f.kind is FindingKind.MISMATCH and f.row is not None
        }
        listed = young = kept = 0
        try:
            for page in iter_object_versions(self.storage, self.prefix):
                older = {(v.key, v.version_id): v for v in page if not v.latest}
                listed += len(older)
                for judged in self._older_page(older, in_flight, cutoffs, mismatches, findings):
                    young += judged is Verdict.YOUNG
                    kept += judged is Verdict.KEPT
        except StorageError as exc:
            if not _odd_listing_answer(exc):
                raise
            note = (
                f"This server says the bucket keeps versions but would not list them (it "
                f"answered {exc.code}); older versions of deleted files were not looked for."
            )
            return _VersionsSeen(listed, young, (note,), kept)
        return _VersionsSeen(listed, young, (), kept)

    def _older_page(
        self,
        older: dict[tuple[str, str], ObjectVersion],
        in_flight: set[str],
        cutoffs: Cutoffs,
        mismatches: dict[tuple[str, int], int],
        findings: list[Finding],
    ) -> Iterator[Verdict]:
        """One page of older versions judged against the rows that recorded them:
        findings added (or a mismatch turned "another program's version on top")
        in ``findings``, the verdicts yielded to be counted."""
        for row in self.catalog.rows_of_versions(self.storage.bucket, list(older)):
            if row.key in in_flight or row.endpoint not in (None, self.storage.endpoint_id):
                continue
            assert row.version_id is not None
            version = older[(row.key, row.version_id)]
            mismatch = mismatches.get((row.key, row.id))
            if mismatch is not None:
                findings[mismatch] = foreign_on_top(findings[mismatch], version)
                continue
            judged = judge_version(row, version, cutoffs)
            if isinstance(judged, Finding):
                findings.append(judged)
            elif judged is not None:
                yield judged

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
            for upload in iter_multipart_uploads(self.storage, self.prefix):
                uploads += 1
                if upload.upload_id in owned:
                    continue
                if upload.initiated > cutoff or self.catalog.key_is_live(
                    self.storage.bucket, upload.key
                ):
                    young += 1
                    continue
                findings.append(stale_multipart(upload, admin))
        except StorageError as exc:
            if not _odd_listing_answer(exc):
                raise
            note = (
                f"This server cannot list unfinished multipart uploads (it answered "
                f"{exc.code}); objects and rows were checked, partial uploads could not be."
            )
            return uploads, _UploadsSeen(young, (note,))
        return uploads, _UploadsSeen(young, ())

    # -- repairs --------------------------------------------------------------------

    def repair(
        self, findings: list[Finding], *, adopt_owner: str | None = None
    ) -> list[RepairResult]:
        """Carry out the planned repair of each finding; each one stands alone.

        ``adopt_owner``: an admin adopts orphans for this user (default: the
        login running the repair).
        """
        repairs = CheckRepairs(storage=self.storage, catalog=self.catalog, reupload=self.reupload)
        return repairs.repair(findings, adopt_owner=adopt_owner)


def _unchanged(path: Path, row: FileRecord) -> Path | None:
    """The local file, if its bytes still have the row's SHA-256."""
    try:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(8 * 1024 * 1024):
                digest.update(chunk)
    except OSError:
        return None
    return path if digest.hexdigest() == row.sha256 else None


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
