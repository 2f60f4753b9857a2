"""A small file's PUT without botocore's per-request pipeline, cut from one botocore made.

botocore spends about 2.5 ms of CPU on one PutObject of 64 KiB (a dozen
events, the endpoint's rules, the serialiser, its header objects, the
parser), half a small file's budget under one GIL. Here a PUT is sent from
a *pattern*: the first PutObject of the run goes through botocore, and what
it sent is kept: the URL before the key, and every header that is not the
file's own (the encryption asked for, an SSE-C key, the User-Agent, Host).
The next PUTs carry those same headers with the file's own (Content-MD5,
length, type, metadata, CRC64NVME, condition), are signed by botocore's
SigV4 signer with the client's current credentials, and go through the
client's ``before-send`` event (a stubbed client answers as for botocore)
and its own connection pool (proxies, TLS, timeouts).

Promises:

- nothing is sent this way before botocore sent a PutObject to this bucket in
  this run whose every header this module knows, whose URL is the bucket's
  followed by the key as botocore encodes it, and whose body went unsigned
  (``UNSIGNED-PAYLOAD``: the body is guarded by its Content-MD5); a header it
  does not know keeps every PUT of the run with botocore;
- a PUT is sent this way only with the same kinds of headers the pattern had
  (a CRC64NVME where it had one, none where it had none), so botocore would
  have added nothing else;
- only a 200 is taken from here. Any other answer, or no answer, gives None:
  the caller sends the write through botocore, which retries, counts
  slow-downs and translates errors as always. The object is never judged
  here; an answer lost after the bytes landed is what botocore's own retries
  meet too, and the writer proves such an object its own (its SHA-256);
- every answer's Date feeds the server clock, and every answer but a 200 the
  throttle count, as botocore's events would;
- the answer is read into the fields botocore's parser names (ETag,
  VersionId, encryption, CRC64NVME).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError
from botocore.utils import percent_encode
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

_UNSIGNED: Final = "UNSIGNED-PAYLOAD"
_SIGNATURE_START: Final = "AWS4-HMAC-SHA256 Credential="
# The file's own headers, made anew for every PUT (or left out: botocore's
# invocation id and attempt count are not signed and say nothing to the server).
_OWN: Final = frozenset(
    {
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "content-md5",
        "content-length",
        "content-type",
        "if-none-match",
        "if-match",
        "x-amz-checksum-crc64nvme",
        "x-amz-sdk-checksum-algorithm",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
    }
)
_METADATA: Final = "x-amz-meta-"
# The same for every PUT of a run: copied from the pattern as they were.
_KEPT: Final = frozenset(
    {
        "host",
        "user-agent",
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-context",
        "x-amz-server-side-encryption-bucket-key-enabled",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-server-side-encryption-customer-key",
        "x-amz-server-side-encryption-customer-key-md5",
        "x-amz-storage-class",
    }
)
# What a 200 says, under the names botocore's parser gives them.
_ANSWERED: Final = {
    "ETag": "etag",
    "VersionId": "x-amz-version-id",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "SSECustomerAlgorithm": "x-amz-server-side-encryption-customer-algorithm",
    "ChecksumCRC64NVME": "x-amz-checksum-crc64nvme",
}
# The file's own request parameters, in botocore's names, and their headers.
_HEADER_OF: Final = {
    "ContentMD5": "Content-MD5",
    "ContentType": "Content-Type",
    "IfNoneMatch": "If-None-Match",
    "IfMatch": "If-Match",
    "ChecksumAlgorithm": "x-amz-sdk-checksum-algorithm",
    "ChecksumCRC64NVME": "x-amz-checksum-crc64nvme",
}


def encoded_key(key: str) -> str:
    """The key as botocore puts it in the URL path."""
    return str(percent_encode(key, safe="/~"))


@dataclass(frozen=True)
class PutPattern:
    """What botocore's PutObject showed: where a key goes, and the headers kept."""

    url_before_key: str
    kept_headers: tuple[tuple[str, str], ...]
    region: str
    service: str
    with_crc: bool


