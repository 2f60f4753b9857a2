"""The check's judge: what a key's listing entry and rows say, without any I/O.

As rclone's ``march`` does, the check walks the merged streams (object
only, rows only, both: :func:`desktop_app.core.check.streams.merge_by_key`)
and hands each key to :func:`classify`, a pure function of what was listed
and read: the key agrees, is young or someone else's, is a finding, or is a
:class:`Disagreement` (an active row its object disagrees with) that only
I/O can confirm: a fresh HEAD where the listing showed no object (listed
before the row was registered?) and a look for an unchanged local copy.
The checker does that I/O beside the walk and hands the answers to
:func:`confirm`, pure again. The words of each finding are written once,
below, per kind.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from desktop_app.core.catalog.records import ALIVE_SECONDS
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.check.findings import (
    CheckOptions,
    Finding,
    FindingKind,
    ObjectEvidence,
    RepairAction,
    RowEvidence,
    RowStamp,
)

if TYPE_CHECKING:
    from desktop_app.core.catalog.records import FileRecord
    from desktop_app.core.check.streams import KeySeen
    from desktop_app.core.model.bucket_objects import ObjectInfo, ObjectVersion
    from desktop_app.core.storage.listing import MultipartUploadInfo


@dataclass(frozen=True)
class Cutoffs:
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
    def of(cls, catalog_now: datetime, bucket_now: datetime, options: CheckOptions) -> Cutoffs:
        grace = timedelta(seconds=options.grace_seconds)
        return cls(
            rows_before=catalog_now - grace,
            alive_since=catalog_now - timedelta(seconds=ALIVE_SECONDS),
            retention_before=catalog_now - timedelta(seconds=options.retention_seconds),
            objects_before=bucket_now - grace,
        )


class Verdict(enum.Enum):
    YOUNG = "young"  # within the grace period, or in flight: not judged
    OTHERS = "others"  # someone else's file: counted, not reported
    KEPT = "kept"  # an older version of a deleted file within the retention period


@dataclass(frozen=True)
class Disagreement:
    """An active row its listed object disagrees with: a finding once I/O confirms it.

    Where the listing showed no object, a fresh HEAD decides (the object may
    have been written after the listing passed its key); either way the
    repair depends on whether an unchanged local copy is known.
    """

    key: str
    row: FileRecord
    object: ObjectInfo | None  # as listed
    rows_seen: tuple[RowStamp, ...]

    @property
    def needs_head(self) -> bool:
        return self.object is None


Judged = Finding | Verdict | Disagreement | None


# -- what each finding says ----------------------------------------------------------


def says_someone_elses() -> str:
    return (
        "Someone else's file: another user's live row holds this key now. Your own "
        "rows for it are history; only that user or an admin may act on it."
    )


def says_deleted_still_stored() -> str:
    return "The catalog says this file was deleted, but its object is still stored."


def says_deleted_version_still_stored(version_id: str) -> str:
    return (
        f"Deleted, still stored: the catalog says this file was deleted, but the version "
        f"Ferry wrote ({version_id}) is still stored in the bucket's history, "
        "behind a newer version or a delete marker; exactly that version can be deleted "
        "(nothing else at the key is touched)."
    )


def says_orphan(delete_chosen: bool) -> str:
    return "An object no catalog row points at (written by another program, or left behind); " + (
        "deletion was chosen for it."
        if delete_chosen
        else "it can be adopted into the catalog once its bytes are read back."
    )


def says_stale_pending(candidate: bool) -> str:
    return "An upload intent older than the grace period with no upload alive; " + (
        "its object has the expected size: it is activated if its bytes have the intended SHA-256."
        if candidate
        else "its object is absent or has another size, so the intent can be "
        "removed (an object stays, to be adopted)."
    )


def says_missing(source: bool) -> str:
    return "The catalog lists this file as stored, but the bucket has no such object; " + (
        "an unchanged local copy can be uploaded again."
        if source
        else "no unchanged local copy is known, so the row can be marked missing."
    )


def says_mismatch(obj: ObjectInfo, row: FileRecord) -> str:
    return (
        f"The object ({obj.size} bytes, ETag {obj.etag}) differs from the catalog row "
        f"({row.size} bytes, ETag {row.etag})."
    )


def says_stale_multipart() -> str:
    return "An unfinished multipart upload that no transfer owns; it costs storage until aborted."


def says_foreign_on_top(current: ObjectEvidence | None, version_id: str) -> str:
    return (
        "Another program wrote a newer version of this key"
        + (f" ({current.size} bytes, ETag {current.etag})" if current else "")
        + f" over Ferry's; Ferry's version ({version_id}) is still stored beneath "
        "it. Ferry never deletes another program's version: remove it with that program "
        "to make Ferry's current again, or delete the file in Ferry to remove Ferry's."
    )


# -- the classifier -------------------------------------------------------------------


def evidence(obj: ObjectInfo | None) -> ObjectEvidence | None:
    return ObjectEvidence(obj.size, obj.etag, obj.last_modified.isoformat()) if obj else None


def agrees(obj: ObjectInfo | None, row: FileRecord) -> bool:
    """The listed object is the one the row registered (size, and ETag if known)."""
    return obj is not None and obj.size == row.size and row.etag in (None, obj.etag)


def stamps(rows: list[FileRecord]) -> tuple[RowStamp, ...]:
    return tuple(RowStamp.of(r) for r in rows)


def _live_row(rows: list[FileRecord]) -> FileRecord | None:
    for row in rows:
        if row.status is not FileStatus.DELETED:
            return row
    return None


def classify(seen: KeySeen, cutoffs: Cutoffs, *, delete_orphans: bool) -> Judged:
    """What one key's listing entry and rows say: nothing (None), a verdict, a
    finding, or a disagreement for I/O to confirm. Reads nothing but its arguments."""
    obj, rows = seen.object, seen.rows
    live = _live_row(rows)
    if live is None:
        if seen.others_hold:
            return _held_by_others(seen)
        if obj is None:
            return None
        return _unregistered(seen.key, obj, rows, cutoffs, delete_orphans)
    if live.status is FileStatus.PENDING:
        return _pending(seen, live, cutoffs)
    if live.status is FileStatus.MISSING:
        return None  # already known and marked
    if agrees(obj, live):
        return None  # the common case, decided before any evidence is written down
    return Disagreement(seen.key, live, obj, stamps(rows))


def _held_by_others(seen: KeySeen) -> Finding | Verdict | None:
    """No live row of ours, and another user's live row (or deletion) holds the key."""
    if not seen.rows:
        # Counted where there is an object: a key may be only their history.
        return Verdict.OTHERS if seen.object is not None else None
    return Finding(
        FindingKind.SOMEONE_ELSES,
        seen.key,
        says_someone_elses(),
        RepairAction.NONE,
        object=evidence(seen.object),
        row=RowEvidence.of(seen.rows[-1]),
        rows_seen=stamps(seen.rows),
    )


