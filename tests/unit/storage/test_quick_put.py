"""A small file's PUT cut from botocore's first (storage/quick_put.py), on moto:
what it keeps of botocore's request, what it refuses to repeat, and that the
files it sends arrive as botocore would have sent them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from desktop_app.core.model.bucket_objects import WriteCondition
from desktop_app.core.model.errors import StorageError, StorageErrorKind
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.storage.crc64 import crc64nvme, crc64nvme_base64
from desktop_app.core.storage.quick_put import read_pattern
from desktop_app.core.storage.wire import md5_base64
from tests.conftest import open_moto_ferry, upload_done

URL = "http://127.0.0.1:8333/bucket/a%20b/%C3%BC~%2Bx"
KEY = "a b/ü~+x"
AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKID/20261203/eu-west-3/s3/aws4_request, "
    "SignedHeaders=content-md5;host, Signature=00"
)


def _botocore_headers(**more: str) -> dict[str, bytes]:
    """A PutObject as botocore prepares it for Ferry (values in bytes, as there)."""
    headers = {
        "Content-MD5": "rtVj7K+0vMVlTFl6QhVHsg==",
        "x-amz-meta-sha256": "ab",
        "If-None-Match": "*",
        "Content-Type": "text/plain",
        "User-Agent": "Ferry/0.1",
        "host": "127.0.0.1:8333",
        "X-Amz-Date": "20261203T162658Z",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "Authorization": AUTHORIZATION,
        "amz-sdk-invocation-id": "3d99",
        "amz-sdk-request": "attempt=1; max=3",
        "Content-Length": "100",
        **more,
    }
    return {name: value.encode() for name, value in headers.items()}


def test_the_pattern_keeps_what_every_put_of_the_run_carries_and_not_the_file_s() -> None:
    pattern = read_pattern(
        URL, _botocore_headers(**{"x-amz-server-side-encryption": "aws:kms"}), KEY
    )
    assert pattern is not None
    assert pattern.url_before_key == "http://127.0.0.1:8333/bucket/"
    assert dict(pattern.kept_headers) == {
        "user-agent": "Ferry/0.1",
        "host": "127.0.0.1:8333",
        "x-amz-server-side-encryption": "aws:kms",
    }
    assert (pattern.region, pattern.service, pattern.with_crc) == ("eu-west-3", "s3", False)


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        # A checksum botocore chose itself (AWS's default CRC32): not one Ferry sends.
        (URL, _botocore_headers(**{"x-amz-checksum-crc32": "AAAAAA=="})),
        # A header nobody here knows: it might be the file's own.
        (URL, _botocore_headers(**{"x-amz-tagging": "a=b"})),
        # The body signed: a PUT by the pattern would have to hash it again.
        (URL, _botocore_headers(**{"x-amz-content-sha256": "e3b0c442" * 8})),
        # Not SigV4 as this module signs.
        (URL, _botocore_headers(Authorization="AWS AKID:signature")),
        # The key not where the pattern puts it.
        (URL + "?x-id=PutObject", _botocore_headers()),
        ("http://127.0.0.1:8333/bucket/other", _botocore_headers()),
    ],
)
def test_a_put_it_cannot_repeat_leaves_every_put_with_botocore(
    url: str, headers: dict[str, bytes]
) -> None:
    assert read_pattern(url, headers, KEY) is None


def _count_botocore_puts(client: Any) -> list[str]:
    """The PutObjects of files botocore itself makes (the quick path makes no API
    call; the endpoint's probes always go through botocore)."""
    calls: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        if ".ferry-probe" not in params["url_path"]:
            calls.append(params["url_path"])

    client.meta.events.register("before-call.s3.PutObject", record)
    return calls


def _headers_sent(client: Any) -> list[dict[str, str]]:
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        if ".ferry-probe" not in request.url:
            sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                         for k, v in request.headers.items()})  # fmt: skip

    client.meta.events.register_first("before-send.s3.PutObject", record)
    return sent


def _stored(key: str) -> tuple[bytes, dict[str, Any]]:
    answer = boto3.client("s3", region_name="us-east-1").get_object(Bucket="unit-bucket", Key=key)
    return answer["Body"].read(), dict(answer)


