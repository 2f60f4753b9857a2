"""SSE-C (#33) on moto, which takes the headers but checks no key (the key
itself is checked on weed mini: tests/integration/storage/test_sse_c.py): which
request carries the key, in which form, and what stays out of files and logs."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
from pathlib import Path
from typing import Any

import boto3
import pytest

from desktop_app.core.model.errors import ConfigError
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.logs import REDACTED, REDACTOR, configure_logging
from desktop_app.core.settings.profiles import Encryption, Profile
from desktop_app.core.settings.secrets import (
    CredentialSource,
    S3Credentials,
    SecretKind,
    SecretStore,
    parse_customer_key,
    resolve_s3_credentials,
)
from desktop_app.core.storage.copies import copy_object
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.etags import EtagMeaning
from tests.conftest import MemoryKeyring, open_moto_ferry

MIB = 1024 * 1024
KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()
KEY_MD5 = base64.b64encode(hashlib.md5(KEY).digest()).decode()


def _headers_by_operation(storage: S3Storage) -> dict[str, list[dict[str, str]]]:
    seen: dict[str, list[dict[str, str]]] = {}

    def record(request: Any, event_name: str, **_: Any) -> None:
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        seen.setdefault(event_name.rsplit(".", 1)[-1], []).append(headers)

    storage.client.meta.events.register_first("before-send.s3", record)
    return seen


def test_sse_c_is_a_profile_setting_spelled_like_the_others() -> None:
    profile = Profile(name="v", bucket="bucket-1", catalog_url="sqlite://", sse="SSE-C")
    profile.validate()
    assert profile.encryption is Encryption.SSE_C
    assert not [name for name in Profile.__dataclass_fields__ if "customer" in name]  # no key here


@pytest.mark.parametrize("given", ["", "abc", base64.b64encode(b"k" * 31).decode(), "!" * 44])
def test_only_the_base64_of_32_bytes_is_a_customer_key(given: str) -> None:
    with pytest.raises(ConfigError, match="base64 of exactly 32 random bytes") as refused:
        parse_customer_key(given)
    if given:
        assert given not in refused.value.message
    assert parse_customer_key(KEY_B64 + "\n") == KEY


def test_the_key_comes_from_the_keyring_beside_the_s3_secret() -> None:
    secrets = SecretStore(MemoryKeyring())
    profile = Profile(
        name="v", bucket="bucket-1", catalog_url="sqlite://", sse="SSE-C", access_key_id="A"
    )
    secrets.set("v", SecretKind.S3_SECRET_KEY, "s3-secret")
    assert resolve_s3_credentials(profile, secrets, {}).sse_customer_key is None
    secrets.set("v", SecretKind.SSE_CUSTOMER_KEY, KEY_B64)
    found = resolve_s3_credentials(profile, secrets, {})
    assert found.sse_customer_key == KEY
    assert KEY_B64 not in repr(found)
    assert str(KEY) not in repr(found)


def test_a_profile_without_its_key_connects_to_nothing() -> None:
    profile = Profile(name="v", bucket="bucket-1", catalog_url="sqlite://", sse="SSE-C")
    credentials = S3Credentials("A", "s", CredentialSource.ENVIRONMENT)
    with pytest.raises(ConfigError, match="holds no customer key"):
        S3Storage.connect(profile, credentials)


def test_an_sse_c_answer_makes_etags_prove_nothing() -> None:
    meaning = EtagMeaning()
    md5 = "0" * 32
    meaning.learn("SSE-C", md5, md5)
    assert not meaning.is_md5("SSE-C")
    assert not meaning.contradicts("f" * 32, md5, "SSE-C")


def test_every_request_that_reads_or_writes_an_object_carries_the_key(
    ferry_env: Environment, tmp_path: Path
) -> None:
    ferry_env.secrets.set("aws", SecretKind.SSE_CUSTOMER_KEY, KEY_B64)
    rng = random.Random(3)
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(rng.randbytes(700))
    large.write_bytes(rng.randbytes(11 * MIB))
    with open_moto_ferry(ferry_env, tmp_path, sse="SSE-C") as app:
        seen = _headers_by_operation(app.storage)
        records = app.upload([small, large])
        assert [r.state for r in records] == [TransferState.DONE, TransferState.DONE]
        attempts = app.attempts([r.id for r in records])
        assert all(len(tries) == 1 for tries in attempts.values())
        head = app.storage.head_object("small.bin")
        assert head is not None
        app.storage.read_sha256("small.bin", if_match=head.etag)
        copy_object(
            app.storage,
            "small.bin",
            "copy.bin",
            source_etag=head.etag,
            size=head.size,
            metadata={},
            content_type="application/octet-stream",
        )
        body = (
            boto3.client("s3", region_name="us-east-1")
            .get_object(Bucket="unit-bucket", Key="large.bin")["Body"]
            .read()
        )
        assert hashlib.sha256(body).digest() == hashlib.sha256(large.read_bytes()).digest()
    wanted = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": KEY_B64,
        "x-amz-server-side-encryption-customer-key-md5": KEY_MD5,
    }
    for operation in (
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "HeadObject",
        "GetObject",
        "CopyObject",
    ):
        assert operation in seen, operation
        for headers in seen[operation]:
            for name, value in wanted.items():
                assert headers.get(name) == value, (operation, name)
            assert "x-amz-server-side-encryption" not in headers, operation
    for headers in seen["CopyObject"]:
        for name, value in wanted.items():
            source = name.replace("x-amz-", "x-amz-copy-source-")
            assert headers.get(source) == value, source
    for listing in ("ListObjectsV2", "ListParts"):
        for headers in seen.get(listing, []):
            assert "x-amz-server-side-encryption-customer-key" not in headers


def test_a_debug_log_holds_no_form_of_the_key(tmp_path: Path) -> None:
    log_file = tmp_path / "ferry.log"
    configure_logging(log_file, stderr_level=None, file_level=logging.DEBUG)
    key = os.urandom(32)
    REDACTOR.add_binary_secret(key)
    log = logging.getLogger("botocore.endpoint")
    log.setLevel(logging.DEBUG)
    try:
        log.debug("params: %s", {"SSECustomerKey": key})
        log.debug(
            "headers: %s",
            {"x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode()},
        )
        log.debug("hex %s", key.hex())
    finally:
        log.setLevel(logging.NOTSET)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    assert text.count(REDACTED) >= 3
    for trace in (base64.b64encode(key).decode(), key.hex(), repr(key)[2:-1]):
        assert trace not in text
