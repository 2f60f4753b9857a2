"""The storage adapter: Ferry's only door to the S3 bucket.

It owns the boto3 client and translates every botocore failure into a
:class:`~desktop_app.core.model.errors.StorageError` with a kind (transient,
permanent, no-such-upload, not-found, bad-digest) and a plain message naming
the key; nothing above this module catches a botocore error. Paged calls
(ListObjectsV2, ListObjectVersions, ListParts, ListMultipartUploads) are
followed to the end and yielded lazily, so a caller can stream a bucket in
constant memory.

In a bucket that keeps versions every write answers with the version it made
(:attr:`WriteAnswer.version_id`); :meth:`S3Storage.delete_version` removes
exactly one version's bytes, and only after a HEAD of that version shows the
ETag the caller expects: a server that ignores the version id (weed mini on
an unversioned bucket deletes the current object) never deletes another
program's object in its place.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

import boto3
import botocore.auth
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSOError,
    TokenRetrievalError,
)

from desktop_app import __version__
from desktop_app.core.model.bucket_objects import (
    LISTING_PAGE,
    ListingPage,
    read_listings_lean,
    unquoted_etag,
    version_of,
)
from desktop_app.core.model.bucket_objects import SHA256_METADATA as SHA256_METADATA
from desktop_app.core.model.bucket_objects import ObjectInfo as ObjectInfo
from desktop_app.core.model.bucket_objects import ObjectVersion as ObjectVersion
from desktop_app.core.model.bucket_objects import WriteAnswer as WriteAnswer
from desktop_app.core.model.bucket_objects import WriteCondition as WriteCondition
from desktop_app.core.model.bucket_objects import WriteProtection as WriteProtection
from desktop_app.core.model.errors import ConfigError, ErrorCause, StorageError, StorageErrorKind
from desktop_app.core.settings.profiles import Addressing, Encryption, Profile
from desktop_app.core.settings.secrets import (
    S3Credentials,
    aws_credential_error,
    missing_customer_key,
)
from desktop_app.core.storage.crc64 import crc64nvme, crc64nvme_base64
from desktop_app.core.storage.server_clock import ServerClock, describe_offset

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef

log = logging.getLogger(__name__)


def _keep_botocores_own_signers() -> None:
    """awscrt, installed for its CRC64NVME, also makes botocore sign every request
    with its CRT signers (other header casing, another canonicalisation of
    paths): Ferry keeps botocore's pure-Python SigV4 signers, the ones it was
    proven with on eight servers and the ones botocore uses without awscrt."""
    botocore.auth.AUTH_TYPE_MAPS.update(
        {
            "v4": botocore.auth.SigV4Auth,
            "v4-query": botocore.auth.SigV4QueryAuth,
            "s3v4": botocore.auth.S3SigV4Auth,
            "s3v4-query": botocore.auth.S3SigV4QueryAuth,
        }
    )


_keep_botocores_own_signers()
COPY_LIMIT = 5 * 1024**3
COPY_PART_SIZE = 512 * 1024**2
_READ_CHUNK = 8 * 1024**2
_USER_AGENT = f"Ferry/{__version__} Boto3/{boto3.__version__}"  # boto3 adds Botocore/x
# Servers that answer a path-style request by asking for the bucket in the host
# name (Aliyun OSS: 403 SecondLevelDomainForbidden).
_WANTS_VIRTUAL_HOSTS = frozenset({"SecondLevelDomainForbidden"})
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "OperationAborted",
        "500",
        "502",
        "503",
        "504",
    }
)
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
SANDBOX_SERVER = "sandbox"
KEPT_BY_RULES = "Kept by the bucket's rules"  # the title of an Object Lock or MFA refusal
# What a refusal to delete a version says when the bucket's own rules keep it
# (AWS: AccessDenied "... object protected by object lock", InvalidRequest for
# a missing MFA or Content-MD5 under Object Lock), as lower-case fragments.
_LOCK_WORDS = ("object lock", "objectlock", "retention", "legal hold", "worm")
_MFA_WORDS = ("mfa",)


class Versioning(enum.Enum):
    """Whether the bucket keeps the versions of its objects (GetBucketVersioning)."""

    NEVER = "never"  # versioning never turned on: one object per key
    ENABLED = "enabled"
    SUSPENDED = "suspended"  # turned off again; versions made before are still kept
    UNKNOWN = "unknown"  # the server would not say (a missing permission)

    @property
    def keeps_versions(self) -> bool:
        return self in (Versioning.ENABLED, Versioning.SUSPENDED)


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str
    crc64nvme: str | None = None  # the part's CRC64NVME, where the server lists it


# The full-object checksum Ferry asks the server to verify where the endpoint has
# shown it does (transfers/checksums.py). Sent as plain headers it chose, never
# as botocore's aws-chunked trailer (see the DESIGN's facts).
CRC64NVME: Final = "CRC64NVME"


def _crc_headers(crc64nvme: str | None) -> dict[str, Any]:
    """A write's CRC64NVME, sent by Ferry itself: with the header present botocore
    computes none and frames nothing (no aws-chunked body)."""
    if crc64nvme is None:
        return {}
    return {"ChecksumAlgorithm": CRC64NVME, "ChecksumCRC64NVME": crc64nvme}


def _answered_crc(response: Mapping[str, Any]) -> str | None:
    value = response.get("ChecksumCRC64NVME")
    return str(value) if value else None


@dataclass(frozen=True)
class MultipartUploadInfo:
    key: str
    upload_id: str
    initiated: datetime


def md5_base64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def multipart_etag(part_md5s: list[bytes]) -> str:
    """The ETag S3 gives a multipart object: MD5 of the part MD5s, dash, count."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def is_aws_endpoint(endpoint_url: str | None) -> bool:
    return endpoint_url is None or ".amazonaws.com" in endpoint_url


