"""What the S3 client puts on the wire, seen before it is sent."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import boto3
import botocore
from botocore.awsrequest import AWSResponse

from desktop_app import __version__
from desktop_app.core.config import Profile
from desktop_app.core.errors import StorageError
from desktop_app.core.keys import CredentialSource, S3Credentials
from desktop_app.core.storage import S3Storage


class _Answer:
    """A raw body the fake response hands to botocore."""

    def stream(self, **_kwargs: Any) -> Any:
        yield b""


def _sent_headers(endpoint: str) -> dict[str, str]:
    profile = Profile(name="t", bucket="b", catalog_url="sqlite://", endpoint_url=endpoint)
    credentials = S3Credentials("key", "not-a-secret", CredentialSource.ENVIRONMENT)
    storage = S3Storage.connect(profile, credentials)
    seen: dict[str, str] = {}

    def answer(request: Any, **_kwargs: Any) -> AWSResponse:
        seen.update(
            {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        )
        return AWSResponse(request.url, 200, {"ETag": '"x"'}, _Answer())

    storage.client.meta.events.register("before-send.s3.UploadPart", answer)
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
        return AWSResponse(request.url, 403, {"Content-Type": "application/xml"}, _Body(document))

    storage.client.meta.events.register("before-send.s3.PutObject", answer)
    try:
        storage.put_object("k", b"x", metadata={}, md5_b64="")
    except StorageError as exc:
        assert "SecondLevelDomainForbidden: Please use virtual hosted style" in exc.message
        assert exc.title == "Access denied"
    else:
        raise AssertionError("a 403 was taken for success")
