"""Sending one transfer's bytes and proving they arrived.

Below a part's size: one PUT with Content-MD5, its ETag compared with the MD5
of what was sent (HEAD only when the server's ETag is opaque). Above: the
multipart protocol, each step in the journal before the next depends on it:

- the upload id and the part plan are committed before the first part;
- a part is confirmed only after the server answered with its ETag, and that
  ETag must equal the part's MD5 (Content-MD5 is sent, so the server checks too);
- on resume the parts are reconciled with ListParts: a part the server has and
  the journal lacks is accepted only if its ETag is the pre-pass MD5 of that range;
- the source identity (size, mtime_ns, ctime_ns, device, inode) is checked
  before each part and before completing; a change raises SourceChangedError;
- proof of bytes (invariant 8): the pre-pass (``prepass``) read the file once
  for its SHA-256 and each part's MD5 from the same buffers; every part is
  sent with that MD5 as Content-MD5, so the server accepts a part only if the
  bytes it received are the bytes the SHA-256 was taken over (a refused part
  whose bytes on disk differ now is a changed source, not a network fault);
- the object is verified with HEAD (size, ETag in the server's convention,
  SHA-256 metadata read case-insensitively) before the transfer may register
  it in the catalog; a second verification failure stops resending;
- where the endpoint verifies checksums (:mod:`.checksums`), each part also
  carries the pre-pass CRC64NVME of its range, the upload is created for a
  CRC64NVME full-object checksum and its Complete carries the whole file's
  (the server refuses it unless the bytes it joined have it); the verifying
  HEAD reads the server's back and it must be the pre-pass one, taken in the
  read that gave the SHA-256. A single PUT carries its CRC64NVME likewise and
  the one the server answers must be it. On resume a listed part counts only
  with the CRC64NVME planned for it, where the server lists one.

The engine (``engine.py``) decides when to send, retry or give up; this module
only sends, and raises Ferry's errors for the engine to judge.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import BinaryIO, NoReturn, Protocol, TypeGuard, TypeVar

from desktop_app.core.journal.facts import TransferFacts
from desktop_app.core.journal.parts import PartDigests, PartRecord
from desktop_app.core.journal.records import SourceIdentity, TransferRecord
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.bucket_objects import (
    SHA256_METADATA,
    ObjectInfo,
    WriteAnswer,
    WriteCondition,
    WriteProtection,
)
from desktop_app.core.model.errors import (
    ErrorCause,
    ReservationLostError,
    SourceChangedError,
    SourceError,
    StorageError,
    StorageErrorKind,
)
from desktop_app.core.model.events import EventBus, TransferProgress
from desktop_app.core.model.states import TransferState
from desktop_app.core.storage.copies import copy_object
from desktop_app.core.storage.crc64 import crc64nvme, crc64nvme_base64
from desktop_app.core.storage.listing import iter_multipart_uploads, list_parts
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.wire import CRC64NVME, multipart_etag
from desktop_app.core.transfers.etags import EtagMeaning
from desktop_app.core.transfers.limits import (
    BandwidthLimiter,
    ByteBudget,
    PacedRequest,
    StoppedWhilePacing,
)
from desktop_app.core.transfers.prepass import FileHashes, PrePass
from desktop_app.core.transfers.protection import EndpointGuard, ProtectionMemory

_Written = TypeVar("_Written")  # what a write request answers
log = logging.getLogger(__name__)
MIB = 1024 * 1024
MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * 1024 * MIB
PUBLISH_SECONDS = 0.1  # a transfer's progress is published at most this often...
PUBLISH_BYTES = MIB  # ...unless this much more was sent
# The title of a failed verification (wording only: the attempt history
# recognises one by its cause, ErrorCause.VERIFICATION).
VERIFICATION_FAILED = "Verification failed"


def digests_of(hashes: FileHashes, part_size: int) -> PartDigests:
    """What the journal keeps of a pre-pass over a file sent in parts."""
    return PartDigests(
        hashes.sha256,
        part_size,
        hashes.part_md5s,
        crc64nvme_base64(hashes.crc64nvme),
        hashes.part_crc64nvmes,
    )


def choose_part_size(size: int, preferred: int) -> int:
    """The preferred part size, doubled until the file needs at most 10,000 parts."""
    part_size = preferred
    while math.ceil(size / part_size) > MAX_PARTS:
        part_size *= 2
    return min(part_size, MAX_PART_SIZE)


def part_plan(size: int, part_size: int) -> list[tuple[int, int, int]]:
    count = max(1, math.ceil(size / part_size))
    return [(n + 1, n * part_size, min(part_size, size - n * part_size)) for n in range(count)]


class Stopped(Exception):
    """Raised inside a worker when the transfer was paused or cancelled."""

    def __init__(self, cancelled: bool) -> None:
        super().__init__("cancelled" if cancelled else "paused")
        self.cancelled = cancelled


class TransferControl:
    """Pause and cancel flags of one running transfer, checked between steps.

    It also knows whether the transfer's catalog reservation still stands:
    lost (a keep-alive found it gone) stops the attempt at the next check;
    confirmed recently (reserved or kept alive) spares a look before the
    object is written.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.cancel = threading.Event()
        self.pause = threading.Event()
        self.bytes_sent = 0  # handed to the server in this attempt, accepted or not
        self._lock = threading.Lock()
        self._clock = clock
        self._reservation_lost: ReservationLostError | None = None
        self._alive_since = -math.inf

    def sent(self, amount: int) -> None:
        with self._lock:
            self.bytes_sent += amount

    def reservation_confirmed(self) -> None:
        """The catalog has just recorded the reservation as alive (on its own clock)."""
        self._alive_since = self._clock()

    def reservation_confirmed_within(self, seconds: float) -> bool:
        return self._clock() - self._alive_since < seconds

    def reservation_lost(self, error: ReservationLostError) -> None:
        self._reservation_lost = error

    def stop_asked(self) -> bool:
        """Has a person asked this attempt to stop (cancel or pause)?"""
        return self.cancel.is_set() or self.pause.is_set()

    def check(self) -> None:
        if self.cancel.is_set():
            raise Stopped(cancelled=True)
        if self.pause.is_set():
            raise Stopped(cancelled=False)
        if self._reservation_lost is not None:
            raise self._reservation_lost


