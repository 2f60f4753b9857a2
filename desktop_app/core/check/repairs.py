"""The check's repairs: each finding re-checked at the moment it is acted on.

Promises (invariant 9): a repair re-checks its finding in its own
transaction on the key (rows read and locked, a fresh HEAD) and drops it
if anything changed; it never deletes an object a live row points at,
whoever owns that row, nor one Ferry did not put there unless a person
chose deletion for that finding; an object nobody registered is adopted
only under the SHA-256 of its bytes, read back; a normal user's check
never acts on another user's file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop_app.core.catalog.records import ObjectAtKey, UploadIntent
from desktop_app.core.catalog.repair import KeyRepair
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.check.findings import (
    ConsistencyError,
    Finding,
    FindingKind,
    ObjectEvidence,
    RepairAction,
    RepairOutcome,
    RepairResult,
    RowStamp,
)
from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.model.errors import ErrorCause, FerryError, StorageError, StorageErrorKind
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.versions import delete_version


def _same_object(found: ObjectInfo | None, seen: ObjectEvidence | None) -> bool:
    if found is None or seen is None:
        return found is None and seen is None
    return found.size == seen.size and found.etag == seen.etag


class CheckRepairs:
    """Carries out the repairs a check planned, one finding at a time."""

    def __init__(
        self,
        *,
        storage: S3Storage,
        catalog: CatalogService,
        reupload: Callable[[Path, str, int, str, str | None], bool],
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.reupload = reupload

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
        action = finding.repair
        if action is RepairAction.DELETE_OBJECT:
            return self._delete_object(finding, locked, head)
        if action is RepairAction.ADOPT:
            return self._adopt(finding, locked, head, read, adopt_owner)
        if action is RepairAction.ACTIVATE:
            return _activate(finding, locked, head, read)
        row = finding.row
        assert row is not None
        if action is RepairAction.REMOVE_ROW:
            at_key = ObjectAtKey(looked=True, etag=head.etag if head is not None else None)
            locked.release(row.id, reason="stale upload intent removed by the check", at_key=at_key)
            return RepairResult(finding, RepairOutcome.DONE, "Removed the stale intent.")
        if action is RepairAction.MARK_MISSING:
            locked.mark_missing(row.id, reason=f"{finding.kind.value} found by the check")
            return RepairResult(finding, RepairOutcome.DONE, "Marked missing.")
        raise AssertionError(action)

    def _delete_object(
        self, finding: Finding, locked: KeyRepair, head: ObjectInfo | None
    ) -> RepairResult:
        key, row, done = finding.key, finding.row, RepairOutcome.DONE
        assert finding.object is not None
        if locked.live is not None or locked.others_live:
            return _changed(finding)  # never an object a live row points at
        details: dict[str, Any] = {"etag": finding.object.etag, "size": finding.object.size}
        if head is not None and head.version_id is not None:
            # The version the HEAD just showed, bytes and all: a plain delete
            # would only hide it behind a delete marker.
            delete_version(self.storage, key, head.version_id, etag=finding.object.etag)
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

    def _adopt(
        self,
        finding: Finding,
        locked: KeyRepair,
        head: ObjectInfo | None,
        read: tuple[str, int] | None,
        adopt_owner: str | None,
    ) -> RepairResult:
        assert finding.object is not None
        assert read is not None
        key = finding.key
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
            finding,
            RepairOutcome.DONE,
            f"Adopted for {adopted.owner} with the SHA-256 of its bytes.{note}",
        )

    def _delete_version(self, finding: Finding) -> RepairResult:
        """Remove one older version of Ferry's, and nothing else.

        Re-checked in the key's transaction: the row is still deleted and still
        names that version, no live row names it, and a HEAD of the version (in
        :func:`~desktop_app.core.storage.versions.delete_version`) still shows
        the ETag the check saw.
        """
        assert finding.version_id is not None
        assert finding.row is not None
        assert finding.object is not None
        version, seen = finding.version_id, finding.row.id
        with self.catalog.repairing(self.storage.bucket, finding.key) as locked:
            row = next((r for r in locked.rows if r.id == seen), None)
            if row is None or row.live or row.version_id != version:
                return _changed(finding)
            if any(r.live and r.version_id == version for r in locked.rows):
                return _changed(finding)
            try:
                removed = delete_version(
                    self.storage,
                    finding.key,
                    version,
                    etag=finding.object.etag,
                    file=row.original_name,
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
        assert finding.source is not None
        assert finding.row is not None
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


def _changed(finding: Finding) -> RepairResult:
    return RepairResult(
        finding,
        RepairOutcome.CHANGED,
        "Changed since the check (the object or the key's rows are not what it saw); "
        "nothing was done. Run the check again.",
    )


def _activate(
    finding: Finding, locked: KeyRepair, head: ObjectInfo | None, read: tuple[str, int] | None
) -> RepairResult:
    """A stale intent whose object has the expected size: live if its bytes are the content."""
    row = finding.row
    assert row is not None
    assert finding.object is not None
    assert read is not None
    if read == (row.sha256, row.size):
        version = head.version_id if head is not None else None
        locked.activate(row.id, etag=finding.object.etag, version_id=version)
        return RepairResult(
            finding, RepairOutcome.DONE, "Activated: its bytes have the intended SHA-256."
        )
    # Same size, other bytes: the intent goes, or every check would offer this again.
    at_key = ObjectAtKey(looked=True, etag=head.etag if head is not None else None)
    locked.release(row.id, reason="its object holds other bytes", at_key=at_key)
    return RepairResult(
        finding,
        RepairOutcome.DONE,
        "Removed the stale intent: its object's bytes are not the intended content "
        "(the object stays, to be adopted or deleted).",
    )