def endpoint_id(endpoint_url: str | None) -> str:
    """The server a bucket name belongs to: "aws" for AWS S3 (names are global
    there), else the endpoint's scheme, host and port, lowercased."""
    if is_aws_endpoint(endpoint_url):
        return "aws"
    assert endpoint_url is not None
    parts = urlsplit(endpoint_url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


def _addressing_style(profile: Profile) -> str | None:
    """botocore's addressing_style for the profile; None leaves botocore's choice
    (virtual-hosted where the bucket name allows it), which is AWS's own."""
    style = profile.addressing_style
    if style is Addressing.AUTO:
        return None if is_aws_endpoint(profile.endpoint_url) else "path"
    return str(style.value)


# Every request that creates an object: one hook gives each the profile's
# encryption, so no write (a repair's copy, the write probe) goes without it.
_WRITES = ("PutObject", "CreateMultipartUpload", "CopyObject")
# SSE-C: every request that writes or reads an object's bytes or metadata
# carries the key (AWS and SeaweedFS refuse a HEAD or GET without it); a copy
# carries it for its source too.
_SSE_C_REQUESTS = (
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "HeadObject",
    "GetObject",
    "CopyObject",
    "UploadPartCopy",
)
_SSE_C_SOURCES = ("CopyObject", "UploadPartCopy")
# Requests that read an object with the key: a 400 or 403 is the key's doing.
_READS = frozenset({"HeadObject", "GetObject", "CopyObject", "UploadPartCopy"})


def _customer_key_headers(key: bytes, prefix: str) -> dict[str, str]:
    """The SSE-C parameters as botocore sends them: the key and its MD5 in base64,
    so botocore's own handler (which would encode a raw key) leaves them as they are."""
    return {
        f"{prefix}Algorithm": "AES256",
        f"{prefix}Key": base64.b64encode(key).decode("ascii"),
        f"{prefix}KeyMD5": md5_base64(key),
    }


def _ask_for_encryption(client: S3Client, profile: Profile, customer_key: bytes | None) -> None:
    if profile.encryption is Encryption.SSE_C:
        _send_customer_key(client, profile, customer_key)
        return
    if profile.encryption is Encryption.BUCKET_DEFAULT:
        return
    wanted: dict[str, str] = {"ServerSideEncryption": profile.encryption.value}
    if profile.sse_kms_key_id:
        wanted["SSEKMSKeyId"] = profile.sse_kms_key_id

    def add_encryption(params: dict[str, Any], **_: Any) -> None:
        for name, value in wanted.items():
            params.setdefault(name, value)

    for operation in _WRITES:
        client.meta.events.register(f"before-parameter-build.s3.{operation}", add_encryption)


def _send_customer_key(client: S3Client, profile: Profile, key: bytes | None) -> None:
    if key is None:
        raise ConfigError(
            missing_customer_key(profile), title="No customer key", cause=ErrorCause.CREDENTIALS
        )
    own = _customer_key_headers(key, "SSECustomer")
    source = _customer_key_headers(key, "CopySourceSSECustomer")

    def add_key(params: dict[str, Any], **_: Any) -> None:
        for name, value in own.items():
            params.setdefault(name, value)

    def add_source_key(params: dict[str, Any], **_: Any) -> None:
        for name, value in source.items():
            params.setdefault(name, value)

    for operation in _SSE_C_REQUESTS:
        client.meta.events.register(f"before-parameter-build.s3.{operation}", add_key)
    for operation in _SSE_C_SOURCES:
        client.meta.events.register(f"before-parameter-build.s3.{operation}", add_source_key)


def _condition_headers(condition: WriteCondition | None) -> dict[str, Any]:
    if condition is None:
        return {}
    if condition.replacing is None:
        return {"IfNoneMatch": "*"}
    return {"IfMatch": f'"{condition.replacing}"'}


def _encryption(response: Mapping[str, Any]) -> str | None:
    """The server-side encryption an answer names; SSE-C as "SSE-C"."""
    if response.get("SSECustomerAlgorithm"):
        return "SSE-C"
    value = response.get("ServerSideEncryption")
    return str(value) if value else None


class _SendingBody:
    """A request body that tells how much of it the connection has taken.

    botocore reads a readable body in blocks as it sends it (urllib3: 16 KiB,
    each handed to the socket before the next read), so when a read begins,
    every byte before it has been taken by the connection, and the empty read
    that ends the body says all of it was. ``sent`` gets that count at each
    read; a rewind (botocore sending the request again) counts from 0 again.
    Nothing is copied ahead: the caller keeps the bytes unchanged until the
    request returns.
    """

    def __init__(self, data: bytes | bytearray, sent: Callable[[int], None]) -> None:
        self._data = memoryview(data)
        self._position = 0
        self._sent = sent

    def read(self, size: int | None = -1) -> bytes:
        start = self._position
        self._sent(start)
        length = len(self._data)
        end = length if size is None or size < 0 else min(start + size, length)
        self._position = end
        return self._data[start:end].tobytes()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: len(self._data)}
        self._position = min(max(0, base[whence] + offset), len(self._data))
        return self._position

    def tell(self) -> int:
        return self._position


