"""The boto3 client for a profile, and the name of the server it talks to.

:func:`make_client` builds the one thread-safe client a profile's
:class:`~desktop_app.core.storage.s3.S3Storage` uses: its timeouts, retries
and connection pool, the addressing style, the proxy, the credentials (or
the AWS configuration's own session), and a hook that gives every write the
profile's encryption (SSE-C: every request that touches an object's bytes
carries the customer key). :func:`endpoint_id` names the server a bucket
belongs to, as the catalog records it.

Promises: no write leaves without the profile's encryption; a profile that
asks for SSE-C without a key is refused (``ConfigError``) before a client
exists; requests are signed by botocore's own SigV4 signers, whatever else
is installed.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import botocore.auth
from botocore.config import Config
from botocore.loaders import JSONFileLoader

from desktop_app import __version__
from desktop_app.core.model.errors import ConfigError, ErrorCause
from desktop_app.core.settings.profiles import Addressing, Encryption, Profile
from desktop_app.core.settings.secrets import S3Credentials, missing_customer_key
from desktop_app.core.storage.wire import md5_base64

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


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


class PlainJSONFiles(JSONFileLoader):
    """botocore's model files, decoded into plain dicts.

    botocore decodes them into OrderedDicts for their order, which every
    dict keeps; building those cost 23 ms of CPU (57 ms against 34 for the
    five files an S3 client reads) at every start of every command that
    talks to S3, of some 100 ms the client takes to make. The same files are
    read from the same search path (``.json``, then ``.json.gz``); only the
    mapping type differs, and botocore's model makes its own ordered maps.
    """

    def load_file(self, file_path: str) -> Any:
        """The decoded JSON (a model: any JSON value) of ``file_path`` + ``.json``
        or ``.json.gz``, the first that exists; None when neither does."""
        if os.path.isfile(file_path + ".json"):
            with open(file_path + ".json", "rb") as plain:
                return json.loads(plain.read().decode("utf-8"))
        if os.path.isfile(file_path + ".json.gz"):
            with gzip.open(file_path + ".json.gz", "rb") as packed:
                return json.loads(packed.read().decode("utf-8"))
        return None


def _read_models_plainly(session: boto3.session.Session) -> None:
    """The session's loader reads model files as :class:`PlainJSONFiles`; a loader
    given another file reader (not botocore's own) keeps it."""
    data_loader = session._session.get_component("data_loader")
    if type(getattr(data_loader, "file_loader", None)) is JSONFileLoader:
        data_loader.file_loader = PlainJSONFiles()


_USER_AGENT = f"Ferry/{__version__} Boto3/{boto3.__version__}"  # boto3 adds Botocore/x
SANDBOX_SERVER = "sandbox"

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


def _config(profile: Profile, max_connections: int) -> Config:
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
    return Config(**options)


def make_client(
    profile: Profile, credentials: S3Credentials, *, max_connections: int = 10
) -> S3Client:
    """The profile's client, its encryption asked for on every write."""
    session = credentials.session
    # A session of the AWS configuration finds (and refreshes) its own keys.
    own_keys = session is None
    session = session or boto3.session.Session()
    _read_models_plainly(session)
    client = session.client(
        "s3",
        endpoint_url=profile.endpoint_url,
        region_name=profile.region,
        aws_access_key_id=credentials.access_key_id if own_keys else None,
        aws_secret_access_key=credentials.secret_access_key if own_keys else None,
        aws_session_token=credentials.session_token if own_keys else None,
        config=_config(profile, max_connections),
    )
    _ask_for_encryption(client, profile, credentials.sse_customer_key)
    return client


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
