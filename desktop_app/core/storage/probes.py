"""The endpoint probes: what a server does with Ferry's writes, found with a tiny object.

:func:`probe_write` proves write access and tells how the server keeps Ferry
from writing over another program's object (a ``WriteProtection``);
:func:`probe_checksums` tells whether it keeps and answers CRC64NVME
full-object checksums. What they find is remembered per endpoint by
``transfers/protection.py`` and ``transfers/checksums.py``, which decide
when to probe.

Promises: a probe writes only under a key of its own (a random name under
the profile's prefix, made by :func:`_probe_object`), and leaves neither
bytes, nor a delete marker, nor an open upload behind (in a bucket that
keeps versions each version it made is deleted by its id). A failure that
says nothing of what is probed is raised, not answered as a "no".
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from desktop_app.core.model.bucket_objects import WriteCondition, WriteProtection, version_of
from desktop_app.core.model.errors import StorageError, StorageErrorKind
from desktop_app.core.storage.crc64 import crc64nvme, crc64nvme_base64
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.wire import CRC64NVME, condition_headers, crc_headers, md5_base64

log = logging.getLogger(__name__)

# What a server answers to checksum headers it does not take: its "no", an answer
# to remember (any other refusal says nothing of checksums).
_CHECKSUM_REFUSALS = frozenset(
    {"InvalidRequest", "InvalidArgument", "NotImplemented", "BadRequest", "400", "501"}
)


@dataclass(frozen=True)
class _ProbeKind:
    """A probe's object: the mark in its name, its bytes, and what its first PUT is called."""

    mark: str  # the key is ".ferry-probe-{mark}{random}" under the prefix
    body: bytes
    action: str


_WRITE = _ProbeKind("", b"ferry write probe", "write a test object")
_CHECKSUMS = _ProbeKind(
    "checksums-", b"ferry checksum probe", "write a test object with a checksum"
)


def _probe_object(
    storage: S3Storage, prefix: str, kind: _ProbeKind, **headers: Any
) -> tuple[str, str | None]:
    """PUT the probe's object under the prefix, with ``headers`` besides its
    Content-MD5: its key (a random name of its own), and the version it made."""
    key = f"{prefix.strip('/')}/.ferry-probe-{kind.mark}{uuid.uuid4().hex}".lstrip("/")
    with storage.errors.translating(kind.action, key):
        answer = storage.client.put_object(
            Bucket=storage.bucket,
            Key=key,
            Body=kind.body,
            ContentMD5=md5_base64(kind.body),
            **headers,
        )
    return key, version_of(answer.get("VersionId"))


def probe_write(storage: S3Storage, prefix: str) -> WriteProtection:
    """Write a tiny object under the prefix, write it again on the condition that
    the key is empty, then delete it: proves write access, and says how the
    server keeps Ferry from writing over another program's object. Where the
    PUT's condition is honoured, a one-part multipart upload of the same tiny
    object is completed on that condition too (Ceph RGW 16.2 honours it on
    PUT and ignores it on Complete). In a bucket that keeps versions each
    version it made is deleted by its id, so the probe leaves neither bytes
    nor a delete marker behind."""
    key, first = _probe_object(storage, prefix, _WRITE)
    made = [first]
    body = _WRITE.body
    try:
        with storage.errors.translating("write a test object again", key):
            again = storage.client.put_object(
                Bucket=storage.bucket,
                Key=key,
                Body=body,
                ContentMD5=md5_base64(body),
                **condition_headers(WriteCondition(None)),
            )
        made.append(version_of(again.get("VersionId")))
        protection = WriteProtection.CONDITIONS_IGNORED  # written over an existing key
    except StorageError as exc:
        if exc.kind is StorageErrorKind.PRECONDITION_FAILED:
            protection = _probe_complete(storage, key, body, made)
        elif exc.kind is StorageErrorKind.NOT_SUPPORTED:
            protection = WriteProtection.LOOK_BEFORE_WRITE
        else:
            raise
    finally:
        _delete_probe(storage, key, made)
    return protection


