"""What the S3 client puts on the wire, seen before it is sent."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.loaders import JSONFileLoader

from desktop_app import __version__
from desktop_app.core.model.errors import ConfigError, StorageError
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import CredentialSource, S3Credentials
from desktop_app.core.storage.client import PlainJSONFiles, make_client
from desktop_app.core.storage.s3 import S3Storage


class _Answer:
    """A raw body the fake response hands to botocore."""

    def stream(self, **_kwargs: Any) -> Any:
        yield b""


def _sent_headers(endpoint: str, **settings: Any) -> dict[str, str]:
    profile = Profile(
        name="t", bucket="b", catalog_url="sqlite://", endpoint_url=endpoint, **settings
    )
    credentials = S3Credentials("key", "not-a-secret", CredentialSource.ENVIRONMENT)
    storage = S3Storage.connect(profile, credentials)
    seen: dict[str, str] = {}

    def answer(request: Any, **_kwargs: Any) -> AWSResponse:
        seen.update(
            {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        )
        return AWSResponse(request.url, 200, HTTPHeaders.from_dict({"ETag": '"x"'}), _Answer())

    storage.client.meta.events.register("before-send.s3.UploadPart", answer)  # type: ignore[arg-type]  # stubs: handlers return None
    body = b"p" * 1024
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    storage.upload_part("k", "upload-1", 1, body, md5_b64=md5)
    return seen


def test_over_plain_http_a_body_is_guarded_by_content_md5_not_hashed_for_the_signature() -> None:
    headers = _sent_headers("http://127.0.0.1:1")
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert headers["Content-MD5"]
    assert "Signature=" in headers["Authorization"]


def test_over_https_a_body_with_content_md5_is_not_hashed_either() -> None:
    assert _sent_headers("https://s3.example.test")["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"


def test_requests_name_ferry_and_its_libraries_in_the_user_agent() -> None:
    """A server's access log tells Ferry's requests apart (and botocore's is not rebuilt)."""
    agent = _sent_headers("http://127.0.0.1:1")["User-Agent"]
    assert agent == f"Ferry/{__version__} Boto3/{boto3.__version__} Botocore/{botocore.__version__}"
    assert "ua/2" not in agent  # botocore's structured agent, rebuilt for every request


class _Body:
    """An error document the fake response hands to botocore."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_kwargs: Any) -> Any:
        yield self.data


def test_a_refusal_keeps_the_servers_own_code_and_words() -> None:
    # Aliyun OSS refuses path-style requests with a 403 that is no missing permission.
    profile = Profile(name="t", bucket="b", catalog_url="sqlite://", endpoint_url="http://x:1")
    credentials = S3Credentials("key", "not-a-secret", CredentialSource.ENVIRONMENT)
    storage = S3Storage.connect(profile, credentials)
    document = (
        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SecondLevelDomainForbidden</Code>"
        b"<Message>Please use virtual hosted style to access.</Message></Error>"
    )

    def answer(request: Any, **_kwargs: Any) -> AWSResponse:
        return AWSResponse(
            request.url,
            403,
            HTTPHeaders.from_dict({"Content-Type": "application/xml"}),
            _Body(document),
        )

    storage.client.meta.events.register("before-send.s3.PutObject", answer)  # type: ignore[arg-type]  # stubs: handlers return None
    with pytest.raises(StorageError) as refused:  # not taken for success
        storage.put_object("k", b"x", metadata={}, md5_b64="")
    assert "SecondLevelDomainForbidden: Please use virtual hosted style" in refused.value.message
    assert "--addressing virtual" in refused.value.message  # what to do
    assert refused.value.title == "The server wants another addressing"


def _sent(profile: Profile, operation: str, send: Any) -> tuple[str, dict[str, str]]:
    """The URL and headers of the one request ``send(storage)`` makes, not sent."""
    credentials = S3Credentials("key", "not-a-secret", CredentialSource.ENVIRONMENT)
    storage = S3Storage.connect(profile, credentials)
    seen: dict[str, Any] = {}

    def answer(request: Any, **_kwargs: Any) -> AWSResponse:
        seen["url"] = request.url
        seen["headers"] = {
            k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        document = (
            b"<?xml version='1.0' encoding='UTF-8'?><InitiateMultipartUploadResult>"
            b"<Bucket>bucket-1</Bucket><Key>k</Key><UploadId>u-1</UploadId>"
            b"</InitiateMultipartUploadResult>"
        )
        return AWSResponse(
            request.url, 200, HTTPHeaders.from_dict({"ETag": '"x"'}), _Body(document)
        )

    storage.client.meta.events.register(f"before-send.s3.{operation}", answer)  # type: ignore[arg-type]  # stubs: handlers return None
    send(storage)
    return seen["url"], seen["headers"]


def _put(storage: S3Storage) -> None:
    storage.put_object("k", b"x", metadata={}, md5_b64=base64.b64encode(b"0" * 16).decode())


def _profile(endpoint: str | None, **settings: Any) -> Profile:
    return Profile(
        name="t", bucket="bucket-1", catalog_url="sqlite://", endpoint_url=endpoint, **settings
    )


def test_the_bucket_goes_in_the_path_or_the_host_name_as_the_profile_says() -> None:
    # auto: the host name on AWS (as aws-cli), the path on any other server
    assert _sent(_profile(None), "PutObject", _put)[0].startswith(
        "https://bucket-1.s3.amazonaws.com/k"
    )
    assert _sent(_profile("https://s3.example.test"), "PutObject", _put)[0] == (
        "https://s3.example.test/bucket-1/k"
    )
    assert _sent(_profile("http://127.0.0.1:9"), "PutObject", _put)[0] == (
        "http://127.0.0.1:9/bucket-1/k"
    )
    virtual = _profile("https://oss-eu-central-1.aliyuncs.com", addressing="virtual")
    assert (
        _sent(virtual, "PutObject", _put)[0] == "https://bucket-1.oss-eu-central-1.aliyuncs.com/k"
    )
    path_on_aws = _profile(None, addressing="path")
    assert "/bucket-1/k" in _sent(path_on_aws, "PutObject", _put)[0]


def test_every_write_asks_for_the_profiles_encryption() -> None:
    kms = _profile("https://s3.example.test", sse="aws:kms", sse_kms_key_id="alias/ferry")

    def start(storage: S3Storage) -> None:
        storage.create_multipart_upload("k", metadata={}, content_type="text/plain")

    for operation, send in (("PutObject", _put), ("CreateMultipartUpload", start)):
        headers = _sent(kms, operation, send)[1]
        assert headers["x-amz-server-side-encryption"] == "aws:kms"
        assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/ferry"
    plain = _sent(_profile("https://s3.example.test"), "PutObject", _put)[1]
    assert "x-amz-server-side-encryption" not in plain  # the bucket's default applies
    aes = _sent(_profile("https://s3.example.test", sse="AES256"), "PutObject", _put)[1]
    assert aes["x-amz-server-side-encryption"] == "AES256"


def test_a_profile_with_unknown_server_options_is_refused_by_name() -> None:
    for settings, words in (
        ({"addressing": "dns"}, "addressing is 'auto', 'path' or 'virtual'"),
        ({"sse": "aws:kms:dsse"}, "sse is 'AES256', 'aws:kms' or 'SSE-C'"),
        ({"sse_kms_key_id": "k"}, "a KMS key id goes with sse = 'aws:kms'"),
    ):
        with pytest.raises(ConfigError) as refused:  # not accepted
            _profile("https://s3.example.test", **settings).validate()
        assert words in refused.value.message


def test_the_clients_models_are_botocores_own_files_read_as_plain_dicts() -> None:
    profile = Profile(
        name="t", bucket="b", catalog_url="sqlite://", endpoint_url="http://127.0.0.1:1"
    )
    credentials = S3Credentials("key", "not-a-secret", CredentialSource.ENVIRONMENT)
    client = make_client(profile, credentials)
    assert isinstance(client._loader.file_loader, PlainJSONFiles)  # type: ignore[attr-defined]
    # The same content, in the same order, as botocore's own reading of each file.
    for name in ("s3/2006-03-01/service-2", "s3/2006-03-01/endpoint-rule-set-1", "endpoints"):
        path = str(Path(botocore.__file__).parent / "data" / name)
        plain, botocores = PlainJSONFiles().load_file(path), JSONFileLoader().load_file(path)
        assert type(plain) is dict
        assert plain == botocores
        assert json.dumps(plain) == json.dumps(botocores)  # order too, all the way down
    assert PlainJSONFiles().load_file("/nonexistent/model") is None
