"""What Ferry puts in an S3 request, and reads back from an answer.

The headers Ferry chooses itself (Content-MD5, a write's CRC64NVME, its
If-None-Match / If-Match condition), the request body that tells how much of
it the connection has taken, and what an answer says of the object (its
encryption, its CRC64NVME, a multipart ETag). Nothing here sends a request:
:class:`~desktop_app.core.storage.s3.S3Storage` and the probes do, with these.

Promises: a write's checksum goes as plain headers botocore leaves alone
(never an aws-chunked body); a body is never copied ahead of the connection.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from desktop_app.core.model.bucket_objects import WriteCondition

# The full-object checksum Ferry asks the server to verify where the endpoint has
# shown it does (transfers/checksums.py). Sent as plain headers it chose, never
# as botocore's aws-chunked trailer (see the DESIGN's facts).
CRC64NVME: Final = "CRC64NVME"


def md5_base64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def multipart_etag(part_md5s: list[bytes]) -> str:
    """The ETag S3 gives a multipart object: MD5 of the part MD5s, dash, count."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def crc_headers(crc64nvme: str | None) -> dict[str, Any]:
    """A write's CRC64NVME, sent by Ferry itself: with the header present botocore
    computes none and frames nothing (no aws-chunked body)."""
    if crc64nvme is None:
        return {}
    return {"ChecksumAlgorithm": CRC64NVME, "ChecksumCRC64NVME": crc64nvme}


def answered_crc(response: Mapping[str, Any]) -> str | None:
    """The CRC64NVME an answer (or a listed part) names, base64; None for none."""
    value = response.get("ChecksumCRC64NVME")
    return str(value) if value else None


def condition_headers(condition: WriteCondition | None) -> dict[str, Any]:
    """A write's condition as S3 headers: If-None-Match ``*`` for an empty key,
    If-Match the ETag of the object it may replace."""
    if condition is None:
        return {}
    if condition.replacing is None:
        return {"IfNoneMatch": "*"}
    return {"IfMatch": f'"{condition.replacing}"'}


def answered_encryption(response: Mapping[str, Any]) -> str | None:
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


def request_body(data: bytes | bytearray, sent: Callable[[int], None] | None) -> bytes:
    """The bytes as botocore is to send them: counted as they go when ``sent`` is given."""
    # botocore takes a bytearray or any readable as a blob; its stubs say bytes.
    return cast(bytes, data if sent is None else _SendingBody(data, sent))


def without_expect(model: Any, params: dict[str, Any], **_kwargs: Any) -> None:
    """A part or a whole file goes without "Expect: 100-continue", which botocore adds
    to any readable body (Ferry's bodies are readable so that progress and the
    bandwidth limit follow the bytes): they were always sent so (bytes bodies),
    without a round trip more each (30 ms a small file at work), or a second's
    wait where a server or proxy does not answer it."""
    if model.name in ("UploadPart", "PutObject"):
        params["headers"].pop("Expect", None)