def _unregistered(
    key: str, obj: ObjectInfo, rows: list[FileRecord], cutoffs: Cutoffs, delete_orphans: bool
) -> Finding | Verdict:
    """An object no live row points at: Ferry's deleted file, or nobody's."""
    if obj.last_modified > cutoffs.objects_before:
        return Verdict.YOUNG
    last = rows[-1] if rows else None
    if last is not None and last.etag == obj.etag and last.size == obj.size:
        retention_over = last.deleted_at is None or last.deleted_at <= cutoffs.retention_before
        return Finding(
            FindingKind.DELETED_STILL_STORED,
            key,
            says_deleted_still_stored(),
            RepairAction.DELETE_OBJECT if retention_over else RepairAction.NONE,
            object=evidence(obj),
            row=RowEvidence.of(last),
            rows_seen=stamps(rows),
        )
    return Finding(
        FindingKind.ORPHAN_OBJECT,
        key,
        says_orphan(delete_orphans),
        RepairAction.DELETE_OBJECT if delete_orphans else RepairAction.ADOPT,
        object=evidence(obj),
        row=RowEvidence.of(last) if last is not None else None,
        rows_seen=stamps(rows),
    )


def _pending(seen: KeySeen, live: FileRecord, cutoffs: Cutoffs) -> Finding | Verdict:
    """An upload intent: young or alive, or stale."""
    alive = live.alive_at is not None and live.alive_at > cutoffs.alive_since
    if live.created_at > cutoffs.rows_before or alive:
        return Verdict.YOUNG
    obj = seen.object
    candidate = obj is not None and obj.size == live.size
    return Finding(
        FindingKind.STALE_PENDING,
        seen.key,
        says_stale_pending(candidate),
        RepairAction.ACTIVATE if candidate else RepairAction.REMOVE_ROW,
        object=evidence(obj),
        row=RowEvidence.of(live),
        rows_seen=stamps(seen.rows),
    )