@pytest.mark.parametrize("sse", ["", "AES256"])
def test_after_botocore_s_first_put_small_files_go_by_the_pattern_and_arrive_whole(
    ferry_env: Environment, tmp_path: Path, sse: str
) -> None:
    with open_moto_ferry(ferry_env, tmp_path, sse=sse) as app:
        botocore_puts = _count_botocore_puts(app.storage.client)
        sent = _headers_sent(app.storage.client)
        files = []
        for n in range(5):
            path = tmp_path / f"smäll file+{n}~.txt"  # the key as botocore encodes it
            path.write_bytes(f"small file {n} ".encode() * (n + 1) * 100)
            files.append((path, upload_done(app, path)))
        assert botocore_puts == ["/sm%C3%A4ll%20file%2B0~.txt"]  # the first, the pattern's
        assert app.storage.quick_put.pattern is not None
        assert len(sent) == 5
        for path, record in files:
            data, answer = _stored(record.key)
            assert hashlib.sha256(data).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
            assert answer["Metadata"]["sha256"] == record.sha256
            assert answer.get("ServerSideEncryption") == (sse or None)
            assert record.etag == hashlib.md5(data).hexdigest()
        # Each PUT asked for the encryption (or for none), signed as botocore signs.
        for headers in sent:
            assert headers.get("x-amz-server-side-encryption") == (sse or None)
            assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDUNIT/")
            assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"


class _Raw:
    """An answer's body, as urllib3 gives it to botocore."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self._body


def _answer_quick_puts(
    ferry: Ferry, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> list[str]:
    """The next PUT sent by the pattern (it carries no botocore invocation id) gets
    this answer instead of moto's; the URLs so answered."""
    answered: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        if "amz-sdk-invocation-id" in request.headers or answered:
            return None
        answered.append(request.url)
        answer_headers = HTTPHeaders()
        for name, value in (headers or {}).items():
            answer_headers[name] = value
        return AWSResponse(request.url, status, answer_headers, _Raw(body))

    events = ferry.storage.client.meta.events
    events.register_first("before-send.s3.PutObject", answer)  # type: ignore[arg-type]  # stubs: handlers return None
    return answered


def _putter(ferry: Ferry) -> Callable[[str, bytes], None]:
    def put(key: str, body: bytes) -> None:
        # With the CRC64NVME Ferry sends where the server verifies it: on AWS's
        # endpoint botocore would add a CRC32 of its own otherwise.
        ferry.storage.put_object(
            key, body, metadata={"sha256": hashlib.sha256(body).hexdigest()},
            md5_b64=md5_base64(body), condition=WriteCondition(None),
            crc64nvme=crc64nvme_base64(crc64nvme(body)),
        )  # fmt: skip

    return put


def test_a_refused_condition_is_the_server_s_verdict_and_the_body_is_not_sent_again(
    moto_ferry: Ferry,
) -> None:
    botocore_puts = _count_botocore_puts(moto_ferry.storage.client)
    sent = _headers_sent(moto_ferry.storage.client)
    put = _putter(moto_ferry)
    put("first", b"taught the pattern")
    put("second", b"by the pattern")
    assert botocore_puts == ["/first"]
    with pytest.raises(StorageError) as refused:
        put("second", b"someone else's bytes over it")  # If-None-Match: * refused (412)
    assert refused.value.kind is StorageErrorKind.PRECONDITION_FAILED
    assert botocore_puts == ["/first"]  # the refusal read as botocore reads it, once
    assert len(sent) == 3
    assert _stored("second")[0] == b"by the pattern"


SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"


def test_a_slow_down_leaves_the_next_puts_to_botocore_s_backoff_and_is_counted(
    moto_ferry: Ferry,
) -> None:
    botocore_puts = _count_botocore_puts(moto_ferry.storage.client)
    put = _putter(moto_ferry)
    put("first", b"taught the pattern")
    answered = _answer_quick_puts(moto_ferry, 503, SLOW_DOWN)
    put("second", b"slowed down")
    put("third", b"in the quiet that follows")
    assert answered[0].endswith("/second")
    assert botocore_puts == ["/first", "/second", "/third"]
    assert moto_ferry.storage.throttled.count == 1
    assert _stored("second")[0] == b"slowed down"
    assert moto_ferry.storage.quick_put.pattern is not None  # a slow-down is no fault of it


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        # Signed for another region (the bucket is elsewhere): botocore finds the way.
        (400, b"<Error><Code>AuthorizationHeaderMalformed</Code></Error>", {}),
        # A 200 that stored nothing: no ETag (a portal or proxy answering), or an error body.
        (200, b"<html>Sign in to the network</html>", {}),
        (200, b"<Error><Code>InternalError</Code></Error>", {"ETag": '"0"'}),
    ],
)
def test_an_answer_that_did_not_store_the_file_sends_it_through_botocore_and_learns_again(
    moto_ferry: Ferry, status: int, body: bytes, headers: dict[str, str]
) -> None:
    botocore_puts = _count_botocore_puts(moto_ferry.storage.client)
    put = _putter(moto_ferry)
    put("first", b"taught the pattern")
    answered = _answer_quick_puts(moto_ferry, status, body, headers)
    put("second", b"stored by botocore")
    put("third", b"by the pattern learnt again")
    assert len(answered) == 1
    assert botocore_puts == ["/first", "/second"]
    assert _stored("second")[0] == b"stored by botocore"
    assert _stored("third")[0] == b"by the pattern learnt again"