def _probe_complete(
    storage: S3Storage, key: str, body: bytes, made: list[str | None]
) -> WriteProtection:
    """A one-part multipart upload over the probe's existing object, completed on
    If-None-Match ``*``: refused (412), the condition holds on Complete too;
    completed, or the header refused there (501), each Complete is looked at.
    A version it made joins ``made``; an upload left open is aborted."""
    with storage.errors.translating("start a test upload", key):
        upload_id: str | None = storage.client.create_multipart_upload(
            Bucket=storage.bucket, Key=key
        )["UploadId"]
    assert upload_id is not None
    try:
        with storage.errors.translating("upload a test part", key):
            part = storage.client.upload_part(
                Bucket=storage.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=1,
                Body=body,
                ContentMD5=md5_base64(body),
            )
        try:
            with storage.errors.translating("finish a test upload", key):
                done = storage.client.complete_multipart_upload(
                    Bucket=storage.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
                    **condition_headers(WriteCondition(None)),
                )
        except StorageError as exc:
            if exc.kind is StorageErrorKind.PRECONDITION_FAILED:
                return WriteProtection.CONDITIONS_HONOURED
            if exc.kind is StorageErrorKind.NOT_SUPPORTED:
                return WriteProtection.COMPLETE_UNGUARDED
            raise
        upload_id = None  # completed over the existing object: the condition was ignored
        made.append(version_of(done.get("VersionId")))
        return WriteProtection.COMPLETE_UNGUARDED
    finally:
        if upload_id is not None:
            with contextlib.suppress(StorageError):
                storage.abort_multipart_upload(key, upload_id)


def _delete_probe(storage: S3Storage, key: str, made: list[str | None]) -> None:
    """The probe's key is its own (a random name): its versions go by id, no guard."""
    with storage.errors.translating("delete the test object", key):
        if None in made:
            storage.client.delete_object(Bucket=storage.bucket, Key=key)
        for version_id in made:
            if version_id is not None:
                storage.client.delete_object(Bucket=storage.bucket, Key=key, VersionId=version_id)


def probe_checksums(storage: S3Storage, prefix: str) -> bool:
    """Does the server keep and answer CRC64NVME full-object checksums? A tiny
    object is PUT with its CRC64NVME, then sent again as a one-part upload
    created for CRC64NVME (FULL_OBJECT) and completed with the object's
    checksum; each must be read back (HEAD with checksum mode) with exactly
    that checksum. A refusal (400, 501) or an answer without it: False. The
    probe's object (each version) is deleted; an upload left open aborted."""
    crc = crc64nvme_base64(crc64nvme(_CHECKSUMS.body))
    try:
        key, first = _probe_object(storage, prefix, _CHECKSUMS, **crc_headers(crc))
    except StorageError as exc:
        return _no_checksums(storage, exc)
    made = [first]
    try:
        return _checksums_kept(storage, key, crc, made)
    except StorageError as exc:
        return _no_checksums(storage, exc)
    finally:
        _delete_probe(storage, key, made)


def _checksums_kept(storage: S3Storage, key: str, crc: str, made: list[str | None]) -> bool:
    """The probe's object read back with its checksum, then sent again as a
    one-part upload for CRC64NVME and read back once more. A version the upload
    made joins ``made``; an upload left open is aborted."""
    found = storage.head_object(key, checksums=True)
    if found is None or found.crc64nvme != crc:
        return False
    body = _CHECKSUMS.body
    with storage.errors.translating("start a test upload with a checksum", key):
        upload_id: str | None = storage.client.create_multipart_upload(
            Bucket=storage.bucket,
            Key=key,
            ChecksumAlgorithm=CRC64NVME,
            ChecksumType="FULL_OBJECT",
        )["UploadId"]
    assert upload_id is not None
    try:
        with storage.errors.translating("upload a test part with a checksum", key):
            part = storage.client.upload_part(
                Bucket=storage.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=1,
                Body=body,
                ContentMD5=md5_base64(body),
                **crc_headers(crc),
            )
        with storage.errors.translating("finish a test upload with a checksum", key):
            done = storage.client.complete_multipart_upload(
                Bucket=storage.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumCRC64NVME": crc}]
                },
                ChecksumCRC64NVME=crc,
                ChecksumType="FULL_OBJECT",
            )
        upload_id = None
        made.append(version_of(done.get("VersionId")))
    finally:
        if upload_id is not None:
            with contextlib.suppress(StorageError):
                storage.abort_multipart_upload(key, upload_id)
    found = storage.head_object(key, checksums=True)
    return found is not None and found.crc64nvme == crc


def _no_checksums(storage: S3Storage, exc: StorageError) -> bool:
    """A probe's failure: False where the server refused the checksum headers (an
    answer to remember); raised where it says nothing of checksums."""
    if exc.kind in (StorageErrorKind.TRANSIENT, StorageErrorKind.BAD_DIGEST):
        # A body hurt on the way (its Content-MD5 refused) says nothing of
        # checksums: found out at the next probe, not remembered as "no".
        raise StorageError(exc.message, kind=StorageErrorKind.TRANSIENT, code=exc.code) from exc
    if exc.kind is StorageErrorKind.NOT_SUPPORTED or exc.code in _CHECKSUM_REFUSALS:
        log.info("%s does not keep CRC64NVME checksums: %s", storage.endpoint_label, exc.code)
        return False
    # Denied, no such bucket, a wrong key: nothing learnt of checksums, so
    # nothing remembered (the caller probes again in a later run).
    raise exc
