"""The storage adapter: Ferry's only door to the S3 bucket.

:class:`S3Storage` holds one bucket's thread-safe boto3 client (built by
:mod:`.client`) and sends every request through the translation of
:mod:`.errors`: a botocore failure leaves it only as a
:class:`~desktop_app.core.model.errors.StorageError` with a kind (transient,
permanent, no-such-upload, not-found, bad-digest) and a plain message naming
the key; nothing above the storage package catches a botocore error.

Here are the bucket's questions and the single requests on an object: a
write on a condition (:meth:`S3Storage.write_on_condition`, for a server
that refuses the condition's header too), a HEAD, a guarded delete, a read
of the bytes, and a multipart upload's steps. Around it, each taking an
``S3Storage``: :mod:`.listing` (paged listings), :mod:`.versions` (a bucket
that keeps versions), :mod:`.copies` (copies on the server), :mod:`.probes`
(what the endpoint does with Ferry's writes).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from desktop_app.core.model.bucket_objects import (
    ObjectInfo,
    WriteAnswer,
    WriteCondition,
    read_listings_lean,
    unquoted_etag,
    version_of,
)
from desktop_app.core.model.errors import StorageError, StorageErrorKind
from desktop_app.core.settings.profiles import Encryption, Profile
from desktop_app.core.settings.secrets import S3Credentials
from desktop_app.core.storage.client import SANDBOX_SERVER, endpoint_id, make_client
from desktop_app.core.storage.errors import ErrorTranslator
from desktop_app.core.storage.quick_put import QuickPut
from desktop_app.core.storage.server_clock import ServerClock
from desktop_app.core.storage.throttling import ThrottleCount
from desktop_app.core.storage.wire import (
    CRC64NVME,
    answered_crc,
    answered_encryption,
    condition_headers,
    crc_headers,
    request_body,
    without_expect,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

COPY_LIMIT = 5 * 1024**3
COPY_PART_SIZE = 512 * 1024**2
_READ_CHUNK = 8 * 1024**2


class S3Storage:
    """One bucket through one thread-safe boto3 client."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        endpoint_label: str = "S3",
        *,
        profile_name: str = "",
        aws_profile: str | None = None,
        server: str | None = None,
        customer_key_sent: bool = False,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.endpoint_label = endpoint_label
        # What the catalog records as this server: bucket names are unique per server.
        self.endpoint_id = server or endpoint_id(client.meta.endpoint_url)
        # S3's limit for one CopyObject, and the part size of larger copies.
        self.copy_limit = COPY_LIMIT
        self.copy_part_size = COPY_PART_SIZE
        read_listings_lean(client.meta.events)
        # Told when a write's condition headers are refused (501): what the
        # endpoint was found to honour is no longer so.
        self.on_conditions_refused: Callable[[], None] | None = None
        # Bucket times are judged on the server's clock, learnt from every answer.
        self.server_clock = ServerClock()
        client.meta.events.register("after-call.s3", self.server_clock.on_answer)
        # Every attempt's answer, botocore's own retries included: how often it said slow down.
        self.throttled = ThrottleCount()
        client.meta.events.register("needs-retry.s3", self.throttled.on_attempt)
        # A small file's PUT, once botocore has sent one, without botocore's pipeline.
        self.quick_put = QuickPut(
            client, on_answer=self.server_clock.on_answer, on_attempt=self.throttled.on_attempt
        )
        # After botocore's own handler that adds the header (same event, registered later).
        client.meta.events.register_last("before-call.s3", without_expect)
        # Every request goes through it: no botocore error leaves this storage.
        self.errors = ErrorTranslator(
            endpoint_label,
            bucket,
            self.server_clock,
            profile_name=profile_name,
            aws_profile=aws_profile,
            customer_key_sent=customer_key_sent,
        )

    @classmethod
    def connect(
        cls, profile: Profile, credentials: S3Credentials, *, max_connections: int = 10
    ) -> S3Storage:
        client = make_client(profile, credentials, max_connections=max_connections)
        return cls(
            client,
            profile.bucket,
            profile.endpoint_url or "AWS S3",
            profile_name=profile.name,
            aws_profile=profile.aws_profile,
            # The sandbox moves to other ports when its own are taken: still one server.
            server=SANDBOX_SERVER if profile.sandbox else None,
            customer_key_sent=profile.encryption is Encryption.SSE_C,
        )

    # -- bucket -------------------------------------------------------------

    def check_bucket(self) -> None:
        # A listing, not HEAD: HEAD errors carry no body, so a wrong secret
        # and a missing permission would look the same.
        with self.errors.translating("list the bucket"):
            self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)

    def server_now(self) -> datetime:
        """The server's time now (asked with a cheap request if no answer came yet)."""
        if self.server_clock.offset is None:
            self.answers()
        return self.server_clock.now()

    def answers(self) -> bool:
        """A cheap probe: does the endpoint answer at all (any HTTP status counts)?"""
        try:
            with self.errors.translating("reach the server"):
                self.client.head_bucket(Bucket=self.bucket)
        except StorageError as exc:
            return exc.kind is not StorageErrorKind.TRANSIENT
        return True

    def server_software(self) -> str:
        """What the server says it is (its HTTP Server header), for the About dialog."""
        with self.errors.translating("ask the server what it is"):
            response = self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return str(headers.get("server") or "not said by the server")

    def create_bucket_if_missing(self) -> None:
        with self.errors.translating("create the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status != 404:
                    raise
                try:
                    self.client.create_bucket(Bucket=self.bucket)
                except ClientError as race:
                    # weed mini creates its bucket itself at start, which can
                    # land between our HEAD and our create: then it is ours.
                    code = race.response.get("Error", {}).get("Code")
                    if code != "BucketAlreadyOwnedByYou":
                        raise

    def object_lock_enabled(self) -> bool:
        """Does the bucket lock what is written in it (Object Lock)? False where the
        server says not, or cannot say."""
        try:
            with self.errors.translating("read the Object Lock setting of the bucket"):
                response = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except StorageError:
            return False
        return response.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    # -- objects ------------------------------------------------------------

    def put_object(
        self,
        key: str,
        body: bytes,
        *,
        metadata: Mapping[str, str],
        md5_b64: str,
        content_type: str = "application/octet-stream",
        condition: WriteCondition | None = None,
        sent: Callable[[int], None] | None = None,
        crc64nvme: str | None = None,
    ) -> WriteAnswer:
        """Store the bytes; with ``condition``, only while the key holds what it says
        (refused with PRECONDITION_FAILED otherwise). ``sent`` is told, as the
        request goes, how many of the bytes the connection has taken. With
        ``crc64nvme`` (base64) the server is asked to verify and keep that
        checksum; the answer says the one it kept."""

        def send(condition_params: dict[str, Any]) -> Any:
            params = {
                "ContentMD5": md5_b64,  # the caller hashed these bytes as it read them
                "ContentType": content_type,
                **crc_headers(crc64nvme),
                **condition_params,
            }
            # Each request reads the body from its first byte.
            quick = self.quick_put.put(key, request_body(body, sent), len(body), params, metadata)
            if quick is not None:
                return quick
            return self.quick_put.through_botocore(
                key,
                lambda: self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=request_body(body, sent),
                    Metadata=dict(metadata),
                    **params,
                ),
            )

        response = self.write_on_condition("upload", key, condition, send)
        return WriteAnswer(
            unquoted_etag(response["ETag"]),
            answered_encryption(response),
            version_of(response.get("VersionId")),
            answered_crc(response),
        )

    def write_on_condition(
        self,
        what: str,
        key: str,
        condition: WriteCondition | None,
        request: Callable[[dict[str, Any]], Any],
    ) -> Any:
        """Send a write with the condition's header. A server that refuses the
        header itself (501, as Swift's s3api does) gets the write without it,
        after a HEAD shows the key holds what the condition says. An object to
        replace that is gone (the key is empty) harms no one: the write then
        goes on the condition that the key is still empty."""
        try:
            with self.errors.translating(what, key):
                return request(condition_headers(condition))
        except StorageError as exc:
            if condition is None:
                raise
            if exc.kind is StorageErrorKind.NOT_SUPPORTED:
                if self.on_conditions_refused is not None:
                    self.on_conditions_refused()  # what was learnt of this endpoint is stale
                self._require_by_head(key, condition, what)
                with self.errors.translating(what, key):
                    return request({})
            vanished = condition.replacing is not None and self.head_object(key) is None
            if exc.kind is not StorageErrorKind.PRECONDITION_FAILED or not vanished:
                raise
        with self.errors.translating(what, key):
            return request(condition_headers(WriteCondition(None)))

    def _require_by_head(self, key: str, condition: WriteCondition, what: str) -> None:
        if not condition.met_by(self.head_object(key)):
            raise StorageError(
                f"{key!r} in bucket {self.bucket!r} holds another object than "
                f"{condition.describe()}, so Ferry did not {what} it.",
                kind=StorageErrorKind.PRECONDITION_FAILED,
                code="PreconditionFailed",
                title="Changed meanwhile",
            )

    def head_object(
        self, key: str, *, version_id: str | None = None, checksums: bool = False
    ) -> ObjectInfo | None:
        """The key's current object, or with ``version_id`` that version; None if absent.
        With ``checksums`` the server is asked for the object's checksum too
        (``x-amz-checksum-mode: ENABLED``: only where the endpoint keeps them)."""
        extra: dict[str, Any] = {"VersionId": version_id} if version_id is not None else {}
        if checksums:
            extra["ChecksumMode"] = "ENABLED"
        try:
            with self.errors.translating("inspect", key):
                response = self.client.head_object(Bucket=self.bucket, Key=key, **extra)
        except StorageError as exc:
            if exc.kind is StorageErrorKind.NOT_FOUND:
                return None
            raise
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=unquoted_etag(response["ETag"]),
            last_modified=response["LastModified"],
            metadata=dict(response.get("Metadata", {})),
            encryption=answered_encryption(response),
            version_id=version_of(response.get("VersionId")),
            locked_until=response.get("ObjectLockRetainUntilDate"),
            legal_hold=response.get("ObjectLockLegalHoldStatus") == "ON",
            crc64nvme=answered_crc(response),
        )

    def delete_object(
        self,
        key: str,
        *,
        if_match: str | None = None,
        size: int | None = None,
        sha256: str | None = None,
    ) -> None:
        """Delete the object; with ``if_match``, only while it still has that ETag.

        A server that follows If-Match refuses with PRECONDITION_FAILED when the
        object changed; one that ignores it deletes anyway, so callers re-check
        under the catalog's key lock before they ask.

        With ``size`` too (and ``sha256``: the SHA-256 metadata the object
        carries, None for none), a refusal is looked at: Swift's s3api compares
        If-Match with Swift's own ETag of a multipart (SLO) object, not the S3
        ETag it answers on HEAD, so it refuses every conditional delete of one.
        For a multipart ETag only, a HEAD that shows exactly that ETag, size and
        metadata proves the object
        the one meant, and it is deleted right after that HEAD without the
        condition (another program's write in between would be lost: a narrow
        window, docs/DECISIONS.md #33; in a bucket that keeps versions it is only
        hidden behind a delete marker, as the conditional delete would have done).
        """
        extra: dict[str, Any] = {"IfMatch": f'"{if_match}"'} if if_match else {}
        try:
            with self.errors.translating("delete", key):
                self.client.delete_object(Bucket=self.bucket, Key=key, **extra)
        except StorageError as exc:
            if not extra:
                raise
            if exc.kind is StorageErrorKind.PRECONDITION_FAILED:
                # Only a multipart ETag ("<md5>-N") is what Swift mis-compares; a
                # refusal of any other is believed (a replica that lags could
                # show the old object to the HEAD while another program's is new).
                multipart = if_match is not None and "-" in if_match
                if not multipart or size is None:
                    raise
                if not self._still_holds(key, if_match, size, sha256):
                    raise
                log.info(
                    "%s refused to delete %r on If-Match %s, though a HEAD shows that very "
                    "object (size and SHA-256 too): deleted without the condition",
                    self.endpoint_label,
                    key,
                    if_match,
                )
            elif exc.kind is not StorageErrorKind.NOT_SUPPORTED:
                raise
            # The header refused (501), or the object proven the one meant above.
            with self.errors.translating("delete", key):
                self.client.delete_object(Bucket=self.bucket, Key=key)

    def _still_holds(self, key: str, etag: str | None, size: int, sha256: str | None) -> bool:
        """Does a HEAD of the key show exactly this object (ETag, size, SHA-256 metadata)?"""
        found = self.head_object(key)
        return found is not None and (found.etag, found.size, found.sha256) == (etag, size, sha256)

    def read_sha256(self, key: str, *, if_match: str) -> tuple[str, int]:
        """SHA-256 and size of the object's bytes, read while it keeps the ETag ``if_match``."""
        digest = hashlib.sha256()
        size = 0
        with self.errors.translating("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=f'"{if_match}"')
            body = response["Body"]
            try:
                while chunk := body.read(_READ_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
            finally:
                body.close()
        return digest.hexdigest(), size

    # -- multipart ----------------------------------------------------------

    def create_multipart_upload(
        self, key: str, *, metadata: Mapping[str, str], content_type: str, crc64nvme: bool = False
    ) -> str:
        """Start an upload; with ``crc64nvme`` one whose parts carry CRC64NVMEs and whose
        Complete the server verifies against a full-object CRC64NVME."""
        extra: dict[str, Any] = (
            {"ChecksumAlgorithm": CRC64NVME, "ChecksumType": "FULL_OBJECT"} if crc64nvme else {}
        )
        with self.errors.translating("start the upload of", key):
            response = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                Metadata=dict(metadata),
                ContentType=content_type,
                **extra,
            )
        return response["UploadId"]

    def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        body: bytes | bytearray,
        md5_b64: str,
        *,
        sent: Callable[[int], None] | None = None,
        crc64nvme: str | None = None,
    ) -> WriteAnswer:
        """Send one part. A bytearray goes as it is, not copied: the caller keeps it
        unchanged until this returns. ``sent`` is told, as the part goes, how many
        of its bytes the connection has taken; ``crc64nvme`` (base64) is the part's
        checksum for the server to verify (an upload created with ``crc64nvme``)."""
        with self.errors.translating(f"upload part {number} of", key):
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=request_body(body, sent),
                ContentMD5=md5_b64,
                **crc_headers(crc64nvme),
            )
        return WriteAnswer(
            unquoted_etag(response["ETag"]),
            answered_encryption(response),
            crc64nvme=answered_crc(response),
        )

    def complete_multipart_upload(
        self,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        *,
        condition: WriteCondition | None = None,
        crc64nvme: str | None = None,
        part_crc64nvmes: Mapping[int, str] | None = None,
    ) -> WriteAnswer:
        """Join the parts into the object; with ``condition``, only while the key
        holds what it says (refused with PRECONDITION_FAILED otherwise). With
        ``crc64nvme`` (an upload created with it) the server is to verify the
        object's full-object CRC64NVME; ``part_crc64nvmes`` name each part's."""
        crcs = part_crc64nvmes or {}
        listed: list[Any] = [
            {"PartNumber": n, "ETag": f'"{etag}"'}
            | ({"ChecksumCRC64NVME": crcs[n]} if n in crcs else {})
            for n, etag in parts
        ]
        whole: dict[str, Any] = (
            {"ChecksumCRC64NVME": crc64nvme, "ChecksumType": "FULL_OBJECT"} if crc64nvme else {}
        )
        response = self.write_on_condition(
            "finish the upload of",
            key,
            condition,
            lambda extra: self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": listed},
                **whole,
                **extra,
            ),
        )
        return WriteAnswer(
            unquoted_etag(response.get("ETag", "")),
            answered_encryption(response),
            version_of(response.get("VersionId")),
            answered_crc(response),
        )

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        try:
            with self.errors.translating("abort the upload of", key):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except StorageError as exc:
            if exc.kind not in (StorageErrorKind.NO_SUCH_UPLOAD, StorageErrorKind.NOT_FOUND):
                raise
