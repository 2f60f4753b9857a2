"""What a botocore failure means, said as Ferry's :class:`StorageError`.

:meth:`ErrorTranslator.translating` wraps every request the storage sends:
a ``ClientError`` or a ``BotoCoreError`` leaving it becomes a
:class:`~desktop_app.core.model.errors.StorageError` with a kind (transient,
permanent, no-such-upload, not-found, precondition-failed, bad-digest, not
supported), a stable cause and a plain message naming the key, the bucket
and the server. :meth:`ErrorTranslator.kept_by_rules` says a version delete
refused by the bucket's own rules (Object Lock, MFA delete) as what to do.

Promises: no botocore error passes this module; the botocore error is kept
as the cause (``from exc``); a 403 is told apart by what the server said (a
wrong clock, a wrong customer key, another addressing, a missing
permission), not taken for a missing permission every time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

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

from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.model.errors import ErrorCause, StorageError, StorageErrorKind
from desktop_app.core.settings.secrets import aws_credential_error
from desktop_app.core.storage.server_clock import ServerClock, describe_offset

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
# Requests that read an object with the key: a 400 or 403 is the key's doing.
_READS = frozenset({"HeadObject", "GetObject", "CopyObject", "UploadPartCopy"})
KEPT_BY_RULES = "Kept by the bucket's rules"  # the title of an Object Lock or MFA refusal
# What a refusal to delete a version says when the bucket's own rules keep it
# (AWS: AccessDenied "... object protected by object lock", InvalidRequest for
# a missing MFA or Content-MD5 under Object Lock), as lower-case fragments.
_LOCK_WORDS = ("object lock", "objectlock", "retention", "legal hold", "worm")
_MFA_WORDS = ("mfa",)


@dataclass
class ErrorTranslator:
    """The translation for one bucket: what its messages name, and what it heeds."""

    endpoint_label: str
    bucket: str
    # Bucket times and a refused clock are told on the server's clock.
    server_clock: ServerClock
    # Named in a "sign in again" message when refreshed credentials expire.
    profile_name: str = ""
    aws_profile: str | None = None
    # Objects are encrypted with the profile's SSE-C key (sent on every request).
    customer_key_sent: bool = False

    @contextlib.contextmanager
    def translating(self, action: str, key: str | None = None) -> Iterator[None]:
        """Any botocore error inside, as a StorageError saying it failed to ``action`` ``key``."""
        what = f"{action} {key!r}" if key is not None else action
        try:
            yield
        except ClientError as exc:
            raise self.from_client_error(exc, what, key) from exc
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

    def from_client_error(self, exc: ClientError, what: str, key: str | None) -> StorageError:
        """The server's answer (its code, HTTP status and message) as a StorageError."""
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
            offset = self.server_clock.offset
            off = describe_offset(offset) if offset else "too far from"
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

    def kept_by_rules(
        self,
        exc: StorageError,
        found: ObjectInfo,
        file: str,
        server_now: Callable[[], datetime],
    ) -> StorageError | None:
        """The refusal of a version delete by Object Lock or MFA delete, said plainly:
        what keeps it (the version's HEAD shows a lock and until when), and what to do.
        ``server_now`` is asked only where a lock's end is to be compared."""
        if exc.code not in ("AccessDenied", "InvalidRequest", "403", "400"):
            return None
        said = exc.message.lower()
        then = "then run `ferry check --repair`, which removes it"
        if found.legal_hold:
            reason = (
                "a legal hold of the bucket's Object Lock keeps it. It can go once the hold "
                f"is lifted (ask the bucket's administrator); {then}"
            )
        elif found.locked_until is not None and found.locked_until > server_now():
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
