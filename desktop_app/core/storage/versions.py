"""A bucket that keeps versions: whether it does, its versions, and one version deleted.

In a bucket that keeps versions every write answers with the version it made
(:attr:`~desktop_app.core.model.bucket_objects.WriteAnswer.version_id`), a
delete only hides the object behind a delete marker, and the bytes go only
when a version is deleted by its id. :func:`versioning` asks the bucket,
:func:`iter_object_versions` lists the versions, :func:`delete_version`
removes exactly one.

Promises: :func:`delete_version` deletes only after a HEAD of that version
shows the ETag the caller expects: a server that ignores the version id
(weed mini on an unversioned bucket deletes the current object) never
deletes another program's object in its place. A refusal by the bucket's
own rules (Object Lock, MFA delete) is said as what keeps the version and
what to do. The listing is followed to its end, never looped on.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

from desktop_app.core.model.bucket_objects import ObjectVersion, unquoted_etag
from desktop_app.core.model.errors import ErrorCause, StorageError, StorageErrorKind
from desktop_app.core.storage.s3 import S3Storage


class Versioning(enum.Enum):
    """Whether the bucket keeps the versions of its objects (GetBucketVersioning)."""

    NEVER = "never"  # versioning never turned on: one object per key
    ENABLED = "enabled"
    SUSPENDED = "suspended"  # turned off again; versions made before are still kept
    UNKNOWN = "unknown"  # the server would not say (a missing permission)

    @property
    def keeps_versions(self) -> bool:
        return self in (Versioning.ENABLED, Versioning.SUSPENDED)


def versioning(storage: S3Storage) -> Versioning:
    """Does the bucket keep versions? UNKNOWN where the server would not say."""
    try:
        with storage.errors.translating("ask whether the bucket keeps versions"):
            response = storage.client.get_bucket_versioning(Bucket=storage.bucket)
    except StorageError as exc:
        if exc.kind is StorageErrorKind.TRANSIENT or exc.code == "NoSuchBucket":
            raise
        if exc.kind is StorageErrorKind.NOT_SUPPORTED:
            return Versioning.NEVER  # a server without versions (501, 405)
        return Versioning.UNKNOWN  # a missing permission
    status = str(response.get("Status") or "")
    if status == "Enabled":
        return Versioning.ENABLED
    if status == "Suspended":
        return Versioning.SUSPENDED
    return Versioning.NEVER


def iter_object_versions(
    storage: S3Storage, prefix: str = "", page_size: int = 1000
) -> Iterator[list[ObjectVersion]]:
    """The versions under the prefix (delete markers left out), page by page."""
    key_marker, version_marker = "", ""
    while True:
        kwargs: dict[str, Any] = {
            "Bucket": storage.bucket,
            "Prefix": prefix,
            "MaxKeys": page_size,
        }
        if key_marker:
            kwargs["KeyMarker"] = key_marker
            if version_marker:
                kwargs["VersionIdMarker"] = version_marker
        with storage.errors.translating("list the versions in the bucket"):
            page = storage.client.list_object_versions(**kwargs)
        yield [
            ObjectVersion(
                key=item["Key"],
                version_id=str(item.get("VersionId") or "null"),
                size=int(item.get("Size", 0)),
                etag=unquoted_etag(item.get("ETag", "")),
                last_modified=item["LastModified"],
                latest=bool(item.get("IsLatest")),
            )
            for item in page.get("Versions", [])
        ]
        next_key = page.get("NextKeyMarker", "")
        next_version = page.get("NextVersionIdMarker", "")
        if not page.get("IsTruncated") or not next_key:
            return
        if (next_key, next_version) == (key_marker, version_marker):
            raise StorageError(
                f"{storage.endpoint_label} listed the same versions again after "
                f"{next_key!r}; the check stopped rather than loop.",
                kind=StorageErrorKind.PERMANENT,
                code="ListingLoop",
            )
        key_marker, version_marker = next_key, next_version


def delete_version(
    storage: S3Storage, key: str, version_id: str, *, etag: str, file: str = ""
) -> bool:
    """Remove one version of the key, its bytes with it (no delete marker is made).

    Only the version that a HEAD of it shows with ``etag`` (Ferry's own, as
    its catalog row recorded it) is deleted; False when that version is not
    there (gone already). A version is immutable, so no If-Match is needed
    on the delete itself; the HEAD guards against a server that ignores the
    version id and would delete the key's current object, perhaps another
    program's. A refusal by the bucket's rules (Object Lock, MFA delete)
    says so, naming ``file`` (the original file name) and what to do.
    """
    found = storage.head_object(key, version_id=version_id)
    if found is None:
        return False
    if found.version_id != version_id or found.etag != etag:
        raise StorageError(
            f"Version {version_id} of {key!r} in bucket {storage.bucket!r} is not the one Ferry "
            f"wrote (the server showed ETag {found.etag}, version {found.version_id}), so "
            "Ferry deleted nothing. Look at the key's versions with another tool.",
            kind=StorageErrorKind.PRECONDITION_FAILED,
            code="VersionMismatch",
            title="Not Ferry's version",
            cause=ErrorCause.CONFLICT,
        )
    what = f"delete version {version_id} of"
    try:
        with storage.errors.translating(what, key):
            storage.client.delete_object(Bucket=storage.bucket, Key=key, VersionId=version_id)
    except StorageError as exc:
        raise storage.errors.kept_by_rules(exc, found, file, storage.server_now) or exc from exc
    return True
