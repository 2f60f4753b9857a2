"""Copies on the server: an object's bytes to another key, never through Ferry.

:func:`copy_object` is how a repair or a rename moves an object without
sending its bytes again: one CopyObject up to the storage's ``copy_limit``
(S3's 5 GiB), above it a multipart upload of UploadPartCopy parts of
``copy_part_size``.

Promises: only the source object with the ETag the caller names is copied
(each part too: CopySourceIfMatch), and with a ``WriteCondition`` only while
the key holds what it says; a copy in parts that fails is aborted, leaving
no upload open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from desktop_app.core.model.bucket_objects import (
    WriteAnswer,
    WriteCondition,
    unquoted_etag,
    version_of,
)
from desktop_app.core.model.errors import StorageError
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.wire import answered_encryption

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CopySourceTypeDef


def copy_object(
    storage: S3Storage,
    source_key: str,
    key: str,
    *,
    source_etag: str,
    size: int,
    metadata: Mapping[str, str],
    content_type: str,
    condition: WriteCondition | None = None,
) -> WriteAnswer:
    """Copy on the server, only from the source object with ``source_etag`` and
    (with ``condition``) only while the key holds what it says; the new ETag
    (and version).

    Up to ``copy_limit`` bytes one CopyObject; above, UploadPartCopy in
    parts (each conditional on the same ETag), aborted on any failure.
    """
    source: CopySourceTypeDef = {"Bucket": storage.bucket, "Key": source_key}
    source_condition = f'"{source_etag}"'
    if size <= storage.copy_limit:
        response = storage.write_on_condition(
            f"copy {source_key!r} to",
            key,
            condition,
            lambda extra: storage.client.copy_object(
                Bucket=storage.bucket,
                Key=key,
                CopySource=source,
                CopySourceIfMatch=source_condition,
                MetadataDirective="REPLACE",
                Metadata=dict(metadata),
                ContentType=content_type,
                **extra,
            ),
        )
        return WriteAnswer(
            unquoted_etag(response["CopyObjectResult"]["ETag"]),
            answered_encryption(response),
            version_of(response.get("VersionId")),
        )
    upload_id = storage.create_multipart_upload(key, metadata=metadata, content_type=content_type)
    try:
        parts = []
        part_size = storage.copy_part_size
        for number, offset in enumerate(range(0, size, part_size), start=1):
            last = min(offset + part_size, size) - 1
            with storage.errors.translating(f"copy part {number} of {source_key!r} to", key):
                part = storage.client.upload_part_copy(
                    Bucket=storage.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceIfMatch=source_condition,
                    CopySourceRange=f"bytes={offset}-{last}",
                )
            parts.append((number, unquoted_etag(part["CopyPartResult"]["ETag"])))
        return storage.complete_multipart_upload(key, upload_id, parts, condition=condition)
    except BaseException:
        with contextlib.suppress(StorageError):
            storage.abort_multipart_upload(key, upload_id)
        raise