def still_registered(fresh: ObjectInfo | None, row: FileRecord) -> bool:
    """A fresh HEAD shows exactly the object the row registered (size and ETag)."""
    return fresh is not None and fresh.size == row.size and fresh.etag == row.etag


def confirm(disagreement: Disagreement, obj: ObjectInfo | None, source: Path | None) -> Finding:
    """The finding of a disagreement, from the object as last seen (the listed one,
    or the fresh HEAD's, None for absent) and the unchanged local copy, if any."""
    row = disagreement.row
    action = RepairAction.REUPLOAD if source else RepairAction.MARK_MISSING
    if obj is None:
        return Finding(
            FindingKind.MISSING_OBJECT,
            disagreement.key,
            says_missing(source is not None),
            action,
            row=RowEvidence.of(row),
            source=str(source) if source else None,
            rows_seen=disagreement.rows_seen,
        )
    return Finding(
        FindingKind.MISMATCH,
        disagreement.key,
        says_mismatch(obj, row),
        action,
        object=evidence(obj),
        row=RowEvidence.of(row),
        source=str(source) if source else None,
        rows_seen=disagreement.rows_seen,
    )


# -- uploads and versions -------------------------------------------------------------


def stale_multipart(upload: MultipartUploadInfo, admin: bool) -> Finding:
    """An unfinished upload nobody owns, old enough and on a key with no live row."""
    return Finding(
        FindingKind.STALE_MULTIPART,
        upload.key,
        says_stale_multipart(),
        RepairAction.ABORT_UPLOAD if admin else RepairAction.NONE,
        upload_id=upload.upload_id,
        initiated=upload.initiated.isoformat(),
    )


def _version_evidence(version: ObjectVersion) -> ObjectEvidence:
    return ObjectEvidence(version.size, version.etag, version.last_modified.isoformat())


def judge_version(
    row: FileRecord, version: ObjectVersion, cutoffs: Cutoffs
) -> Finding | Verdict | None:
    """An older version a row recorded: Ferry's bytes of a deleted file still stored?

    Within the retention period it is where `ferry delete` left it on purpose:
    counted, not reported (every delete would otherwise fail the check for
    that long).
    """
    if row.status is not FileStatus.DELETED:
        return None  # a live file's version under a newer one: see foreign_on_top
    if row.deleted_at is not None and row.deleted_at > cutoffs.rows_before:
        return Verdict.YOUNG  # its delete may be under way
    if row.deleted_at is not None and row.deleted_at > cutoffs.retention_before:
        return Verdict.KEPT
    return Finding(
        FindingKind.DELETED_STILL_STORED,
        version.key,
        says_deleted_version_still_stored(version.version_id),
        RepairAction.DELETE_VERSION,
        object=_version_evidence(version),
        row=RowEvidence.of(row),
        version_id=version.version_id,
    )


def foreign_on_top(mismatch: Finding, version: ObjectVersion) -> Finding:
    """A mismatch whose row's version is still stored beneath the current object."""
    return replace(
        mismatch,
        kind=FindingKind.FOREIGN_VERSION_ON_TOP,
        explanation=says_foreign_on_top(mismatch.object, version.version_id),
        repair=RepairAction.NONE,
        source=None,
        version_id=version.version_id,
    )
