"""The bucket's paged listings, followed to the end and yielded lazily.

ListObjectsV2 (read by the lean parser of
:mod:`~desktop_app.core.model.bucket_objects` where it can),
ListMultipartUploads and ListParts (the versions' listing is
:mod:`.versions`'s), each asked page after page through the
storage's client and its error translation, so a caller can stream a bucket
in constant memory.

Promises: every page is followed until the server says the listing ended,
and no further (a marker that does not move on ends the parts' listing).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from desktop_app.core.model.bucket_objects import (
    LISTING_PAGE,
    ListingPage,
    ObjectInfo,
    unquoted_etag,
)
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.wire import answered_crc


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str
    crc64nvme: str | None = None  # the part's CRC64NVME, where the server lists it


@dataclass(frozen=True)
class MultipartUploadInfo:
    key: str
    upload_id: str
    initiated: datetime


def _listed(item: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        key=item["Key"],
        size=int(item["Size"]),
        etag=unquoted_etag(item.get("ETag", "")),
        last_modified=item["LastModified"],
    )


def iter_objects(storage: S3Storage, prefix: str = "") -> Iterator[ObjectInfo]:
    """Every object under the prefix, page by page, in the server's order."""
    for page in iter_object_pages(storage, prefix):
        yield from page


def iter_object_pages(
    storage: S3Storage, prefix: str = "", page_size: int = 1000
) -> Iterator[list[ObjectInfo]]:
    """The objects under the prefix as the server pages them."""
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": storage.bucket, "Prefix": prefix, "MaxKeys": page_size}
        if token:
            kwargs["ContinuationToken"] = token
        with storage.errors.translating("list the bucket"):
            page = storage.client.list_objects_v2(**kwargs)
        lean = page.get(LISTING_PAGE)
        if isinstance(lean, ListingPage):
            yield lean.objects
            token, more = lean.next_token, lean.truncated
        else:  # a page the lean parser left to botocore
            yield [_listed(item) for item in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            more = bool(page.get("IsTruncated"))
        if not more or not token:
            return


def list_parts(storage: S3Storage, key: str, upload_id: str) -> Iterator[PartInfo]:
    """The parts the server holds of an unfinished upload, in order."""
    marker = 0
    while True:
        with storage.errors.translating("list the uploaded parts of", key):
            page = storage.client.list_parts(
                Bucket=storage.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumberMarker=marker,
                MaxParts=1000,
            )
        parts = page.get("Parts", [])
        for item in parts:
            yield PartInfo(
                int(item["PartNumber"]),
                int(item["Size"]),
                unquoted_etag(item["ETag"]),
                answered_crc(item),
            )
        next_marker = int(page.get("NextPartNumberMarker", 0) or 0)
        if not page.get("IsTruncated") or not parts or next_marker <= marker:
            return
        marker = next_marker


def iter_multipart_uploads(storage: S3Storage, prefix: str = "") -> Iterator[MultipartUploadInfo]:
    """The unfinished multipart uploads under the prefix."""
    key_marker, upload_marker = "", ""
    while True:
        kwargs: dict[str, Any] = {"Bucket": storage.bucket, "Prefix": prefix, "MaxUploads": 1000}
        if key_marker:
            kwargs["KeyMarker"] = key_marker
            kwargs["UploadIdMarker"] = upload_marker
        with storage.errors.translating("list unfinished uploads"):
            page = storage.client.list_multipart_uploads(**kwargs)
        for item in page.get("Uploads", []):
            yield MultipartUploadInfo(item["Key"], item["UploadId"], item["Initiated"])
        if not page.get("IsTruncated"):
            return
        key_marker = page.get("NextKeyMarker", "")
        upload_marker = page.get("NextUploadIdMarker", "")
        if not key_marker:
            return