class ProgressMeter:
    """How far one transfer's bytes have gone, published every 0.1 s or MiB at most.

    Counted as botocore reads each request's body (``sent``, see
    :meth:`S3Storage.upload_part`), so a row moves with the bytes the
    connection takes, not by whole parts; the bytes of a request the server
    did not answer are taken back, and a body sent again (botocore's retry)
    counts once. Each event also says whether a request is out and how long
    the upload has not moved: no byte it had not sent before went out, and no
    answer came. Waiting for bandwidth is not being out: a request is out from
    the first read of its body until it ends.
    """

    def __init__(
        self,
        bus: EventBus,
        clock: Callable[[], float],
        transfer_id: int,
        total: int,
        done: int,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.transfer_id = transfer_id
        self.total = total
        self.done = done  # stored: what the server has answered for
        self.at_start = done
        self._out: dict[int, SentBytes] = {}  # requests whose body is being read or sent
        self._requests = itertools.count()
        self.moved_at = clock()  # a byte not sent before went out, or an answer came
        self._lock = threading.Lock()
        self.last_publish = -math.inf

    def request(self, size: int) -> SentBytes:
        """One request of ``size`` bytes: its ``sent`` goes to the storage call, and
        its ``end()`` always follows; the bytes count once ``keep()`` says the
        server answered for them, otherwise they are taken back."""
        return SentBytes(self, next(self._requests), size)

    def _out_now(self, request: SentBytes) -> None:
        """Its body's first read, or a MiB or 0.1 s since the last event."""
        with self._lock:
            if not self._out:
                self.moved_at = request.last_read  # silence is counted from here
            self._out[request.number] = request
            event = self._event(request.last_read)
        self.bus.publish(event)

    def _ended(self, request: SentBytes) -> None:
        with self._lock:
            was_out = self._out.pop(request.number, None) is not None
            if request.kept:
                self.done += request.size
                self.moved_at = self.clock()  # the server answered
        if was_out or request.kept:
            self.publish()

    def add(self, amount: int) -> None:
        """Bytes stored without being sent (a copy on the server)."""
        with self._lock:
            self.done += amount
        self.publish()

    def publish(self) -> None:
        with self._lock:
            event = self._event(self.clock())
        self.bus.publish(event)

    def _event(self, now: float) -> TransferProgress:
        self.last_publish = now
        counted = self.done
        for request in self._out.values():
            counted += request.position
            request.published = request.position
        quiet = max(0.0, now - self.moved_at) if self._out else 0.0
        return TransferProgress(
            self.transfer_id, counted, self.total, self.at_start, bool(self._out), quiet
        )


class SentBytes:
    """One request's share of a :class:`ProgressMeter`.

    ``sent`` runs at every read of the body (16 KiB): it only notes the
    position, and goes to the meter's lock for the first read, then every MiB
    or 0.1 s.
    """

    def __init__(self, meter: ProgressMeter, number: int, size: int) -> None:
        self._meter = meter
        self.number = number
        self.size = size
        self.kept = False
        self.position = 0  # of the body, taken by the connection
        self.published = 0  # the position the meter's last event counted
        self.last_read = meter.clock()
        self._furthest = 0
        self._out = False
        self._ended = False

    def sent(self, position: int) -> None:
        """The connection has taken the body's first ``position`` bytes."""
        meter = self._meter
        now = self.last_read = meter.clock()
        self.position = position
        if position > self._furthest:  # sent again after a rewind: not moving
            self._furthest = position
            meter.moved_at = now
        if (
            not self._out
            or now - meter.last_publish >= PUBLISH_SECONDS
            # Socket buffers fill in a blink: a server that then stops taking
            # bytes would otherwise leave that blink's bytes unsaid.
            or abs(position - self.published) >= PUBLISH_BYTES
        ):
            self._out = True
            meter._out_now(self)

    def keep(self) -> None:
        """The server answered the request: its bytes count (what it stored is
        judged by the caller; a failure there is the attempt's, not the count's)."""
        self.kept = True

    def end(self) -> None:
        """The request is over; again is nothing."""
        if not self._ended:
            self._ended = True
            self._meter._ended(self)


def written_by(found: ObjectInfo | None, record: TransferRecord) -> TypeGuard[ObjectInfo]:
    """Is ``found`` the object this transfer writes: its size and the SHA-256 metadata
    Ferry wrote with it? (What another program put there carries neither.)"""
    return found is not None and found.size == record.size and found.sha256 == record.sha256


@contextlib.contextmanager
def _stopped_while_pacing(control: TransferControl) -> Iterator[None]:
    """A request cut while it waited for bandwidth is the transfer's stop."""
    try:
        yield
    except StoppedWhilePacing:
        raise Stopped(cancelled=control.cancel.is_set()) from None


def _first_error(
    futures: list[concurrent.futures.Future[None]], stop: threading.Event
) -> BaseException | None:
    """Wait for every part in flight (none may outlive the attempt); the first failure."""
    first: BaseException | None = None
    for future in concurrent.futures.as_completed(futures):
        error = future.exception()
        if error is not None and first is None:
            first = error
            stop.set()
    return first


def _read_into(fd: int, offset: int, into: bytearray) -> int:
    """Fill ``into`` from ``offset`` of the file; fewer bytes only where the file ends."""
    view = memoryview(into)
    filled = 0
    while filled < len(into):
        got = os.preadv(fd, [view[filled:]], offset + filled)
        if not got:
            break
        filled += got
    return filled


def _open_source(record: TransferRecord) -> BinaryIO:
    try:
        return open(record.source_path, "rb")
    except OSError as exc:
        raise SourceError(f"{record.source_path} cannot be read: {exc.strerror}.") from exc


def current_identity(record: TransferRecord) -> SourceIdentity:
    try:
        return SourceIdentity.of(os.stat(record.source_path))
    except FileNotFoundError:
        raise SourceError(
            f"{record.source_path} is gone; it was moved or deleted before it was uploaded. "
            "Put it back and retry, or remove the transfer.",
            title="File gone",
        ) from None
    except OSError as exc:
        raise SourceError(f"{record.source_path} cannot be read: {exc.strerror}.") from exc


def _source_changed(record: TransferRecord, detail: str | None = None) -> SourceChangedError:
    how = f" ({detail})" if detail else ""
    return SourceChangedError(
        f"{record.source_path} changed while uploading{how}; the partial upload was "
        "discarded so that no mix of old and new bytes is stored. Retry to upload the new "
        "version."
    )


def check_source(record: TransferRecord) -> None:
    if not record.identity.matches(current_identity(record)):
        raise _source_changed(record)


class Transition(Protocol):
    """A state change that the engine publishes (the engine's ``_move``)."""

    def __call__(
        self, transfer_id: int, state: TransferState, *, facts: TransferFacts | None = None
    ) -> TransferRecord: ...


class ObjectSender:
    """Sends and verifies the object of one transfer at a time per call; thread-safe."""

    def __init__(
        self,
        *,
        journal: Journal,
        storage: S3Storage,
        limiter: BandwidthLimiter,
        budget: ByteBudget,
        part_pool: concurrent.futures.Executor,
        prepass: PrePass,
        single_put_threshold: int,
        transition: Transition,
        meter: Callable[[int, int, int], ProgressMeter],
        guard: EndpointGuard | None = None,
    ) -> None:
        self.journal = journal
        self.storage = storage
        self.limiter = limiter
        self.budget = budget
        self._part_pool = part_pool
        self.prepass = prepass
        self.single_put_threshold = single_put_threshold
        self._transition = transition
        self._meter = meter  # (transfer id, total bytes, bytes done) -> meter
        self.etags = EtagMeaning()  # what this endpoint's ETags say, learned as it answers
        # Whether the server refuses writes over an object the condition does not
        # name; where not, each write is looked at before and after (see _write_under).
        self.guard = guard or EndpointGuard(storage, ProtectionMemory(None))

    def _metadata(self, record: TransferRecord) -> dict[str, str]:
        assert record.sha256 is not None
        return {SHA256_METADATA: record.sha256}

    def upload(self, record: TransferRecord, control: TransferControl) -> TransferRecord:
        """Write the object by a server-side copy or the multipart protocol.

        Content stored already under another key is copied on the server,
        conditional on the ETag the source's row verified; if that object
        changed or went, the transfer is returned still uploading, without
        its copy source, for the bytes to be sent after all. A file sent in
        one request is returned as it is: :meth:`put_whole` is its one path.
        """
        if record.copy_source_key is not None:
            copied = self._copy(record, control)
            if copied is not None:
                return copied
            record = self.journal.get(record.id)
        if self.sends_whole(record):
            return record
        return self._upload_parts(record, control)

    def _copy(self, record: TransferRecord, control: TransferControl) -> TransferRecord | None:
        assert record.copy_source_key is not None
        assert record.copy_source_etag is not None
        control.check()
        source_key, source_etag = record.copy_source_key, record.copy_source_etag
        try:
            written = self._write_under(
                record,
                record.write_condition,
                lambda on: copy_object(
                    self.storage,
                    source_key,
                    record.key,
                    source_etag=source_etag,
                    size=record.size,
                    metadata=self._metadata(record),
                    content_type=record.content_type,
                    condition=on,
                ),
                multipart=record.size > self.storage.copy_limit,  # part copies, then Complete
            )
        except StorageError as exc:
            if exc.kind not in (StorageErrorKind.PRECONDITION_FAILED, StorageErrorKind.NOT_FOUND):
                raise
            log.info(
                "%s: the stored copy %s changed or went; sending the bytes instead",
                record.key,
                record.copy_source_key,
            )
            self.journal.update(
                record.id, TransferFacts(copy_source_key=None, copy_source_etag=None)
            )
            return None
        self._meter(record.id, record.size, 0).add(record.size)
        facts = TransferFacts(etag=written.etag, version_id=written.version_id)
        return self._transition(record.id, TransferState.VERIFYING, facts=facts)

    def sends_whole(self, record: TransferRecord) -> bool:
        """Is this transfer's next step one PUT of the whole file (no copy, no multipart)?"""
        return (
            record.copy_source_key is None
            and record.upload_id is None
            and record.size < self.single_put_threshold
        )

    def put_whole(
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
        request = self._meter(record.id, record.size, 0).request(record.size)
        held = self.budget.acquire(max(record.size, 1))
        try:
            check_source(record)
            with _open_source(record) as handle:
                body = handle.read()
            check_source(record)
            if hashlib.sha256(body).hexdigest() != record.sha256:
                raise SourceChangedError(
                    f"{record.source_path} no longer has the content that was hashed; "
                    "retry to upload the new version."
                )
            control.check()
            control.sent(len(body))
            md5 = hashlib.md5(body)
            expected = md5.hexdigest()
            # Where the server verifies checksums, the CRC64NVME of these very bytes.
            crc = crc64nvme_base64(crc64nvme(body)) if self.guard.checksums.verified() else None
            paced = self._paced(request, control)
            with _stopped_while_pacing(control):
                answer = self._write_under(
                    record,
                    condition,
                    lambda on: self.storage.put_object(
                        record.key,
                        body,
                        metadata=self._metadata(record),
                        content_type=record.content_type,
                        md5_b64=base64.b64encode(md5.digest()).decode("ascii"),
                        condition=on,
                        sent=paced.sent,
                        crc64nvme=crc,
                    ),
                )
            request.keep()
            if isinstance(answer, ObjectInfo):  # this transfer's own earlier PUT, its answer lost
                if crc is not None:  # its checksum read back, as for any write that carried one
                    return self._crc_proven(record, WriteAnswer(answer.etag), crc)
                return WriteAnswer(answer.etag, answer.encryption, answer.version_id)
        finally:
            request.end()
            self.budget.release(held)
        self.etags.learn(answer.encryption, answer.etag, expected)
        if self.etags.contradicts(answer.etag, expected, answer.encryption):
            raise StorageError(
                f"The server stored other bytes than Ferry sent for {record.key!r}; resending.",
                kind=StorageErrorKind.BAD_DIGEST,
                code="ETagMismatch",
            )
        if crc is not None:
            return self._crc_proven(dataclasses.replace(record, etag=expected), answer, crc)
        # The MD5 path: a checksum the server answers unasked was never compared with
        # Ferry's, so it is not recorded as one the server verified.
        answer = dataclasses.replace(answer, crc64nvme=None)
        if answer.etag == expected:
            return answer
        # A crash before the caller records anything puts the same bytes again.
        found = self._check_object(dataclasses.replace(record, etag=expected))
        return WriteAnswer(found.etag, found.encryption, answer.version_id or found.version_id)

    def _crc_proven(self, record: TransferRecord, answer: WriteAnswer, crc: str) -> WriteAnswer:
        """A PUT that carried the CRC64NVME of its bytes: the server verified it (or
        refused the PUT); the checksum it answers must be that one, or the object
        is sent again. Where the answer has none, or its ETag is not the MD5 of
        the bytes (``record.etag``), a HEAD checks size, SHA-256 and checksum, as
        on the MD5 path."""
        if answer.crc64nvme is None or answer.etag != record.etag:
            found = self._check_object(record, crc=crc)
            return WriteAnswer(
                found.etag, found.encryption, answer.version_id or found.version_id, crc
            )
        if answer.crc64nvme != crc:
            self._verification_failed(
                record,
                f"has CRC64NVME {answer.crc64nvme} in the bucket, Ferry computed {crc} from "
                "the bytes it sent",
            )
        return answer

    def proven_checksum(self, record: TransferRecord) -> str | None:
        """The CRC64NVME (base64) the verification of this transfer's multipart object
        read back equal to Ferry's (kept in the journal, so a registration resumed
        after a crash has it too); None where none was (the MD5 path)."""
        digests = self.journal.part_digests(record.id)
        if digests is None or not digests.crc64nvme_verified or not digests.fits(record):
            return None
        if record.upload_id is None or digests.crc64nvme_upload_id != record.upload_id:
            return None
        return digests.crc64nvme

    def _paced(self, request: SentBytes, control: TransferControl) -> PacedRequest:
        """The request's ``sent``, paying the limiter as the body goes."""
        return PacedRequest(self.limiter, request.size, control.stop_asked, request.sent)

    def _write_under(
        self,
        record: TransferRecord,
        condition: WriteCondition,
        write: Callable[[WriteCondition], _Written],
        *,
        multipart: bool = False,
    ) -> _Written | ObjectInfo:
        """Write the object only while the key holds what ``condition`` says.

        If it holds something else: the object there when it is this
        transfer's own (an earlier write whose answer was lost: its size and
        SHA-256 metadata); the write again, over exactly that object, when it
        holds these very bytes without Ferry's metadata (read to prove it:
        nothing is lost); else a conflict, and nothing is written.

        Where the endpoint does not honour the condition (it ignores it, or
        refuses the headers, or that is not known yet: :mod:`.protection`; on
        a multipart upload's Complete, ``multipart``, Ceph ignores it though
        it honours it on PUT), the key is looked at just before the write
        (another's object there: the same as a refusal) and just after it
        (not the object this transfer wrote: a conflict, and the object there
        is never deleted).
        """
        guarded = not self.guard.honoured(multipart=multipart)
        if guarded:
            found = self.storage.head_object(record.key)
            if not condition.met_by(found):
                return self._not_as_expected(record, condition, found, write, guarded=True)
        try:
            written = write(condition)
        except StorageError as exc:
            if exc.kind is not StorageErrorKind.PRECONDITION_FAILED:
                raise
            found = self.storage.head_object(record.key)
            if condition.met_by(found):
                raise  # the key is as expected: another condition failed (a copy's source)
            # Refused: the server honours the condition after all, no look needed;
            # learnt otherwise, that is forgotten (a 412 of Ferry's own look, where the
            # headers are refused, says nothing of the server).
            if self.guard.protection() is WriteProtection.CONDITIONS_IGNORED:
                self.guard.contradicted()
            return self._not_as_expected(record, condition, found, write, guarded=False)
        if guarded:
            self._look_after(record, condition)
        return written

    def _not_as_expected(
        self,
        record: TransferRecord,
        condition: WriteCondition,
        found: ObjectInfo | None,
        write: Callable[[WriteCondition], _Written],
        guarded: bool,
    ) -> _Written | ObjectInfo:
        """The key holds ``found``, not what ``condition`` says: this transfer's own
        object, or these very bytes written over on If-Match, or a conflict."""
        if written_by(found, record):
            return found
        if (
            found is not None
            and found.size == record.size
            and found.sha256 is None
            and self._holds_these_bytes(record, found)
        ):
            try:
                written = write(WriteCondition(found.etag))
            except StorageError as exc:
                if exc.kind is not StorageErrorKind.PRECONDITION_FAILED:
                    raise
            else:
                if guarded:
                    self._look_after(record, condition)
                return written
        raise self._written_by_another(record, condition, guarded=guarded)

    def _look_after(self, record: TransferRecord, condition: WriteCondition) -> None:
        """Just after a write the server may have let over another's object: is the
        object at the key the one this transfer wrote? If not, a conflict (never
        deleted: it is another program's)."""
        if not written_by(self.storage.head_object(record.key), record):
            raise self._written_by_another(record, condition, after=True)

    def _holds_these_bytes(self, record: TransferRecord, found: ObjectInfo) -> bool:
        try:
            sha256, size = self.storage.read_sha256(record.key, if_match=found.etag)
        except StorageError as exc:
            if exc.kind in (StorageErrorKind.PRECONDITION_FAILED, StorageErrorKind.NOT_FOUND):
                return False
            raise
        return (sha256, size) == (record.sha256, record.size)

    def _written_by_another(
        self,
        record: TransferRecord,
        condition: WriteCondition,
        *,
        after: bool = False,
        guarded: bool = False,
    ) -> StorageError:
        # Where the server does not refuse such writes, what protected the object is said.
        unprotected = (
            "this server does not refuse writes over other programs' objects, so Ferry "
            f"looked at the key {'right after' if after else 'just before'} writing"
        )
        when, outcome = (
            (f"just as Ferry wrote it ({unprotected})", "did not register its own")
            if after
            else (
                f"while Ferry was uploading {record.source_path}"
                + (f" ({unprotected})" if guarded else ""),
                "wrote nothing over it",
            )
        )
        return StorageError(
            f"Another program wrote {record.key!r} in bucket {self.storage.bucket!r} {when} "
            f"(Ferry expected {condition.describe()} there). Ferry left that object as it is "
            f"and {outcome}. Upload the file under the next free name, replace the other "
            "program's object, or skip the file.",
            kind=StorageErrorKind.PERMANENT,
            code="KeyWrittenMeanwhile",
            title="Written by another program",
            cause=ErrorCause.FOREIGN_OBJECT,
        )

    def _upload_parts(self, record: TransferRecord, control: TransferControl) -> TransferRecord:
        digests = self._planned_digests(record)
        md5s = digests.md5s
        if record.upload_id is not None and not self._reconcile_parts(record, digests):
            record = self.journal.get(record.id)  # the server could not say: start afresh
        if record.upload_id is None:
            control.check()  # hashing may have been long: a pause or cancel since starts nothing
            check_source(record)
            if record.upload_intent_at is not None:
                self._abort_lost_uploads(record, record.upload_intent_at)
            # Noted before the upload exists: a crash between its creation and
            # the commit of its id is then found again at the next attempt.
            self.journal.update(record.id, TransferFacts(upload_intent_at=self.journal.clock()))
            checksummed = digests.crc64nvme is not None and self.guard.checksums.verified()
            upload_id = self.storage.create_multipart_upload(
                record.key,
                metadata=self._metadata(record),
                content_type=record.content_type,
                crc64nvme=checksummed,
            )
            if checksummed:  # its parts and Complete carry the CRC64NVMEs
                digests = dataclasses.replace(
                    digests, crc64nvme_upload_id=upload_id, crc64nvme_verified=False
                )
                self.journal.save_part_digests(record.id, digests)
            # Committed before the first part is sent: a crash from here on
            # finds the upload again instead of orphaning it.
            self.journal.plan_parts(record.id, upload_id, part_plan(record.size, record.part_size))
            record = self.journal.get(record.id)
        assert record.upload_id is not None
        parts = self.journal.parts(record.id)
        progress = self._meter(record.id, record.size, sum(p.size for p in parts if p.done))
        crcs = self._part_crcs(record, digests)
        self._send_parts(record, parts, md5s, crcs, control, progress)
        progress.publish()  # every part stored already (a resume) publishes nothing else
        return self._transition(record.id, TransferState.COMPLETING)

    @staticmethod
    def _part_crcs(record: TransferRecord, digests: PartDigests) -> tuple[str, ...] | None:
        """Each part's CRC64NVME (base64) where this transfer's upload was created to
        carry them; None: the MD5 path (an upload created without, or before)."""
        if record.upload_id is None or digests.crc64nvme_upload_id != record.upload_id:
            return None
        return tuple(crc64nvme_base64(c) for c in digests.part_crc64nvmes)

    def _planned_digests(self, record: TransferRecord) -> PartDigests:
        """Each part's MD5 (and CRC64NVME) from the pre-pass that gave the transfer its
        SHA-256.

        A journal written before the pre-pass kept them (or a plan that
        changed since) has none that fit: the file is read once more, and
        must still have the SHA-256 the duplicate check used.
        """
        digests = self.journal.part_digests(record.id)
        if digests is not None and digests.fits(record):
            return digests
        assert record.sha256 is not None
        check_source(record)
        hashes = self.prepass.hash_file(record.source_path, record.part_size)
        check_source(record)
        if hashes.sha256 != record.sha256:
            raise _source_changed(record, "its SHA-256 is another now")
        digests = digests_of(hashes, record.part_size)
        self.journal.save_part_digests(record.id, digests)
        return digests

    def _send_parts(
        self,
        record: TransferRecord,
        parts: list[PartRecord],
        md5s: tuple[bytes, ...],
        crcs: tuple[str, ...] | None,
        control: TransferControl,
        progress: ProgressMeter,
    ) -> None:
        """Send every part the server lacks, each with its pre-pass MD5 as Content-MD5.

        Proof of bytes without hashing again: the server computes the MD5 of
        the bytes it received and refuses them (BadDigest) unless it equals
        the pre-pass MD5 of that range, and the pre-pass SHA-256 was taken
        over those very bytes (see ``prepass``). A part confirmed with
        another MD5 than planned is sent again. The byte budget bounds the
        parts read but not yet sent.
        """
        futures: list[concurrent.futures.Future[None]] = []
        stop = threading.Event()
        check_source(record)  # gone or changed: the person's problem, said as such
        try:
            with _open_source(record) as handle:
                for part in parts:
                    control.check()
                    if stop.is_set():
                        break
                    md5 = md5s[part.number - 1]
                    if part.done and part.md5 == md5.hex():
                        continue
                    buffer = self.budget.take_buffer(part.size)
                    try:
                        check_source(record)
                        if _read_into(handle.fileno(), part.offset, buffer) != part.size:
                            raise _source_changed(record, "it became shorter")
                    except BaseException:
                        self.budget.give_back(buffer)
                        raise
                    crc = None if crcs is None else crcs[part.number - 1]
                    futures.append(
                        self._part_pool.submit(
                            self._send_part,
                            record,
                            part,
                            buffer,
                            (md5, crc),
                            control,
                            progress,
                            stop,
                        )
                    )
        finally:
            error = _first_error(futures, stop)
            self.budget.drop_spares()
        if error is not None:
            raise error

    def _send_part(
        self,
        record: TransferRecord,
        part: PartRecord,
        body: bytearray,
        digests: tuple[bytes, str | None],
        control: TransferControl,
        progress: ProgressMeter,
        stop: threading.Event,
    ) -> None:
        """Send one part with its MD5 as Content-MD5 and (``digests``' second) its
        CRC64NVME for the server to verify."""
        assert record.upload_id is not None
        md5, crc = digests
        md5_hex = md5.hex()
        request = progress.request(part.size)
        try:
            if stop.is_set():
                return
            control.check()
            control.sent(part.size)
            try:
                with _stopped_while_pacing(control):
                    answer = self.storage.upload_part(
                        record.key,
                        record.upload_id,
                        part.number,
                        body,
                        md5_b64=base64.b64encode(md5).decode("ascii"),
                        sent=self._paced(request, control).sent,
                        crc64nvme=crc,
                    )
                request.keep()
            except StorageError as exc:
                if exc.kind is StorageErrorKind.BAD_DIGEST:
                    self._check_part_unchanged(record, part, body, md5)
                raise
            etag = answer.etag
            self.etags.learn(answer.encryption, etag, md5_hex)
            crc_differs = crc is not None and answer.crc64nvme not in (None, crc)
            if crc_differs or self.etags.contradicts(etag, md5_hex, answer.encryption):
                self._check_part_unchanged(record, part, body, md5)
                raise StorageError(
                    f"The server stored other bytes than Ferry sent for part {part.number} of "
                    f"{record.key!r}; the part is sent again.",
                    kind=StorageErrorKind.BAD_DIGEST,
                    code="ETagMismatch",
                )
        except BaseException:
            stop.set()
            raise
        finally:
            request.end()
            self.budget.give_back(body)
        # Confirmed only now that the server has answered for it.
        self.journal.confirm_part(record.id, part.number, md5_hex, etag)

    @staticmethod
    def _check_part_unchanged(
        record: TransferRecord, part: PartRecord, body: bytearray, md5: bytes
    ) -> None:
        """A refused part: did the file change since the pre-pass, or the bytes on the way?"""
        if hashlib.md5(body).digest() != md5:
            raise _source_changed(record, f"part {part.number} has other bytes now")

    def _abort_lost_uploads(self, record: TransferRecord, since: datetime) -> None:
        """Abort this key's uploads created since the intent (ours: we hold its reservation).

        A few minutes of slack allow for the server's clock being behind ours.
        """
        earliest = since - timedelta(minutes=5)
        try:
            for upload in iter_multipart_uploads(self.storage, record.key):
                if upload.key == record.key and upload.initiated >= earliest:
                    log.info("Aborting upload %s of %s, lost in a crash", upload.upload_id,
                             record.key)  # fmt: skip
                    self.storage.abort_multipart_upload(record.key, upload.upload_id)
        except StorageError as exc:
            log.warning(
                "Uploads of %s lost in a crash could not be looked for (%s); the consistency "
                "check lists them.",
                record.key,
                exc.message,
            )

    def _reconcile_parts(self, record: TransferRecord, digests: PartDigests) -> bool:
        """Make the journal's parts agree with what the server really holds.

        A part the server holds and the journal lacks (a crash after the
        server answered) counts only with the ETag of its pre-pass MD5; any
        listed part of an upload created for CRC64NVMEs counts only with the
        CRC64NVME planned for it, where the server lists one. False
        when the server cannot list parts (ListParts refused): then what it
        holds is unknown, the upload is given up (aborted where the server
        allows) and the caller starts a new one.
        """
        assert record.upload_id is not None
        try:
            server = {p.number: p for p in list_parts(self.storage, record.key, record.upload_id)}
        except StorageError as exc:
            if exc.kind is not StorageErrorKind.NOT_SUPPORTED:
                raise
            log.warning(
                "%s cannot list the parts of an upload (%s); %s is sent afresh",
                self.storage.endpoint_label,
                exc.code,
                record.key,
            )
            self.abandon(record)
            return False
        crcs = self._part_crcs(record, digests)
        for part in self.journal.parts(record.id):
            held = server.get(part.number)
            md5_hex = digests.md5s[part.number - 1].hex()
            other_crc = (
                held is not None
                and crcs is not None
                and held.crc64nvme is not None
                and held.crc64nvme != crcs[part.number - 1]
            )
            if part.done and (held is None or held.etag != part.etag or other_crc):
                self.journal.unconfirm_part(record.id, part.number)
            elif not part.done and held is not None and held.size == part.size:
                if held.etag != md5_hex or other_crc:
                    continue  # not what the pre-pass read there: sent again
                self.journal.confirm_part(record.id, part.number, md5_hex, held.etag)
        parts = self.journal.parts(record.id)
        on_server = sum(1 for p in parts if p.done)
        log.info(
            "Resuming %s: %d of %d parts are on the server; sending %d",
            record.key,
            on_server,
            len(parts),
            len(parts) - on_server,
        )
        return True

    def _expected_etag(self, record: TransferRecord) -> str:
        parts = self.journal.parts(record.id)
        md5s = [bytes.fromhex(p.md5) for p in parts if p.md5]
        if len(md5s) != len(parts):
            raise SourceError(f"The journal lacks part checksums for {record.key!r}; retry.")
        return multipart_etag(md5s)

    def complete(self, record: TransferRecord, condition: WriteCondition) -> TransferRecord:
        """Join the parts into the object, only while the key holds what ``condition``
        says. An object already there counts as this transfer's only when proven
        so (its size and SHA-256 metadata, and an ETag that does not contradict
        the parts'); otherwise the upload fails as a conflict, or is restarted
        when the server forgot it."""
        assert record.upload_id is not None
        check_source(record)
        parts = self.journal.parts(record.id)
        expected = self._expected_etag(record)
        upload_id = record.upload_id
        version_id: str | None = None
        full_crc, part_crcs = self._upload_crcs(record)
        try:
            written = self._write_under(
                record,
                condition,
                lambda on: self.storage.complete_multipart_upload(
                    record.key,
                    upload_id,
                    [(p.number, p.etag or "") for p in parts],
                    condition=on,
                    crc64nvme=full_crc,
                    part_crc64nvmes=part_crcs,
                ),
                multipart=True,
            )
            if isinstance(written, ObjectInfo):  # this transfer's own, from an earlier upload
                self.storage.abort_multipart_upload(record.key, upload_id)
            version_id = written.version_id
        except StorageError as exc:
            if exc.kind is StorageErrorKind.NO_SUCH_UPLOAD:
                # Completed before a crash, but the journal did not hear of it?
                found = self.storage.head_object(record.key)
                proven = written_by(found, record) and not self.etags.contradicts(
                    found.etag, expected, found.encryption
                )
                if not proven:
                    raise
                assert found is not None
                version_id = found.version_id
            else:
                raise
        return self._transition(
            record.id,
            TransferState.VERIFYING,
            facts=TransferFacts(etag=expected, version_id=version_id),
        )

    def _upload_crcs(self, record: TransferRecord) -> tuple[str | None, dict[int, str] | None]:
        """The full-object CRC64NVME and each part's, where this transfer's upload was
        created to carry them; (None, None) otherwise."""
        digests = self.journal.part_digests(record.id)
        if digests is None or not digests.fits(record):
            return None, None
        crcs = self._part_crcs(record, digests)
        if crcs is None:
            return None, None
        return digests.crc64nvme, dict(enumerate(crcs, start=1))

    def verify(self, record: TransferRecord) -> TransferRecord:
        crc, _parts = self._upload_crcs(record)
        found = self._check_object(record, crc=crc)
        digests = self.journal.part_digests(record.id)
        if crc is not None and digests is not None:  # for the registration, crash or not
            self.journal.save_part_digests(
                record.id, dataclasses.replace(digests, crc64nvme_verified=True)
            )
        # The write's own answer named its version; a transfer without one (its
        # answer lost, or begun before versions were recorded) takes the HEAD's.
        version = record.version_id if record.version_id is not None else found.version_id
        return self._transition(
            record.id,
            TransferState.REGISTERING,
            facts=TransferFacts(etag=found.etag, version_id=version),
        )

    def _check_object(self, record: TransferRecord, *, crc: str | None = None) -> ObjectInfo:
        """HEAD the object: the size, SHA-256 and ETag Ferry sent (and with ``crc`` the
        server's full-object CRC64NVME, read back), or a StorageError."""
        found = self.storage.head_object(record.key, checksums=crc is not None)
        problem = None
        if found is None:
            problem = "is not in the bucket after the upload"
        elif found.size != record.size:
            problem = f"has {found.size} bytes in the bucket, the file has {record.size}"
        elif found.sha256 is None:
            problem = "carries no SHA-256 in the bucket, though Ferry wrote one with it"
        elif found.sha256 != record.sha256:
            problem = "carries another SHA-256 in the bucket than the file"
        elif record.etag is not None and self.etags.contradicts(
            found.etag, record.etag, found.encryption
        ):
            problem = f"has ETag {found.etag} in the bucket, Ferry computed {record.etag}"
        elif crc is not None and found.crc64nvme != crc:
            problem = (
                f"has {CRC64NVME} {found.crc64nvme} in the bucket, Ferry computed {crc} "
                "from the bytes it read"
                if found.crc64nvme is not None
                else f"has no {CRC64NVME} in the bucket, though the server verified Ferry's"
            )
        if problem is not None:
            self._verification_failed(record, problem)
        assert found is not None
        return found

    def _verification_failed(self, record: TransferRecord, problem: str) -> NoReturn:
        """The object is not what Ferry sent: sent again once, then a person looks."""
        self.abandon(record)
        if self.verification_failed_before(record.id):
            # Sent whole twice and still not what was sent: a person must look.
            raise StorageError(
                f"{record.key!r} {problem}, for the second time; Ferry stops sending it. "
                "Another program may be writing the same key: check the bucket, then Retry.",
                kind=StorageErrorKind.PERMANENT,
                code="VerificationFailed",
                title=VERIFICATION_FAILED,
                cause=ErrorCause.VERIFICATION,
            )
        raise StorageError(
            f"{record.key!r} {problem}; it is uploaded again.",
            kind=StorageErrorKind.TRANSIENT,
            code="VerificationFailed",
            title=VERIFICATION_FAILED,
            cause=ErrorCause.VERIFICATION,
        )

    def verification_failed_before(self, transfer_id: int) -> bool:
        history = self.journal.attempts_of([transfer_id])[transfer_id]
        return any(
            a.error is not None and a.error.cause is ErrorCause.VERIFICATION for a in history
        )

    def abandon(self, record: TransferRecord) -> None:
        """Abort the upload and forget it and its ETag: the next attempt sends the
        bytes afresh. The state is left to the caller (the engine fails the
        attempt; the next one resumes at sending, see ``resume_point``).
        """
        if record.upload_id is not None:
            try:
                self.storage.abort_multipart_upload(record.key, record.upload_id)
            except StorageError as exc:
                # Left for the consistency check, which lists unfinished uploads.
                log.warning("Upload %s of %s could not be aborted: %s",
                            record.upload_id, record.key, exc.message)  # fmt: skip
        self.journal.forget_upload(record.id)
