"""Sending a file below a part's size in one PUT, and proving it stored.

The request carries the bytes, their Content-MD5 and the SHA-256 metadata
together (and, where the endpoint verifies checksums, their CRC64NVME), and
the bytes were hashed as sent. Promises: the answer is an ETag (and version)
to register only once proven: the server's ETag is the MD5 of ours, or a HEAD
(:mod:`.verification`) checks size and SHA-256; the PUT lands only while the
key holds what the condition says (:mod:`.guarded_write`). No journal write.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable

from desktop_app.core.model.bucket_objects import ObjectInfo, WriteAnswer, WriteCondition
from desktop_app.core.model.errors import SourceChangedError, StorageError, StorageErrorKind
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.storage.crc64 import crc64nvme, crc64nvme_base64
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.control import TransferControl, stopped_while_pacing
from desktop_app.core.transfers.etags import EtagMeaning
from desktop_app.core.transfers.guarded_write import GuardedWriter
from desktop_app.core.transfers.limits import BandwidthLimiter, ByteBudget
from desktop_app.core.transfers.progress import ProgressMeter, paced
from desktop_app.core.transfers.protection import EndpointGuard
from desktop_app.core.transfers.source_reads import check_source, open_source
from desktop_app.core.transfers.verification import ObjectVerifier, ferry_metadata


@dataclasses.dataclass(frozen=True)
class SinglePut:
    """Sends one whole file per call; thread-safe."""

    storage: S3Storage
    limiter: BandwidthLimiter
    budget: ByteBudget
    guard: EndpointGuard
    etags: EtagMeaning  # the sender's: what this endpoint's ETags say
    writer: GuardedWriter
    verifier: ObjectVerifier
    meter: Callable[[int, int, int], ProgressMeter]  # (transfer id, total, done) -> meter

    def put(
        self, record: TransferRecord, control: TransferControl, condition: WriteCondition
    ) -> WriteAnswer:
        """Send the file in one PUT and prove it stored; the ETag (and version) to
        register. No journal write.

        The request carries the bytes, their Content-MD5 and the SHA-256
        metadata together, and the bytes were hashed as sent. A server that
        answers with the MD5 of ours has said which bytes it stored: the
        object is proven by that answer (size and SHA-256 go with those bytes
        in the same request) and no HEAD is needed. Any other ETag proves
        nothing unless this endpoint's ETags are known to be MD5s (see
        :mod:`.etags`): HEAD then checks size and SHA-256 as for a multipart
        upload. The PUT lands only while the key holds what ``condition``
        says; if not, the object there is taken for Ferry's only when proven
        so, else nothing is written and the transfer fails as a conflict.
        """
        request = self.meter(record.id, record.size, 0).request(record.size)
        held = self.budget.acquire(max(record.size, 1))
        try:
            body = self._read(record)
            control.check()
            control.sent(len(body))
            md5 = hashlib.md5(body)
            expected = md5.hexdigest()
            # Where the server verifies checksums, the CRC64NVME of these very bytes.
            crc = crc64nvme_base64(crc64nvme(body)) if self.guard.checksums.verified() else None
            sent = paced(self.limiter, request, control).sent
            with stopped_while_pacing(control):
                answer = self.writer.write(
                    record,
                    condition,
                    lambda on: self.storage.put_object(
                        record.key,
                        body,
                        metadata=ferry_metadata(record),
                        content_type=record.content_type,
                        md5_b64=base64.b64encode(md5.digest()).decode("ascii"),
                        condition=on,
                        sent=sent,
                        crc64nvme=crc,
                    ),
                )
            request.keep()
            if isinstance(answer, ObjectInfo):  # this transfer's own earlier PUT, its answer lost
                if crc is not None:  # its checksum read back, as for any write that carried one
                    return self.verifier.crc_proven(record, WriteAnswer(answer.etag), crc)
                return WriteAnswer(answer.etag, answer.encryption, answer.version_id)
        finally:
            request.end()
            self.budget.release(held)
        return self._proven(record, answer, expected, crc)

    @staticmethod
    def _read(record: TransferRecord) -> bytes:
        """The file's bytes, still the ones the SHA-256 was taken over."""
        check_source(record)
        with open_source(record) as handle:
            body = handle.read()
        check_source(record)
        if hashlib.sha256(body).hexdigest() != record.sha256:
            raise SourceChangedError(
                f"{record.source_path} no longer has the content that was hashed; "
                "retry to upload the new version."
            )
        return body

    def _proven(
        self, record: TransferRecord, answer: WriteAnswer, expected: str, crc: str | None
    ) -> WriteAnswer:
        """The server's answer to a PUT of bytes whose MD5 is ``expected``, proven."""
        self.etags.learn(answer.encryption, answer.etag, expected)
        if self.etags.contradicts(answer.etag, expected, answer.encryption):
            raise StorageError(
                f"The server stored other bytes than Ferry sent for {record.key!r}; resending.",
                kind=StorageErrorKind.BAD_DIGEST,
                code="ETagMismatch",
            )
        if crc is not None:
            return self.verifier.crc_proven(dataclasses.replace(record, etag=expected), answer, crc)
        # The MD5 path: a checksum the server answers unasked was never compared with
        # Ferry's, so it is not recorded as one the server verified.
        answer = dataclasses.replace(answer, crc64nvme=None)
        if answer.etag == expected:
            return answer
        # A crash before the caller records anything puts the same bytes again.
        found = self.verifier.check(dataclasses.replace(record, etag=expected))
        return WriteAnswer(found.etag, found.encryption, answer.version_id or found.version_id)
