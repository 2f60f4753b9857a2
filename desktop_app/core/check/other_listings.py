"""The check's passes over the bucket's other listings: older versions, unfinished uploads.

Beside the objects' walk the check reads two more listings of the prefix.
In a bucket that keeps versions, :meth:`OtherListings.older_versions` lists
the versions (ListObjectVersions) and looks up, a page at a time, the rows
that recorded the older (noncurrent) ones: Ferry's version of a deleted file
is "deleted, still stored" (its repair removes exactly that version, by id),
and Ferry's version of a live file under a newer one nobody registered is
another program's version on top, told and never deleted.
:meth:`OtherListings.stale_uploads` lists the unfinished multipart uploads
and reports those nobody owns.

Promises: only versions a row recorded are Ferry's (by version id, never by
content), every other version is left alone; an upload the journal knows,
or on a key with a live row, is someone's upload in progress and left
alone; a server that cannot give such a listing (or would not say whether
it keeps versions) gives a note in the report, not a failed check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.check.findings import Finding, FindingKind
from desktop_app.core.check.judge import (
    Cutoffs,
    Verdict,
    foreign_on_top,
    judge_version,
    stale_multipart,
)
from desktop_app.core.model.bucket_objects import ObjectVersion
from desktop_app.core.model.errors import ErrorCause, StorageError, StorageErrorKind
from desktop_app.core.storage.listing import iter_multipart_uploads
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.versions import Versioning, iter_object_versions, versioning


@dataclass(frozen=True)
class UploadsSeen:
    young: int
    notes: tuple[str, ...]


@dataclass(frozen=True)
class VersionsSeen:
    listed: int
    young: int
    notes: tuple[str, ...]
    kept: int = 0


_VERSIONING_UNKNOWN = (
    "The server would not say whether the bucket keeps versions (no permission "
    "s3:GetBucketVersioning?), so older versions of deleted files were not looked for."
)


class OtherListings:
    """The versions and the unfinished uploads under one prefix, judged against the catalog."""

    def __init__(self, storage: S3Storage, catalog: CatalogService, prefix: str) -> None:
        self.storage = storage
        self.catalog = catalog
        self.prefix = prefix

    def older_versions(
        self, cutoffs: Cutoffs, in_flight: set[str], findings: list[Finding]
    ) -> VersionsSeen:
        """In a bucket that keeps versions: Ferry's older versions, a page at a time.

        Only versions a row recorded are Ferry's (by version id, never by
        content); every other version is left alone, whoever wrote it. A
        mismatch found by the first pass whose row's version is still stored
        beneath a newer one becomes "another program's version on top".
        """
        bucket = versioning(self.storage)
        if bucket is Versioning.UNKNOWN:
            return VersionsSeen(0, 0, (_VERSIONING_UNKNOWN,))
        if not bucket.keeps_versions:
            return VersionsSeen(0, 0, ())
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
            return VersionsSeen(listed, young, (note,), kept)
        return VersionsSeen(listed, young, (), kept)

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

    def stale_uploads(
        self, cutoff: datetime, admin: bool, owned: set[str], findings: list[Finding]
    ) -> tuple[int, UploadsSeen]:
        """Unfinished multipart uploads nobody owns; a server that cannot list them says so.

        An upload the journal knows (``owned``: its upload ids) is ours; one on
        a key with a live row is someone's upload in progress (another Ferry's
        journal knows it): both left alone.
        """
        uploads = young = 0
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
            return uploads, UploadsSeen(young, (note,))
        return uploads, UploadsSeen(young, ())


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
