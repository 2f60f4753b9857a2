"""Removing the object of a file Ferry registered, once its catalog row is marked deleted.

Invariant 2: the row is marked deleted (committed) before the object goes;
this module is the second half. Promises: the object goes only while it is
the one Ferry registered (If-Match on the row's ETag, and a look first,
since some servers ignore If-Match on DELETE): another program's object
written over it stays, byte for byte. In a bucket that keeps versions, the
version Ferry wrote goes, bytes and all, unless the profile keeps deleted
files for a while: then it is hidden by a marker and the check removes it
once that time has passed. The answer is a note on what stayed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from desktop_app.core.catalog.records import FileRecord
from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.model.errors import ErrorCause, StorageError, StorageErrorKind
from desktop_app.core.storage.errors import KEPT_BY_RULES
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.versions import delete_version

OTHERS_VERSION_KEPT = (
    "Another program's object, written at this key after Ferry's, was left in place byte for byte."
)


def _days(seconds: int) -> str:
    days = seconds / 86400
    if days >= 1:
        return f"{days:g} day{'s' if days != 1 else ''}"
    return f"{seconds / 3600:g} hours"


def _left_in_place(row: FileRecord, code: str, *, looked: bool = False) -> StorageError:
    how = " (Ferry looked at it just before deleting)" if looked else ""
    return StorageError(
        f"The object at {row.key!r} is no longer the one Ferry uploaded: another "
        f"program wrote that key since{how}. It was left in place; only Ferry's record "
        "of the file was removed.",
        kind=StorageErrorKind.PERMANENT,
        code=code,
        title="Written by another program",
        cause=ErrorCause.CONFLICT,
    )


def _unrecorded_version(row: FileRecord, found: ObjectInfo | None) -> str | None:
    """The version of a row that recorded none (uploaded before versions were
    recorded): the key's current one (``found``, HEADed by the caller), while it
    has the row's ETag and size (the proof the delete by If-Match relied on).
    None where the bucket keeps no versions. The same HEAD keeps a server that
    ignores If-Match on DELETE from deleting another program's object."""
    if found is None or found.version_id is None:
        return None
    if found.etag != row.etag or found.size != row.size:
        return None
    return found.version_id


class RegisteredObjectDeleter:
    """Deletes the objects of one profile's deleted rows; thread-safe."""

    def __init__(self, storage: S3Storage, retention_seconds: int) -> None:
        self.storage = storage
        self.retention_seconds = retention_seconds  # the profile's: deleted files kept this long

    def delete(self, row: FileRecord) -> str | None:
        """Delete the object of a row marked deleted; a note on what stayed, or None."""
        try:
            found = self.storage.head_object(row.key) if row.version_id is None else None
            version = row.version_id or _unrecorded_version(row, found)
            if version is not None:
                return self._delete_version(row, version)
            if found is not None and row.etag is not None and found.etag != row.etag:
                # Looked at first: a server that ignores If-Match on DELETE (rclone
                # serve s3, Ceph) would delete another program's object.
                raise _left_in_place(row, "412", looked=True)
            # Size and SHA-256 let a refusal be looked at (Swift's multipart objects).
            self.storage.delete_object(row.key, if_match=row.etag, size=row.size, sha256=row.sha256)
            return None
        except StorageError as exc:
            if exc.title == KEPT_BY_RULES or exc.code == "VersionMismatch":
                raise  # says what to do already
            if exc.kind is StorageErrorKind.PRECONDITION_FAILED:
                raise _left_in_place(row, exc.code) from exc
            raise StorageError(
                f"{exc.message} `ferry check` will offer to remove the object.",
                kind=exc.kind,
                code=exc.code,
                title=exc.title,
                cause=exc.cause,
            ) from exc

    def _delete_version(self, row: FileRecord, version_id: str) -> str | None:
        """Remove the version Ferry wrote, or hide it while the profile keeps deleted files.

        Another program's version written over Ferry's is never touched: it
        stays current, byte for byte. The answer is a note on what stayed.
        """
        retention = self.retention_seconds
        if retention > 0:
            on_top = False
            try:  # a delete marker, only over Ferry's own version
                self.storage.delete_object(
                    row.key, if_match=row.etag, size=row.size, sha256=row.sha256
                )
            except StorageError as exc:
                if exc.kind is not StorageErrorKind.PRECONDITION_FAILED:
                    raise
                on_top = True  # another program's version is current: it stays so
            until = (row.deleted_at or datetime.now(UTC)) + timedelta(seconds=retention)
            return (
                (OTHERS_VERSION_KEPT + " " if on_top else "")
                + f"Ferry's version stays in the bucket's history (not listed) until "
                f"{until:%Y-%m-%d %H:%M} UTC: the profile keeps deleted files for "
                f"{_days(retention)}. `ferry check --repair` removes it after that."
            )
        current = self.storage.head_object(row.key)
        delete_version(
            self.storage, row.key, version_id, etag=row.etag or "", file=row.original_name
        )
        if current is not None and current.version_id != version_id:
            return OTHERS_VERSION_KEPT + " Only Ferry's version was removed."
        return None
