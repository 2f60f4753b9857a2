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

- nothing is sent this way before botocore sent (and the server stored) a
  PutObject to this bucket in this run whose every header this module knows,
  whose URL is the bucket's followed by the key as botocore encodes it, and
  whose body went unsigned (``UNSIGNED-PAYLOAD``: the body is guarded by its
  Content-MD5); a header it does not know keeps that PUT's pattern unlearnt;
- a PUT is sent this way only with the same kinds of headers the pattern had
  (a CRC64NVME where it had one, none where it had none), so botocore would
  have added nothing else;
- a file is stored only by a 200 with an ETag and no error body. A 412, 409 or
  501 judges the write itself (its condition): raised as botocore raises it,
  the body not sent again. Anything else gives None and the caller sends the
  write through botocore, which retries and translates errors as always: a
  503 or 429 leaves every PUT of the next 5 s to botocore's backoff; any
  other answer drops the pattern, learnt again from the attempt of botocore's
  next PUT that succeeded, at most three times in a run. An answer lost after
  the bytes landed is what botocore's own retries meet too, and the writer
  proves such an object its own (its size and SHA-256);
- every answer's Date feeds the server clock, and every answer but a stored
  one the throttle count, as botocore's events would;
- the answer is read into the fields botocore's parser names (ETag,
  VersionId, encryption, CRC64NVME).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import create_parser
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
# Answers that judge the write itself (its condition refused, or not understood as
# Swift's s3api does): given back as botocore gives them, the body not sent again.
_VERDICTS: Final = frozenset({409, 412, 501})
_THROTTLED: Final = frozenset({429, 503})
_QUIET_SECONDS: Final = 5.0  # after a slow-down, PUTs go through botocore's backoff
_FORGET_AT_MOST: Final = 3  # patterns dropped in a run before botocore sends all
# What a 200 says, under the names botocore's parser gives them. Read by hand:
# the parser this module holds for refusals costs 57 us a PUT, this 3 us.
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
    # An SSE-C key among them: never in a repr, so never in a log line.
    kept_headers: tuple[tuple[str, str], ...] = field(repr=False)
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
    """Learns the pattern from botocore's PutObjects; then sends PUTs by it.

    Thread-safe: a pattern is replaced whole; each PUT is its own request.
    """

    def __init__(
        self,
        client: Any,
        *,
        on_answer: Callable[..., None],
        on_attempt: Callable[..., None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_answer`` is told every answer (botocore's ``after-call`` shape),
        ``on_attempt`` every answer that is not a 200 (``needs-retry``'s)."""
        self._client = client
        self._on_answer = on_answer
        self._on_attempt = on_attempt
        self._monotonic = monotonic
        self._pattern: PutPattern | None = None
        self._forgotten = 0
        self._quiet_until = -float("inf")
        self._learning = threading.local()  # what botocore sends in this thread
        # botocore's own parts this path uses (not its public API): without them,
        # every PUT stays with botocore.
        self._usable = all(
            hasattr(target, name)
            for target, name in (
                (client, "_request_signer"),
                (client, "_endpoint"),
                (getattr(client, "_request_signer", None), "_credentials"),
                (getattr(client, "_endpoint", None), "http_session"),
            )
        )
        self._parser = create_parser("rest-xml")
        self._output_shape = client.meta.service_model.operation_model("PutObject").output_shape
        client.meta.events.register("before-send.s3.PutObject", self._learn)

    @property
    def pattern(self) -> PutPattern | None:
        return self._pattern

    def through_botocore(self, key: str, send: Callable[[], Any]) -> Any:
        """Run ``send`` (botocore's PutObject of ``key``); learn the pattern from the
        attempt that succeeded (an earlier one may have gone to the wrong region)."""
        if self._pattern is not None or not self._usable or self._forgotten > _FORGET_AT_MOST:
            return send()
        self._learning.key = key
        self._learning.seen = None
        try:
            answer = send()
            seen: PutPattern | None = self._learning.seen
        finally:
            self._learning.key = None
        if seen is not None and self._pattern is None:
            self._pattern = seen
            log.debug("Small files' PUTs follow botocore's PUT of %r from now on", key)
        return answer

    def _learn(self, request: Any = None, **_: Any) -> None:
        key = getattr(self._learning, "key", None)
        if key is not None and request is not None:
            self._learning.seen = read_pattern(request.url, request.headers, key)
        # Returns None: botocore sends the request itself.

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
        ``metadata``. The answer's fields if the server stored it (a 200 with an
        ETag); the server's refusal of the condition raised as botocore raises it;
        None for anything else (then send it through botocore)."""
        pattern = self._pattern
        request = self._request(pattern, key, body, params, metadata)
        if pattern is None or request is None:
            return None
        try:
            credentials = self._client._request_signer._credentials
            if credentials is None:
                return None
            _UnsignedPayload(
                credentials.get_frozen_credentials(), pattern.service, pattern.region
            ).add_auth(request)
            # After signing, as botocore adds it: a proxy may send the body otherwise.
            request.headers["Content-Length"] = str(length)
            response = self._send(request.prepare())
            content = response.content  # read whole: its connection goes back to the pool
        except (BotoCoreError, HTTPError, OSError) as exc:
            log.debug("PUT of %r without botocore failed (%s); botocore sends it", key, exc)
            return None
        self._on_answer(http_response=response)
        answered = response.headers
        if response.status_code == 200 and "etag" in answered and b"<Error" not in content[:512]:
            return {name: answered[h] for name, h in _ANSWERED.items() if h in answered}
        self._judge(pattern, response, content)
        return None

    def _request(
        self,
        pattern: PutPattern | None,
        key: str,
        body: Any,
        params: Mapping[str, str],
        metadata: Mapping[str, str],
    ) -> AWSRequest | None:
        """The PUT by the pattern, unsigned; None where it must go through botocore."""
        if pattern is None or pattern.with_crc != ("ChecksumCRC64NVME" in params):
            return None
        if self._monotonic() < self._quiet_until:
            return None  # the server asked to slow down: botocore's backoff paces it
        if any(name not in _HEADER_OF for name in params):
            return None
        texts = (*params.values(), *metadata.keys(), *metadata.values())
        if not all(text.isascii() and text.isprintable() for text in texts):
            return None  # botocore encodes it, or refuses it in its own words
        request = AWSRequest(method="PUT", url=pattern.url_before_key + encoded_key(key), data=body)
        for name, value in pattern.kept_headers:
            request.headers[name] = value
        for name, value in params.items():
            request.headers[_HEADER_OF[name]] = value
        for name, value in metadata.items():
            request.headers[_METADATA + name] = value
        return request

    def _judge(self, pattern: PutPattern, response: Any, content: bytes) -> None:
        """An answer that did not store the object: raised if it judges the write,
        else noted (slow down, or the pattern dropped) for botocore to send it."""
        parsed = self._parser.parse(
            {"status_code": response.status_code, "headers": response.headers, "body": content},
            self._output_shape,
        )
        self._on_attempt(response=(response, parsed))
        if response.status_code in _VERDICTS:
            # The server's word on this write, not on the pattern: as botocore gives it.
            raise ClientError(parsed, "PutObject")
        if response.status_code in _THROTTLED:
            self._quiet_until = self._monotonic() + _QUIET_SECONDS
        elif self._pattern is pattern:
            # Refused for its form, perhaps (another region, a proxy): learnt anew
            # from botocore's next PUT, a few times in a run at most.
            self._pattern = None
            self._forgotten += 1
            code = parsed.get("Error", {}).get("Code", "")
            log.debug("Small files' PUT pattern dropped after %s %s", response.status_code, code)

    def _send(self, prepared: Any) -> Any:
        # As botocore's endpoint does: a before-send handler may answer (a stub).
        _handler, answer = self._client.meta.events.emit_until_response(
            "before-send.s3.PutObject", request=prepared
        )
        if answer is not None:
            return answer
        return self._client._endpoint.http_session.send(prepared)