def _body(data: bytes | bytearray, sent: Callable[[int], None] | None) -> bytes:
    """The bytes as botocore is to send them: counted as they go when ``sent`` is given."""
    # botocore takes a bytearray or any readable as a blob; its stubs say bytes.
    return cast(bytes, data if sent is None else _SendingBody(data, sent))


# What a server answers to checksum headers it does not take: its "no", an answer
# to remember (any other refusal says nothing of checksums).
_CHECKSUM_REFUSALS = frozenset(
    {"InvalidRequest", "InvalidArgument", "NotImplemented", "BadRequest", "400", "501"}
)


def _without_expect(model: Any, params: dict[str, Any], **_kwargs: Any) -> None:
    """A part or a whole file goes without "Expect: 100-continue", which botocore adds
    to any readable body (Ferry's bodies are readable so that progress and the
    bandwidth limit follow the bytes): they were always sent so (bytes bodies),
    without a round trip more each (30 ms a small file at work), or a second's
    wait where a server or proxy does not answer it."""
    if model.name in ("UploadPart", "PutObject"):
        params["headers"].pop("Expect", None)


def _listed(item: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        key=item["Key"],
        size=int(item["Size"]),
        etag=unquoted_etag(item.get("ETag", "")),
        last_modified=item["LastModified"],
    )


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
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.endpoint_label = endpoint_label
        # What the catalog records as this server: bucket names are unique per server.
        self.endpoint_id = server or endpoint_id(client.meta.endpoint_url)
        # Named in a "sign in again" message when refreshed credentials expire.
        self.profile_name = profile_name
        self.aws_profile = aws_profile
        # S3's limit for one CopyObject, and the part size of larger copies.
        self.copy_limit = COPY_LIMIT
        self.copy_part_size = COPY_PART_SIZE
        # Objects are encrypted with the profile's SSE-C key (sent on every request).
        self.customer_key_sent = False
        read_listings_lean(client.meta.events)
        # Told when a write's condition headers are refused (501): what the
        # endpoint was found to honour is no longer so.
        self.on_conditions_refused: Callable[[], None] | None = None
        # Bucket times are judged on the server's clock, learnt from every answer.
        self.clock = ServerClock()
        client.meta.events.register("after-call.s3", self.clock.on_answer)
        # After botocore's own handler that adds the header (same event, registered later).
        client.meta.events.register_last("before-call.s3", _without_expect)

    @classmethod
    def connect(
        cls, profile: Profile, credentials: S3Credentials, *, max_connections: int = 10
    ) -> S3Storage:
        options: dict[str, Any] = {
            "max_pool_connections": max_connections,
            "connect_timeout": 10,
            "read_timeout": 60,
            "retries": {"mode": "standard", "max_attempts": 3},
            # A fixed User-Agent: botocore otherwise builds its structured one
            # twice per request, about 75 us of CPU, 2 % of a small file's.
            "user_agent": _USER_AGENT,
        }
        if not is_aws_endpoint(profile.endpoint_url):
            # botocore >= 1.36 sends CRC checksums by default, which several
            # S3-compatible servers reject; we send Content-MD5 ourselves.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        style = _addressing_style(profile)
        if style is not None:
            options.setdefault("s3", {})["addressing_style"] = style
        if profile.endpoint_url is not None and profile.endpoint_url.startswith("http:"):
            # botocore signs a body's SHA-256 over plain http: another pass over
            # every byte besides Ferry's own hashes. The body is guarded by
            # Content-MD5, which the server checks, so it goes as UNSIGNED-PAYLOAD
            # (the headers are still signed). A before-sign hook cannot do this:
            # S3's signer overwrites the header.
            options.setdefault("s3", {})["payload_signing_enabled"] = False
        if profile.proxy_url is not None:
            options["proxies"] = {"http": profile.proxy_url, "https": profile.proxy_url}
        session = credentials.session
        # A session of the AWS configuration finds (and refreshes) its own keys.
        own_keys = session is None
        client = (session or boto3.session.Session()).client(
            "s3",
            endpoint_url=profile.endpoint_url,
            region_name=profile.region,
            aws_access_key_id=credentials.access_key_id if own_keys else None,
            aws_secret_access_key=credentials.secret_access_key if own_keys else None,
            aws_session_token=credentials.session_token if own_keys else None,
            config=Config(**options),
        )
        _ask_for_encryption(client, profile, credentials.sse_customer_key)
        storage = cls(
            client,
            profile.bucket,
            profile.endpoint_url or "AWS S3",
            profile_name=profile.name,
            aws_profile=profile.aws_profile,
            # The sandbox moves to other ports when its own are taken: still one server.
            server=SANDBOX_SERVER if profile.sandbox else None,
        )
        storage.customer_key_sent = profile.encryption is Encryption.SSE_C
        return storage

    @contextlib.contextmanager
    def _translate(self, action: str, key: str | None = None) -> Iterator[None]:
        what = f"{action} {key!r}" if key is not None else action
        try:
            yield
        except ClientError as exc:
            raise self._from_client_error(exc, what, key) from exc
        except ProxyConnectionError as exc:
            if "407" in str(exc.kwargs.get("error", "")):
                raise self._proxy_sign_in(what) from exc
            raise StorageError(
                f"The proxy {exc.kwargs.get('proxy_url', '')} did not let Ferry through to "
                f"{self.endpoint_label} to {what}. Check the proxy setting (profile or "
                "HTTPS_PROXY) and that the proxy is running.",
                kind=StorageErrorKind.TRANSIENT,
                code="ProxyConnectionError",
                title="Storage unreachable",
                cause=ErrorCause.NETWORK,
            ) from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise StorageError(
                f"Cannot reach {self.endpoint_label} to {what}: {type(exc).__name__}. "
                "Check the network and the profile's endpoint.",
                kind=StorageErrorKind.TRANSIENT,
                code=type(exc).__name__,
                title="Storage unreachable",
                cause=ErrorCause.NETWORK,
            ) from exc
        except (ConnectionClosedError, ReadTimeoutError) as exc:
            raise StorageError(
                f"The connection to {self.endpoint_label} broke during {what}.",
                kind=StorageErrorKind.TRANSIENT,
                code=type(exc).__name__,
            ) from exc
        except NoCredentialsError:
            raise StorageError(
                f"No S3 credentials were found to {what}. Store a secret with "
                "`ferry profile add` or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.",
                kind=StorageErrorKind.PERMANENT,
                code="NoCredentials",
                title="No credentials",
                cause=ErrorCause.CREDENTIALS,
            ) from None
        except (SSOError, TokenRetrievalError, CredentialRetrievalError) as exc:
            # Refreshing credentials failed mid-run: only a person can fix it.
            problem = aws_credential_error(exc, self.profile_name, self.aws_profile)
            raise StorageError(
                problem.message,
                kind=StorageErrorKind.PERMANENT,
                code=type(exc).__name__,
                title=problem.title,
                cause=problem.cause,
            ) from exc
        except BotoCoreError as exc:
            # Connection resets surface as various BotoCoreError subclasses.
            raise StorageError(
                f"Talking to {self.endpoint_label} failed during {what}: {type(exc).__name__}.",
                kind=StorageErrorKind.TRANSIENT,
                code=type(exc).__name__,
            ) from exc

    def _proxy_sign_in(self, what: str) -> StorageError:
        return StorageError(
            f"The proxy between Ferry and {self.endpoint_label} asks for a user name and "
            f"password (407) to {what}, and Ferry keeps none for a proxy. Use a proxy that "
            "lets this computer through, or start Ferry with HTTPS_PROXY (and HTTP_PROXY) "
            "set to http://USER:PASSWORD@HOST:PORT.",
            kind=StorageErrorKind.PERMANENT,
            code="407",
            title="Proxy sign-in needed",
            cause=ErrorCause.CREDENTIALS,
        )

    def _from_client_error(self, exc: ClientError, what: str, key: str | None) -> StorageError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        restart = self._upload_to_restart(code, what, key) or self._customer_key_refused(
            exc.operation_name, code or str(status), status, what, key
        )
        if restart is not None:
            return restart
        if status == 407:
            return self._proxy_sign_in(what)
        if code == "RequestTimeTooSkewed":
            # A 403, but no permission is missing: this computer's clock is off.
            off = describe_offset(self.clock.offset) if self.clock.offset else "too far from"
            return StorageError(
                f"This computer's clock is {off} the clock of {self.endpoint_label}, more "
                f"than S3 allows (15 minutes), so the server refused to {what}. Set this "
                "computer's date and time right (turn on automatic time); Ferry tries again "
                "by itself.",
                kind=StorageErrorKind.TRANSIENT,
                code=code,
                title="This computer's clock is wrong",
                cause=ErrorCause.OTHER,
            )
        if code == "NoSuchBucket":
            return StorageError(
                f"Bucket {self.bucket!r} does not exist at {self.endpoint_label}. "
                "Fix the bucket name in the profile or create the bucket.",
                kind=StorageErrorKind.PERMANENT,
                code=code,
                title="No such bucket",
            )
        if code == "PreconditionFailed" or status == 412:
            return StorageError(
                f"{key!r} in bucket {self.bucket!r} changed since Ferry looked at it, so "
                f"Ferry did not {what}.",
                kind=StorageErrorKind.PRECONDITION_FAILED,
                code=code or "412",
                title="Changed meanwhile",
            )
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return StorageError(
                f"{key!r} is not in bucket {self.bucket!r}.",
                kind=StorageErrorKind.NOT_FOUND,
                code=code or "404",
            )
        if code in CREDENTIAL_CODES:
            return StorageError(
                f"{self.endpoint_label} refused the credentials ({code}) to {what}. "
                "Check the access key id and the secret stored for this profile.",
                kind=StorageErrorKind.PERMANENT,
                code=code,
                title="Credentials refused",
                cause=ErrorCause.CREDENTIALS,
            )
        refusal = self._refusal(code, status, str(error.get("Message", "")), what)
        if refusal is not None:
            return refusal
        if code in ("BadDigest", "InvalidDigest"):
            return StorageError(
                f"The server received other bytes than Ferry sent for {key!r} ({code}); "
                "the part is sent again.",
                kind=StorageErrorKind.BAD_DIGEST,
                code=code,
            )
        if code in ("NotImplemented", "MethodNotAllowed") or status in (501, 405):
            return StorageError(
                f"{self.endpoint_label} does not support what Ferry asked to {what} "
                f"({code or status}).",
                kind=StorageErrorKind.NOT_SUPPORTED,
                code=code or str(status),
                title="Not supported by the server",
            )
        if code in TRANSIENT_CODES or status >= 500:
            return StorageError(
                f"{self.endpoint_label} had a temporary failure ({code or status}) during {what}.",
                kind=StorageErrorKind.TRANSIENT,
                code=code or str(status),
            )
        message = str(error.get("Message", "")) or "no details"
        return StorageError(
            f"{self.endpoint_label} refused to {what}: {code} ({message}).",
            kind=StorageErrorKind.PERMANENT,
            code=code,
        )

    def _customer_key_refused(
        self, operation: str, code: str, status: int, what: str, key: str | None
    ) -> StorageError | None:
        """A read refused under SSE-C (400 without the right key, 403 with another:
        AWS, SeaweedFS): said as what it almost always is."""
        if not self.customer_key_sent or status not in (400, 403) or operation not in _READS:
            return None
        if code in CREDENTIAL_CODES or code == "RequestTimeTooSkewed":
            return None
        return StorageError(
            f"{self.endpoint_label} refused to {what} ({code}): the object {key!r} is "
            "encrypted with a customer key this profile does not have (SSE-C), or not with "
            "a customer key at all. Check that the key in the keyring is the one the object "
            f"was written with (`ferry profile show {self.profile_name}`); an object whose "
            "key is lost cannot be read by anyone.",
            kind=StorageErrorKind.PERMANENT,
            code=code,
            title="Wrong customer key",
            cause=ErrorCause.CREDENTIALS,
        )

    def _upload_to_restart(self, code: str, what: str, key: str | None) -> StorageError | None:
        """An answer that means: start this multipart upload again (kind NO_SUCH_UPLOAD)."""
        if code == "NoSuchUpload":
            message = (
                f"The server no longer knows the multipart upload for {key!r} (expired or "
                "aborted); Ferry restarts that upload."
                if key is not None
                else f"{self.endpoint_label} answered NoSuchUpload when asked to {what}."
            )
            return StorageError(message, kind=StorageErrorKind.NO_SUCH_UPLOAD, code=code)
        if code == "ConditionalRequestConflict":
            # AWS: another conditional write to the key was under way as this
            # Complete came. The parts cannot be joined now: the upload starts again.
            return StorageError(
                f"{self.endpoint_label} could not {what} (409 ConditionalRequestConflict): "
                "another write to the same key was under way. Ferry starts this upload again "
                "from the beginning.",
                kind=StorageErrorKind.NO_SUCH_UPLOAD,
                code=code,
                title="Upload started again",
            )
        return None

    def _refusal(self, code: str, status: int, said: str, what: str) -> StorageError | None:
        """A 403-like refusal in the server's own words: a 403 is not always a
        missing permission (a KMS key policy, an Object Lock, a bucket policy's
        condition, a server that wants virtual-hosted addressing)."""
        if code in _WANTS_VIRTUAL_HOSTS or "virtual host" in said.lower():
            return StorageError(
                f"{self.endpoint_label} refused to {what} in bucket {self.bucket!r}: {code}: "
                f"{said or 'no details'}. This server wants the bucket in the host name: set "
                "the profile's addressing to 'virtual' (`ferry profile add NAME --addressing "
                "virtual …`).",
                kind=StorageErrorKind.PERMANENT,
                code=code or str(status),
                title="The server wants another addressing",
            )
        if code in ("AccessDenied", "403", "AllAccessDisabled") or status == 403:
            return StorageError(
                f"Access denied by {self.endpoint_label} to {what} in bucket {self.bucket!r}"
                + (f" (the server said: {code or status}: {said})" if said else "")
                + ". Ask for write permission on the bucket or fix the profile.",
                kind=StorageErrorKind.PERMANENT,
                code=code or "403",
                title="Access denied",
                cause=ErrorCause.CREDENTIALS,
            )
        return None

    # -- bucket -------------------------------------------------------------

    def check_bucket(self) -> None:
        # A listing, not HEAD: HEAD errors carry no body, so a wrong secret
        # and a missing permission would look the same.
        with self._translate("list the bucket"):
            self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)

    def server_now(self) -> datetime:
        """The server's time now (asked with a cheap request if no answer came yet)."""
        if self.clock.offset is None:
            self.answers()
        return self.clock.now()

    def answers(self) -> bool:
        """A cheap probe: does the endpoint answer at all (any HTTP status counts)?"""
        try:
            with self._translate("reach the server"):
                self.client.head_bucket(Bucket=self.bucket)
        except StorageError as exc:
            return exc.kind is not StorageErrorKind.TRANSIENT
        return True

    def server_software(self) -> str:
        """What the server says it is (its HTTP Server header), for the About dialog."""
        with self._translate("ask the server what it is"):
            response = self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return str(headers.get("server") or "not said by the server")

    def create_bucket_if_missing(self) -> None:
        with self._translate("create the bucket"):
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
            with self._translate("read the Object Lock setting of the bucket"):
                response = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except StorageError:
            return False
        return response.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def probe_write(self, prefix: str) -> WriteProtection:
        """Write a tiny object under the prefix, write it again on the condition that
        the key is empty, then delete it: proves write access, and says how the
        server keeps Ferry from writing over another program's object. Where the
        PUT's condition is honoured, a one-part multipart upload of the same tiny
        object is completed on that condition too (Ceph RGW 16.2 honours it on
        PUT and ignores it on Complete). In a bucket that keeps versions each
        version it made is deleted by its id, so the probe leaves neither bytes
        nor a delete marker behind."""
        key = f"{prefix.strip('/')}/.ferry-probe-{uuid.uuid4().hex}".lstrip("/")
        body = b"ferry write probe"
        with self._translate("write a test object", key):
            first = self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentMD5=md5_base64(body)
            )
        made = [version_of(first.get("VersionId"))]
        try:
            with self._translate("write a test object again", key):
                again = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentMD5=md5_base64(body),
                    **_condition_headers(WriteCondition(None)),
                )
            made.append(version_of(again.get("VersionId")))
            protection = WriteProtection.CONDITIONS_IGNORED  # written over an existing key
        except StorageError as exc:
            if exc.kind is StorageErrorKind.PRECONDITION_FAILED:
                protection = self._probe_complete(key, body, made)
            elif exc.kind is StorageErrorKind.NOT_SUPPORTED:
                protection = WriteProtection.LOOK_BEFORE_WRITE
            else:
                raise
        finally:
            self._delete_probe(key, made)
        return protection

    def _probe_complete(self, key: str, body: bytes, made: list[str | None]) -> WriteProtection:
        """A one-part multipart upload over the probe's existing object, completed on
        If-None-Match ``*``: refused (412), the condition holds on Complete too;
        completed, or the header refused there (501), each Complete is looked at.
        A version it made joins ``made``; an upload left open is aborted."""
        with self._translate("start a test upload", key):
            upload_id: str | None = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key
            )["UploadId"]
        assert upload_id is not None
        try:
            with self._translate("upload a test part", key):
                part = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=1,
                    Body=body,
                    ContentMD5=md5_base64(body),
                )
            try:
                with self._translate("finish a test upload", key):
                    done = self.client.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
                        **_condition_headers(WriteCondition(None)),
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
                    self.abort_multipart_upload(key, upload_id)

    def _delete_probe(self, key: str, made: list[str | None]) -> None:
        """The probe's key is its own (a random name): its versions go by id, no guard."""
        with self._translate("delete the test object", key):
            if None in made:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            for version_id in made:
                if version_id is not None:
                    self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)

    def probe_checksums(self, prefix: str) -> bool:
        """Does the server keep and answer CRC64NVME full-object checksums? A tiny
        object is PUT with its CRC64NVME, then sent again as a one-part upload
        created for CRC64NVME (FULL_OBJECT) and completed with the object's
        checksum; each must be read back (HEAD with checksum mode) with exactly
        that checksum. A refusal (400, 501) or an answer without it: False. The
        probe's object (each version) is deleted; an upload left open aborted."""
        key = f"{prefix.strip('/')}/.ferry-probe-checksums-{uuid.uuid4().hex}".lstrip("/")
        body = b"ferry checksum probe"
        crc = crc64nvme_base64(crc64nvme(body))
        made: list[str | None] = []
        upload_id: str | None = None
        try:
            with self._translate("write a test object with a checksum", key):
                put = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentMD5=md5_base64(body),
                    **_crc_headers(crc),
                )
            made.append(version_of(put.get("VersionId")))
            found = self.head_object(key, checksums=True)
            if found is None or found.crc64nvme != crc:
                return False
            with self._translate("start a test upload with a checksum", key):
                upload_id = self.client.create_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    ChecksumAlgorithm=CRC64NVME,
                    ChecksumType="FULL_OBJECT",
                )["UploadId"]
            with self._translate("upload a test part with a checksum", key):
                part = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=1,
                    Body=body,
                    ContentMD5=md5_base64(body),
                    **_crc_headers(crc),
                )
            with self._translate("finish a test upload with a checksum", key):
                done = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
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
            found = self.head_object(key, checksums=True)
            return found is not None and found.crc64nvme == crc
        except StorageError as exc:
            if exc.kind in (StorageErrorKind.TRANSIENT, StorageErrorKind.BAD_DIGEST):
                # A body hurt on the way (its Content-MD5 refused) says nothing of
                # checksums: found out at the next probe, not remembered as "no".
                raise StorageError(
                    exc.message, kind=StorageErrorKind.TRANSIENT, code=exc.code
                ) from exc
            if exc.kind is StorageErrorKind.NOT_SUPPORTED or exc.code in _CHECKSUM_REFUSALS:
                log.info("%s does not keep CRC64NVME checksums: %s", self.endpoint_label, exc.code)
                return False
            # Denied, no such bucket, a wrong key: nothing learnt of checksums, so
            # nothing remembered (the caller probes again in a later run).
            raise
        finally:
            if upload_id is not None:
                with contextlib.suppress(StorageError):
                    self.abort_multipart_upload(key, upload_id)
            if made:
                self._delete_probe(key, made)

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
        response = self._conditional(
            "upload",
            key,
            condition,
            lambda extra: self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=_body(body, sent),  # each request from the first byte
                ContentMD5=md5_b64,  # the caller hashed these bytes as it read them
                Metadata=dict(metadata),
                ContentType=content_type,
                **_crc_headers(crc64nvme),
                **extra,
            ),
        )
        return WriteAnswer(
            unquoted_etag(response["ETag"]),
            _encryption(response),
            version_of(response.get("VersionId")),
            _answered_crc(response),
        )

    def _conditional(
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
            with self._translate(what, key):
                return request(_condition_headers(condition))
        except StorageError as exc:
            if condition is None:
                raise
            if exc.kind is StorageErrorKind.NOT_SUPPORTED:
                if self.on_conditions_refused is not None:
                    self.on_conditions_refused()  # what was learnt of this endpoint is stale
                self._require_by_head(key, condition, what)
                with self._translate(what, key):
                    return request({})
            vanished = condition.replacing is not None and self.head_object(key) is None
            if exc.kind is not StorageErrorKind.PRECONDITION_FAILED or not vanished:
                raise
        with self._translate(what, key):
            return request(_condition_headers(WriteCondition(None)))

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
            with self._translate("inspect", key):
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
            encryption=_encryption(response),
            version_id=version_of(response.get("VersionId")),
            locked_until=response.get("ObjectLockRetainUntilDate"),
            legal_hold=response.get("ObjectLockLegalHoldStatus") == "ON",
            crc64nvme=_answered_crc(response),
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
            with self._translate("delete", key):
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
            with self._translate("delete", key):  # the header refused (501), or proven above
                self.client.delete_object(Bucket=self.bucket, Key=key)

    def _still_holds(self, key: str, etag: str | None, size: int, sha256: str | None) -> bool:
        """Does a HEAD of the key show exactly this object (ETag, size, SHA-256 metadata)?"""
        found = self.head_object(key)
        return found is not None and (found.etag, found.size, found.sha256) == (etag, size, sha256)

    def delete_version(self, key: str, version_id: str, *, etag: str, file: str = "") -> bool:
        """Remove one version of the key, its bytes with it (no delete marker is made).

        Only the version that a HEAD of it shows with ``etag`` (Ferry's own, as
        its catalog row recorded it) is deleted; False when that version is not
        there (gone already). A version is immutable, so no If-Match is needed
        on the delete itself; the HEAD guards against a server that ignores the
        version id and would delete the key's current object, perhaps another
        program's. A refusal by the bucket's rules (Object Lock, MFA delete)
        says so, naming ``file`` (the original file name) and what to do.
        """
        found = self.head_object(key, version_id=version_id)
        if found is None:
            return False
        if found.version_id != version_id or found.etag != etag:
            raise StorageError(
                f"Version {version_id} of {key!r} in bucket {self.bucket!r} is not the one Ferry "
                f"wrote (the server showed ETag {found.etag}, version {found.version_id}), so "
                "Ferry deleted nothing. Look at the key's versions with another tool.",
                kind=StorageErrorKind.PRECONDITION_FAILED,
                code="VersionMismatch",
                title="Not Ferry's version",
                cause=ErrorCause.CONFLICT,
            )
        what = f"delete version {version_id} of"
        try:
            with self._translate(what, key):
                self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        except StorageError as exc:
            raise self._kept_by_rules(exc, found, file) or exc from exc
        return True

    def _kept_by_rules(
        self, exc: StorageError, found: ObjectInfo, file: str
    ) -> StorageError | None:
        """The refusal of a version delete by Object Lock or MFA delete, said plainly:
        what keeps it (the version's HEAD shows a lock and until when), and what to do."""
        if exc.code not in ("AccessDenied", "InvalidRequest", "403", "400"):
            return None
        said = exc.message.lower()
        then = "then run `ferry check --repair`, which removes it"
        if found.legal_hold:
            reason = (
                "a legal hold of the bucket's Object Lock keeps it. It can go once the hold "
                f"is lifted (ask the bucket's administrator); {then}"
            )
        elif found.locked_until is not None and found.locked_until > self.server_now():
            reason = (
                "the bucket's Object Lock keeps it until "
                f"{found.locked_until.astimezone(UTC):%Y-%m-%d %H:%M} UTC. It can go after "
                f"that: {then}"
            )
        elif any(word in said for word in _MFA_WORDS):
            reason = (
                "the bucket has MFA delete turned on: only its owner, with a one-time code, "
                "may delete a version. Ask the bucket's owner to delete it"
            )
        elif any(word in said for word in _LOCK_WORDS) or exc.code == "InvalidRequest":
            reason = (
                "the bucket's Object Lock keeps it (a retention period or a legal hold). "
                f"It can go once the lock expires or the hold is lifted: {then}, or ask the "
                "bucket's administrator"
            )
        else:
            return None
        key, version_id = found.key, found.version_id
        named = file and file != key.rsplit("/", 1)[-1]
        of_file = f" (file {file})" if named else ""
        return StorageError(
            f"{self.endpoint_label} refused to delete version {version_id} of {key!r}{of_file} "
            f"in bucket {self.bucket!r}: {reason}. Ferry's record of the file is removed; "
            f"its bytes stay in the bucket until then. (The server answered {exc.code}.)",
            kind=StorageErrorKind.PERMANENT,
            code=exc.code,
            title=KEPT_BY_RULES,
            cause=ErrorCause.SERVER,
        )

    def versioning(self) -> Versioning:
        """Does the bucket keep versions? UNKNOWN where the server would not say."""
        try:
            with self._translate("ask whether the bucket keeps versions"):
                response = self.client.get_bucket_versioning(Bucket=self.bucket)
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
        self, prefix: str = "", page_size: int = 1000
    ) -> Iterator[list[ObjectVersion]]:
        """The versions under the prefix (delete markers left out), page by page."""
        key_marker, version_marker = "", ""
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": prefix,
                "MaxKeys": page_size,
            }
            if key_marker:
                kwargs["KeyMarker"] = key_marker
                if version_marker:
                    kwargs["VersionIdMarker"] = version_marker
            with self._translate("list the versions in the bucket"):
                page = self.client.list_object_versions(**kwargs)
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
                    f"{self.endpoint_label} listed the same versions again after "
                    f"{next_key!r}; the check stopped rather than loop.",
                    kind=StorageErrorKind.PERMANENT,
                    code="ListingLoop",
                )
            key_marker, version_marker = next_key, next_version

    def read_sha256(self, key: str, *, if_match: str) -> tuple[str, int]:
        """SHA-256 and size of the object's bytes, read while it keeps the ETag ``if_match``."""
        digest = hashlib.sha256()
        size = 0
        with self._translate("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=f'"{if_match}"')
            body = response["Body"]
            try:
                while chunk := body.read(_READ_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
            finally:
                body.close()
        return digest.hexdigest(), size

    def copy_object(
        self,
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
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": source_key}
        source_condition = f'"{source_etag}"'
        if size <= self.copy_limit:
            response = self._conditional(
                f"copy {source_key!r} to",
                key,
                condition,
                lambda extra: self.client.copy_object(
                    Bucket=self.bucket,
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
                _encryption(response),
                version_of(response.get("VersionId")),
            )
        upload_id = self.create_multipart_upload(key, metadata=metadata, content_type=content_type)
        try:
            parts = []
            part_size = self.copy_part_size
            for number, offset in enumerate(range(0, size, part_size), start=1):
                last = min(offset + part_size, size) - 1
                with self._translate(f"copy part {number} of {source_key!r} to", key):
                    part = self.client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource=source,
                        CopySourceIfMatch=source_condition,
                        CopySourceRange=f"bytes={offset}-{last}",
                    )
                parts.append((number, unquoted_etag(part["CopyPartResult"]["ETag"])))
            return self.complete_multipart_upload(key, upload_id, parts, condition=condition)
        except BaseException:
            with contextlib.suppress(StorageError):
                self.abort_multipart_upload(key, upload_id)
            raise

    def iter_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under the prefix, page by page, in the server's order."""
        for page in self.iter_object_pages(prefix):
            yield from page

    def iter_object_pages(
        self, prefix: str = "", page_size: int = 1000
    ) -> Iterator[list[ObjectInfo]]:
        """The objects under the prefix as the server pages them."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_size}
            if token:
                kwargs["ContinuationToken"] = token
            with self._translate("list the bucket"):
                page = self.client.list_objects_v2(**kwargs)
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

    # -- multipart ----------------------------------------------------------

    def create_multipart_upload(
        self, key: str, *, metadata: Mapping[str, str], content_type: str, crc64nvme: bool = False
    ) -> str:
        """Start an upload; with ``crc64nvme`` one whose parts carry CRC64NVMEs and whose
        Complete the server verifies against a full-object CRC64NVME."""
        extra: dict[str, Any] = (
            {"ChecksumAlgorithm": CRC64NVME, "ChecksumType": "FULL_OBJECT"} if crc64nvme else {}
        )
        with self._translate("start the upload of", key):
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
        with self._translate(f"upload part {number} of", key):
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=_body(body, sent),
                ContentMD5=md5_b64,
                **_crc_headers(crc64nvme),
            )
        return WriteAnswer(
            unquoted_etag(response["ETag"]),
            _encryption(response),
            crc64nvme=_answered_crc(response),
        )

    def list_parts(self, key: str, upload_id: str) -> Iterator[PartInfo]:
        marker = 0
        while True:
            with self._translate("list the uploaded parts of", key):
                page = self.client.list_parts(
                    Bucket=self.bucket,
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
                    _answered_crc(item),
                )
            next_marker = int(page.get("NextPartNumberMarker", 0) or 0)
            if not page.get("IsTruncated") or not parts or next_marker <= marker:
                return
            marker = next_marker

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
        response = self._conditional(
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
            _encryption(response),
            version_of(response.get("VersionId")),
            _answered_crc(response),
        )

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        try:
            with self._translate("abort the upload of", key):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except StorageError as exc:
            if exc.kind not in (StorageErrorKind.NO_SUCH_UPLOAD, StorageErrorKind.NOT_FOUND):
                raise

    def iter_multipart_uploads(self, prefix: str = "") -> Iterator[MultipartUploadInfo]:
        key_marker, upload_marker = "", ""
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxUploads": 1000}
            if key_marker:
                kwargs["KeyMarker"] = key_marker
                kwargs["UploadIdMarker"] = upload_marker
            with self._translate("list unfinished uploads"):
                page = self.client.list_multipart_uploads(**kwargs)
            for item in page.get("Uploads", []):
                yield MultipartUploadInfo(item["Key"], item["UploadId"], item["Initiated"])
            if not page.get("IsTruncated"):
                return
            key_marker = page.get("NextKeyMarker", "")
            upload_marker = page.get("NextUploadIdMarker", "")
            if not key_marker:
                return