def read_pattern(url: str, headers: Mapping[str, Any], key: str) -> PutPattern | None:
    """The pattern of a PutObject botocore prepared for ``key``; None when it is
    not one this module can repeat (and then botocore sends every PUT)."""
    text = {name.lower(): _text(value) for name, value in headers.items()}
    unknown = [
        name
        for name in text
        if name not in _OWN and name not in _KEPT and not name.startswith(_METADATA)
    ]
    if unknown and unknown != ["expect"]:
        log.debug("Small files go through botocore: its PUT carried %s", ", ".join(unknown))
        return None
    encoded = encoded_key(key)
    if "?" in url or not url.endswith("/" + encoded):
        return None
    if text.get("x-amz-content-sha256") != _UNSIGNED:
        return None
    authorization = text.get("authorization", "")
    if not authorization.startswith(_SIGNATURE_START):
        return None
    scope = authorization[len(_SIGNATURE_START) :].split(",", 1)[0].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return None
    kept = tuple((name, value) for name, value in text.items() if name in _KEPT)
    return PutPattern(
        url_before_key=url[: -len(encoded)],
        kept_headers=kept,
        region=scope[2],
        service=scope[3],
        with_crc="x-amz-checksum-crc64nvme" in text,
    )


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class _UnsignedPayload(S3SigV4Auth):
    """SigV4 of the headers; the body goes as UNSIGNED-PAYLOAD, as in the pattern."""

    def _should_sha256_sign_payload(self, _request: Any) -> bool:
        return False


class QuickPut:
    """Learns the pattern from botocore's first PutObject; then sends PUTs by it.

    Thread-safe: the pattern is set once; each PUT is its own request.
    """

    def __init__(
        self,
        client: Any,
        *,
        on_answer: Callable[..., None],
        on_attempt: Callable[..., None],
    ) -> None:
        """``on_answer`` is told every answer (botocore's ``after-call`` shape),
        ``on_attempt`` every answer that is not a 200 (``needs-retry``'s)."""
        self._client = client
        self._on_answer = on_answer
        self._on_attempt = on_attempt
        self._pattern: PutPattern | None = None
        self._learning = threading.local()  # the key botocore is sending, in its thread
        client.meta.events.register("before-send.s3.PutObject", self._learn)

    @property
    def pattern(self) -> PutPattern | None:
        return self._pattern

    def through_botocore(self, key: str, send: Callable[[], Any]) -> Any:
        """Run ``send`` (botocore's PutObject of ``key``), learning its pattern."""
        if self._pattern is not None:
            return send()
        self._learning.key = key
        try:
            return send()
        finally:
            self._learning.key = None

    def _learn(self, request: Any = None, **_: Any) -> None:
        key = getattr(self._learning, "key", None)
        if key is None or self._pattern is not None or request is None:
            return  # returns None: botocore sends the request itself
        self._learning.key = None  # botocore's retries of it teach nothing more
        self._pattern = read_pattern(request.url, request.headers, key)

    def put(
        self,
        key: str,
        body: Any,
        length: int,
        params: Mapping[str, str],
        metadata: Mapping[str, str],
    ) -> dict[str, Any] | None:
        """Send ``body`` (``length`` bytes) to ``key`` with the file's own ``params``
        (botocore's names: ContentMD5, ContentType, the CRC's, the condition's) and
        ``metadata``; the answer's fields if the server said 200, else None (then
        send it through botocore)."""
        pattern = self._pattern
        if pattern is None or pattern.with_crc != ("ChecksumCRC64NVME" in params):
            return None
        if any(name not in _HEADER_OF for name in params):
            return None
        if not all(_plain(text) for text in (*metadata.keys(), *metadata.values())):
            return None  # botocore refuses it, in its own words
        request = AWSRequest(method="PUT", url=pattern.url_before_key + encoded_key(key), data=body)
        for name, value in pattern.kept_headers:
            request.headers[name] = value
        for name, value in params.items():
            request.headers[_HEADER_OF[name]] = value
        for name, value in metadata.items():
            request.headers[_METADATA + name] = value
        request.headers["Content-Length"] = str(length)
        try:
            credentials = self._client._request_signer._credentials
            if credentials is None:
                return None
            _UnsignedPayload(
                credentials.get_frozen_credentials(), pattern.service, pattern.region
            ).add_auth(request)
            response = self._send(request.prepare())
            _ = response.content  # the whole answer read: its connection goes back to the pool
        except (BotoCoreError, HTTPError, OSError) as exc:
            log.debug("PUT of %r without botocore failed (%s); botocore sends it", key, exc)
            return None
        self._on_answer(http_response=response)
        if response.status_code != 200:
            self._on_attempt(response=(response, {}))
            return None
        answered = response.headers
        return {name: answered[header] for name, header in _ANSWERED.items() if header in answered}

    def _send(self, prepared: Any) -> Any:
        # As botocore's endpoint does: a before-send handler may answer (a stub).
        for _handler, answer in self._client.meta.events.emit(
            "before-send.s3.PutObject", request=prepared
        ):
            if answer is not None:
                return answer
        return self._client._endpoint.http_session.send(prepared)


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable()
