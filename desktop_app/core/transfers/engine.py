"""The transfer engine: chunked, resumable, verified uploads through the journal.

One transfer goes queued -> hashing -> uploading -> completing -> verifying ->
registering -> done, each step recorded in the journal before the next one
depends on it, so a crash at any instant resumes where it stopped:

- the SHA-256 is known and the catalog intent row written before any byte is
  sent (a duplicate of live content is recognised there and nothing is sent);
- the bytes are sent and verified by :mod:`desktop_app.core.transfers.sender` (single
  PUT or the multipart protocol, parts confirmed only with a matching ETag,
  reconciled with ListParts on resume, HEAD before registering);
- the catalog row becomes active only after that verification.

The engine runs one attempt of one transfer per :meth:`TransferEngine.run_held`
call, under the transfer's hold; who runs what and when is the scheduler's
business (:mod:`desktop_app.core.transfers.scheduler`), new transfers come
through :mod:`.intake` and a person's actions through :mod:`.coordinator`.
Promises:

- a transfer is acted on by one holder at a time (:mod:`.holds`): a second
  ``process`` of a held transfer is refused (and counted, for tests);
- a transfer is only ever run with this engine's profile, storage and
  catalog: another profile's transfer is refused before anything is sent;
- every state change goes through :meth:`Journal.move` (the table of
  allowed moves); every failed attempt is kept in the journal's history;
- a transient failure keeps what was sent (the multipart upload and its
  confirmed parts) and gets a next try time with growing delays; permanent
  failures, a changed source and cancel run compensation, last step first:
  delete an object we wrote but did not register, abort the multipart upload,
  release the intent row.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from desktop_app.core.catalog.records import (
    ALIVE_SECONDS,
    NOT_LOOKED,
    FileRecord,
    ObjectAtKey,
    Reservation,
    ReservationOutcome,
    UploadIntent,
)
from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.journal.facts import UNCHANGED, NewAttempt, TransferFacts
from desktop_app.core.journal.records import KeyConflictPolicy, TransferError, TransferRecord
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import (
    CatalogError,
    ErrorCause,
    FerryError,
    IllegalMoveError,
    KeyConflictError,
    NotInCatalogError,
    ReservationLostError,
    SourceChangedError,
    StorageError,
    StorageErrorKind,
)
from desktop_app.core.model.events import (
    EventBus,
    TransferChanged,
    TransferSnapshot,
)
from desktop_app.core.model.failures import suffixed_name
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.settings.bandwidth import BandwidthSchedule
from desktop_app.core.settings.profiles import DuplicatePolicy
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.versions import delete_version
from desktop_app.core.storage.wire import CRC64NVME
from desktop_app.core.transfers.holds import TransferHolds
from desktop_app.core.transfers.intake import TransferIntake
from desktop_app.core.transfers.limits import BandwidthLimiter, ByteBudget
from desktop_app.core.transfers.prepass import PrePass
from desktop_app.core.transfers.protection import EndpointGuard
from desktop_app.core.transfers.retry import RetryPolicy
from desktop_app.core.transfers.sender import (
    ObjectSender,
    ProgressMeter,
    Stopped,
    TransferControl,
    choose_part_size,
    current_identity,
    digests_of,
    part_plan,
    written_by,
)

log = logging.getLogger(__name__)
MIB = 1024 * 1024
# A reservation the catalog confirmed alive this recently cannot have been
# removed by a check (it waits ALIVE_SECONDS on the catalog's own clock).
RESERVATION_TRUSTED_SECONDS = ALIVE_SECONDS / 2
# A request this small waits only for its own bytes at the bandwidth limit, not
# for the debt of large parts before it: a 1-byte file never waits for a big one.
_SMALL_REQUEST = 256 * 1024


@dataclass(frozen=True)
class EngineOptions:
    part_size: int = 16 * MIB
    concurrency: int = 8
    memory_budget: int = 64 * MIB
    bandwidth_limit: int = 0
    # Rates by the clock; None: bandwidth_limit at every hour.
    bandwidth_schedule: BandwidthSchedule | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    duplicates: DuplicatePolicy = DuplicatePolicy.COPY

    @property
    def single_put_threshold(self) -> int:
        # Below one part a multipart upload only adds requests; above it,
        # parts give parallelism and resumability.
        return self.part_size


class TransferHeldError(Exception):
    """A transfer was asked to run while another attempt holds it (a scheduler bug)."""


def _reservation_lost(record: TransferRecord, *, written: bool = False) -> ReservationLostError:
    outcome = (
        "the object it wrote is not registered, and is left for `ferry check` (never deleted "
        "while another row may name it)"
        if written
        else "Ferry stopped before writing the object, so nothing at that key was replaced"
    )
    return ReservationLostError(
        f"The catalog no longer holds {record.key!r} for this upload of {record.source_path}: "
        "its reservation was removed (by a consistency check's repair, or an admin) while the "
        f"bytes were on their way; {outcome}. Retry to upload the file again."
    )


def suffixed_key(key: str, number: int) -> str:
    """'dir/name.ext' -> 'dir/name (2).ext': a new version beside the old one."""
    return suffixed_name(key, number)


class TransferEngine:
    """Runs attempts of one profile's transfers; only the scheduler calls :meth:`process`."""

    def __init__(
        self,
        *,
        journal: Journal,
        storage: S3Storage,
        catalog: CatalogService,
        profile_name: str,
        options: EngineOptions,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
        guard: EndpointGuard | None = None,
    ) -> None:
        self.journal = journal
        self.storage = storage
        self.catalog = catalog
        self.profile_name = profile_name
        self.options = options
        self.bus = bus or EventBus()
        self.clock = clock
        self.now = now
        self.jitter = jitter
        schedule = options.bandwidth_schedule
        self.limiter = BandwidthLimiter(
            options.bandwidth_limit,
            clock=clock,
            sleep=sleep,
            small_request=_SMALL_REQUEST,
            rate_now=(lambda: schedule.rate_at(self.now())) if schedule is not None else None,
        )
        self.budget = ByteBudget(options.memory_budget, small_reserve=options.part_size)
        self.intake = TransferIntake(
            journal,
            self.bus,
            profile_name=profile_name,
            bucket=storage.bucket,
            part_size=lambda: self.options.part_size,
        )
        self.holds_refused = 0  # a second attempt at a held transfer: must stay 0
        # Who acts on each transfer now (a worker's attempt or a person's
        # action): the one registry, shared with the scheduler.
        self.holds = TransferHolds()
        self._interrupted = threading.Event()
        self.prepass = PrePass(self.budget)
        self._part_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.concurrency, thread_name_prefix="ferry-part"
        )
        self.sender = ObjectSender(
            journal=journal,
            storage=storage,
            limiter=self.limiter,
            budget=self.budget,
            part_pool=self._part_pool,
            prepass=self.prepass,
            single_put_threshold=options.single_put_threshold,
            transition=self.move,
            meter=lambda transfer_id, total, done: ProgressMeter(
                self.bus, self.clock, transfer_id, total, done
            ),
            guard=guard,
        )

    def interrupt(self) -> None:
        """Stop running transfers at their next check, leaving the journal as it is.

        They resume at the next start; this is what quitting the program does,
        and it is final for this engine object.
        """
        self._interrupted.set()
        self.pause_running()

    def pause_running(self) -> None:
        """Stop the running attempts at their next check; unlike :meth:`interrupt`
        this is not final: the journal keeps them as they were, to go on later."""
        self.holds.pause_running()

    def close(self) -> None:
        self.interrupt()
        self._part_pool.shutdown(wait=True, cancel_futures=True)
        self.prepass.close()

    def is_small(self, size: int) -> bool:
        """Sent in one request: such files get workers of their own in the scheduler."""
        return size < self.options.single_put_threshold

    def require_own(self, record: TransferRecord) -> None:
        """Invariant 7: a transfer is sent and registered only with its own profile."""
        if record.profile != self.profile_name or record.bucket != self.storage.bucket:
            raise FerryError(
                f"Transfer {record.id} ({record.source_path}) belongs to profile "
                f"{record.profile!r} (bucket {record.bucket}); this Ferry runs profile "
                f"{self.profile_name!r}. Use `ferry --profile {record.profile} ...` for it.",
                title="Another profile's transfer",
                cause=ErrorCause.CONFLICT,
            )

    def cancel_held(self, transfer_id: int) -> None:
        """Compensate and cancel a transfer the caller holds, unless it has finished."""
        record = self.journal.get(transfer_id)
        if not record.state.finished:
            self.compensate(record)
            self.move(transfer_id, TransferState.CANCELLED)

    # -- running one attempt --------------------------------------------------

    def keep_alive(self) -> None:
        """Touch the catalog rows of the uploads running now, so no check takes them for stale."""
        controls = self.holds.worker_controls()
        sending = (TransferState.UPLOADING, TransferState.COMPLETING, TransferState.VERIFYING)
        records = {
            record.catalog_file_id: record
            for record in self.journal.get_many(list(controls))
            if record.state in sending
            and record.catalog_file_id is not None
            and record.reservation_token is not None
        }
        reservations = [(file_id, r.reservation_token or "") for file_id, r in records.items()]
        try:
            lost = set(self.catalog.touch(reservations))
        except CatalogError as exc:
            log.warning("Could not note the running uploads in the catalog: %s", exc.message)
            return
        for file_id, record in records.items():
            control = controls[record.id]
            if file_id in lost:
                control.reservation_lost(_reservation_lost(record))
            else:
                control.reservation_confirmed()

    def process(self, transfer_id: int) -> TransferRecord:
        """Hold the transfer and run one attempt of it (:meth:`run_held`).

        Raises :class:`TransferHeldError` when anyone holds it already.
        """
        control = self.holds.take_for_worker(transfer_id)
        if control is None:
            self.holds_refused += 1
            raise TransferHeldError(f"transfer {transfer_id} is already being run")
        try:
            return self.run_held(transfer_id, control)
        finally:
            self.holds.release(transfer_id)

    def run_held(self, transfer_id: int, control: TransferControl) -> TransferRecord:
        """Run one attempt of a transfer the caller holds: to done, duplicate, failed,
        paused or cancelled.

        The transfer is read only now, under the hold: what a person did
        before the hold was taken (pause, cancel, retry) is seen here, and
        what they do after reaches ``control``: a cancel flagged while the
        attempt ran is carried out here, however the attempt ended (failed
        and due to retry, or never started). A refused state change (a move
        the table does not allow) ends this attempt, is logged, and is raised
        as an error that does not halt: the scheduler leaves the transfer
        for this run.
        """
        record = self.journal.get(transfer_id)
        self.require_own(record)
        if not (self._interrupted.is_set() or record.paused or record.state.finished):
            try:
                self._attempt(record, control)
            except IllegalMoveError as exc:
                log.error(
                    "Transfer %s: an attempt asked to go from %s to %s, refused; it ends here "
                    "and the transfer stays %s",
                    transfer_id,
                    exc.current.value,
                    exc.target.value,
                    exc.current.value,
                )
                raise
        if control.cancel.is_set():
            self.cancel_held(transfer_id)
        return self.journal.get(transfer_id)

    def _attempt(self, record: TransferRecord, control: TransferControl) -> None:
        transfer_id = record.id
        started = self.now()
        try:
            if record.state is TransferState.FAILED:
                if not record.failure_kind.retries_on_its_own:
                    return  # waits for a person
                record = self.move(record.id, record.resume_point)
            elif record.state is TransferState.VERIFYING and record.etag is None:
                # A crash between forgetting the upload and failing the attempt:
                # nothing to verify, the facts say "send afresh".
                record = self.move(record.id, record.resume_point)
            control.check()
            self._run_steps(record, control, started)
        except Stopped:
            pass  # a pause keeps the journal as it is; run_held carries out a cancel
        except IllegalMoveError:
            raise
        except FerryError as exc:
            if exc.halts:
                raise  # nothing can be recorded (disk full): the scheduler halts, no undoing
            if self._cut_short_by_quitting(transfer_id, exc):
                return
            self._fail(transfer_id, exc, started, control)
        except Exception as exc:
            if self._cut_short_by_quitting(transfer_id, exc):
                return
            log.exception("Unexpected error in transfer %s", transfer_id)
            interrupted = FerryError(
                f"Unexpected error while uploading: {type(exc).__name__}: {exc}. "
                "The transfer is kept and tried again; report this if it happens again.",
                title="Unexpected error",
            )
            self._fail(transfer_id, interrupted, started, control, kind=ErrorKind.INTERRUPTED)

    def _cut_short_by_quitting(self, transfer_id: int, error: Exception) -> bool:
        """An attempt that fails after :meth:`interrupt` is not a failure of the transfer:
        quitting cut it short (its server may be stopping too). The journal keeps it as
        it stands, and it resumes at the next start."""
        if not self._interrupted.is_set():
            return False
        log.info("Transfer %s stopped by quitting: %s", transfer_id, error)
        return True

    def _run_steps(
        self, record: TransferRecord, control: TransferControl, started: datetime
    ) -> None:
        if record.state in (TransferState.QUEUED, TransferState.HASHING):
            record = self._hash_and_reserve(record, NewAttempt(started, started, None, 0), control)
            if record.state is TransferState.DUPLICATE:
                return
        if record.state is TransferState.UPLOADING and not self.sender.sends_whole(record):
            if record.copy_source_key is not None:  # a server-side copy writes the object at once
                self._confirm_reservation(record, control)
            record = self.sender.upload(record, control)
        if record.state is TransferState.UPLOADING and self.sender.sends_whole(record):
            # The one path of a file sent in one request (a copy that fell back too).
            self._confirm_reservation(record, control)
            answer = self.sender.put_whole(record, control, record.write_condition)
            self._register(
                record,
                answer.etag,
                control,
                started,
                recorded=False,
                version_id=answer.version_id,
                checksum=answer.crc64nvme,
            )
            return
        if record.state is TransferState.COMPLETING:
            control.check()
            self._confirm_reservation(record, control, always=True)
            record = self.sender.complete(record, record.write_condition)
        if record.state is TransferState.VERIFYING:
            record = self.sender.verify(record)
        if record.state is TransferState.REGISTERING:
            assert record.etag is not None
            self._register(
                record,
                record.etag,
                control,
                started,
                recorded=True,
                version_id=record.version_id,
                checksum=self.sender.proven_checksum(record),
            )

    def _confirm_reservation(
        self, record: TransferRecord, control: TransferControl, *, always: bool = False
    ) -> None:
        """Before the object is written: the catalog still holds the key for this transfer.

        A check removes only intents not kept alive for ALIVE_SECONDS on the
        catalog's clock; one reserved or kept alive within half that needs no
        look (a single small PUT). ``always``: a multipart Complete, after
        what may have been a long send, looks every time.
        """
        if record.catalog_file_id is None:
            return
        if not always and control.reservation_confirmed_within(RESERVATION_TRUSTED_SECONDS):
            return
        # A keep-alive's update, not a read: it waits for a repair acting on the
        # row, and a check counts it as alive from here on.
        reservation = (record.catalog_file_id, record.reservation_token or "")
        if self.catalog.touch([reservation]):
            raise _reservation_lost(record)
        control.reservation_confirmed()

    def _register(
        self,
        record: TransferRecord,
        etag: str,
        control: TransferControl,
        started: datetime,
        *,
        recorded: bool,
        version_id: str | None = None,
        checksum: str | None = None,
    ) -> None:
        """Activate the catalog row of a proven object (and the version its write
        made, where the bucket keeps versions, and the CRC64NVME the server verified
        and the verification read back, where it did), then done.

        ``recorded`` False: the journal does not know yet that the object was
        written (a single PUT goes from uploading to done in one commit). A
        crash before that commit puts the same bytes again and activates
        again (activation is idempotent for its own token and ETag); a failed
        activation first records the object, so that compensation deletes it
        and a retry resumes at verifying instead of sending again.
        """
        assert record.catalog_file_id is not None
        try:
            self.catalog.activate(
                record.catalog_file_id,
                etag=etag,
                token=record.reservation_token,
                copied_from=record.copy_source_key,
                version_id=version_id,
                checksum=checksum,
                checksum_type=CRC64NVME if checksum is not None else None,
            )
        except BaseException as exc:
            if not recorded:
                facts = TransferFacts(etag=etag, version_id=version_id)
                self.move(record.id, TransferState.REGISTERING, facts=facts)
            if isinstance(exc, NotInCatalogError):
                raise _reservation_lost(record, written=True) from exc
            raise
        succeeded = NewAttempt(started, self.now(), None, control.bytes_sent)
        facts = TransferFacts(etag=etag, version_id=version_id)
        self.move(record.id, TransferState.DONE, attempt=succeeded, facts=facts)

    def move(
        self,
        transfer_id: int,
        state: TransferState,
        *,
        error: TransferError | None = None,
        retry_at: datetime | None = None,
        attempt: NewAttempt | None = None,
        facts: TransferFacts | None = None,
    ) -> TransferRecord:
        record = self.journal.move(
            transfer_id, state, error=error, retry_at=retry_at, attempt=attempt, facts=facts
        )
        self.bus.publish(TransferChanged(TransferSnapshot.of(record)))
        return record

    def _fail(
        self,
        transfer_id: int,
        error: FerryError,
        started: datetime,
        control: TransferControl,
        *,
        kind: ErrorKind | None = None,
    ) -> None:
        kind = kind or error.error_kind
        record = self.journal.get(transfer_id)
        restart = isinstance(error, StorageError) and error.kind is StorageErrorKind.NO_SUCH_UPLOAD
        if restart:
            # The server forgot the upload (expired, or aborted by someone), or
            # could not join its parts now (409 ConditionalRequestConflict):
            # start it afresh at once, under the same reservation.
            log.warning("%s: %s", record.key, error.message)
            self.sender.abandon(record)
            record = self.journal.get(transfer_id)
            kind = ErrorKind.TRANSIENT
        if not kind.retries_on_its_own:
            self.compensate(record)
        attempts = record.attempts + 1
        retry_at = None
        message = error.message
        if restart:
            retry_at = self.now()  # at once: nothing is wrong that waiting would mend
        elif kind.retries_on_its_own:
            delay = self.options.retry.delay(attempts, self.jitter())
            retry_at = self.now() + timedelta(seconds=delay)
            message += " Ferry keeps what was sent and tries again by itself."
        elif not kind.retryable:
            message += " Retrying cannot help."
        failure = TransferError(kind, error.title, message, error.cause)
        self.move(
            transfer_id,
            TransferState.FAILED,
            error=failure,
            retry_at=retry_at,
            attempt=NewAttempt(started, self.now(), failure, control.bytes_sent),
            facts=TransferFacts(attempts=attempts),
        )
        log.log(
            logging.WARNING if kind.retries_on_its_own else logging.ERROR,
            "Upload of %s failed (attempt %d, %s): %s",
            record.source_path,
            attempts,
            kind.value,
            error.message,
        )

    # -- steps --------------------------------------------------------------

    def _hash_and_reserve(
        self, record: TransferRecord, attempt: NewAttempt, control: TransferControl
    ) -> TransferRecord:
        if record.reservation_token is None:  # queued before tokens existed
            record = self.journal.update(
                record.id, TransferFacts(reservation_token=uuid.uuid4().hex)
            )
        if not self.is_small(record.size):
            # Hashing a small file takes milliseconds: "checking" would only
            # cost a commit; a large one shows it while it reads.
            self.move(record.id, TransferState.HASHING)
        before = current_identity(record)
        part_size = choose_part_size(before.size, self.options.part_size)
        # A file sent in parts gets its part MD5s in the same read: the sending
        # pass sends them as Content-MD5 instead of hashing again.
        multipart = not self.is_small(before.size)
        hashes = self.prepass.hash_file(record.source_path, part_size if multipart else None)
        after = current_identity(record)
        if before != after:
            raise SourceChangedError(
                f"{record.source_path} changed while Ferry was reading it. Retry once the "
                "program writing it has finished."
            )
        sha256 = hashes.sha256
        # An object to replace named on a transfer that holds no reservation is a
        # person's choice (a conflict resolved with Replace: the object they saw);
        # one a reservation gave is released with it (see compensate).
        chosen = record.replaces_etag if record.catalog_file_id is None else None
        if record.catalog_file_id is not None and record.sha256 not in (None, sha256):
            # The file changed while Ferry was not running: the old intent goes.
            self.catalog.release(
                record.catalog_file_id,
                reason="source changed before upload",
                token=record.reservation_token,
                at_key=self._object_at_key(record),
            )
        count = len(part_plan(after.size, part_size))
        if multipart:
            self.journal.save_part_digests(record.id, digests_of(hashes, part_size))
        hashed = TransferFacts(sha256=sha256, identity=after, part_size=part_size, part_count=count)
        if not record.identity.matches(after) and record.upload_id is not None:
            self.sender.abandon(record)
        # What the hash found is committed together with the reservation's
        # outcome: a crash in between hashes again and finds its own intent.
        reservation, key = self._reserve(record, after.size, sha256)
        if reservation.outcome is ReservationOutcome.DUPLICATE and not self._still_stored(
            reservation.record
        ):
            # The row that made it a duplicate is marked missing now: reserving
            # again takes its key over (or finds no source) and sends the bytes.
            reservation, key = self._reserve(record, after.size, sha256)
        hashed = dataclasses.replace(hashed, key=key)
        if reservation.outcome is ReservationOutcome.DUPLICATE:
            log.info("%s is already stored as %s", record.source_path, reservation.record.key)
            return self.move(
                record.id,
                TransferState.DUPLICATE,
                attempt=dataclasses.replace(attempt, ended_at=self.now()),
                facts=dataclasses.replace(hashed, duplicate_of=reservation.record.key),
            )
        if reservation.outcome is not ReservationOutcome.RESUMED:
            control.reservation_confirmed()  # a row written just now, alive on its clock
        source = reservation.source
        if source is not None:
            log.info("%s is stored already as %s: copied on the server", record.key, source.key)
        return self.move(
            record.id,
            TransferState.UPLOADING,
            facts=dataclasses.replace(
                hashed,
                catalog_file_id=reservation.record.id,
                copy_source_key=source.key if source is not None else None,
                copy_source_etag=source.etag if source is not None else None,
                # Resumed: what the first reservation said stays. A person's
                # choice wins over Ferry's own old object the catalog names.
                replaces_etag=UNCHANGED
                if reservation.outcome is ReservationOutcome.RESUMED
                else chosen or reservation.replaced_etag,
            ),
        )

    def _still_stored(self, stored: FileRecord) -> bool:
        """Whether the object a duplicate's row names is in the bucket with its bytes.

        The catalog alone is not proof: the server may be another than the
        row's (an endpoint that is down answers nothing, and that fails this
        attempt as unreachable instead of calling the file stored), or the
        object may have been deleted behind Ferry's back. Gone: the row is
        marked missing (in a repair transaction that looks again) and False.
        Another object there now: a conflict, nothing is overwritten.
        """
        found = self.storage.head_object(stored.key)
        if found is not None:
            if found.size == stored.size and stored.etag in (None, found.etag):
                return True
            raise KeyConflictError(
                f"The catalog says {stored.key!r} holds this content, but the object there now "
                f"has other bytes (size {found.size}, ETag {found.etag}). Nothing was uploaded; "
                "`ferry check` shows the difference and its repairs."
            )
        with self.catalog.repairing(stored.bucket, stored.key) as repair:
            live = repair.live
            if (
                live is not None
                and live.id == stored.id
                and self.storage.head_object(stored.key) is None
            ):
                log.warning("%s is in the catalog, not in the bucket: marked missing", stored.key)
                repair.mark_missing(
                    live.id, reason="object not found while the same content was uploaded"
                )
        return False

    def _reserve(self, record: TransferRecord, size: int, sha256: str) -> tuple[Reservation, str]:
        """Reserve the key, applying the transfer's policy when other content holds it."""
        key = record.key
        for attempt in range(1, 1000):
            intent = UploadIntent(
                bucket=record.bucket,
                key=key,
                original_name=Path(record.source_path).name,
                size=size,
                sha256=sha256,
                content_type=record.content_type,
                token=record.reservation_token,
                endpoint=self.storage.endpoint_id,
            )
            policy = record.on_conflict
            # Our own old row steps aside for the new one, and is deleted (and
            # announced) only when the new one is active; a cancel gives it back.
            overwrite = policy is KeyConflictPolicy.OVERWRITE and key == record.key
            try:
                return self.catalog.reserve(
                    intent, self.options.duplicates, overwrite=overwrite
                ), key
            except KeyConflictError:
                if policy is KeyConflictPolicy.FAIL:
                    raise
                key = suffixed_key(record.key, attempt + 1)
        raise KeyConflictError(f"No free name was found for {record.key!r}.")

    # -- compensation ---------------------------------------------------------

    def _object_at_key(self, record: TransferRecord) -> ObjectAtKey:
        """What the bucket holds at an overwrite's key now: the key goes back only to bytes there.

        Only an overwrite has a row to give back, so only it looks. A look
        that fails (the server did not answer) counts as none made: the
        replaced row is given back, since deleting its record while its bytes
        may be there would let a check delete them.
        """
        if record.on_conflict is not KeyConflictPolicy.OVERWRITE:
            return NOT_LOOKED
        try:
            found = self.storage.head_object(record.key)
        except StorageError:
            return NOT_LOOKED
        return ObjectAtKey(looked=True, etag=found.etag if found is not None else None)

    def _delete_own_object(self, record: TransferRecord) -> None:
        """Delete what this transfer wrote at its key and nothing else: the object
        there only if it has this transfer's size and SHA-256, and only while it
        keeps the ETag just seen (another program may write the key meanwhile).
        In a bucket that keeps versions, the version this transfer wrote is
        removed itself: a plain delete would leave its bytes behind a marker."""
        found = self.storage.head_object(record.key)
        if found is None:
            return
        if not written_by(found, record):
            log.warning(
                "%s: the object at the key is not the one Ferry wrote (another program's?); "
                "left in place",
                record.key,
            )
            return
        if record.version_id is not None and found.version_id == record.version_id:
            delete_version(self.storage, record.key, record.version_id, etag=found.etag)
            return
        self.storage.delete_object(
            record.key, if_match=found.etag, size=found.size, sha256=found.sha256
        )

    def compensate(self, record: TransferRecord) -> None:
        """Undo a transfer that will not finish, last step first; log what could not be."""
        leftovers = []
        wrote_object = record.state in (TransferState.VERIFYING, TransferState.REGISTERING)
        if wrote_object and record.catalog_file_id is not None:
            # Only while the row is still our own pending reservation: then no
            # live row (ours or anyone's) can point at this key's object.
            try:
                if self.catalog.holds(record.catalog_file_id, record.reservation_token):
                    self._delete_own_object(record)
                else:
                    log.warning(
                        "%s: the object was left in place, its catalog row is live or "
                        "another upload's",
                        record.key,
                    )
            except (StorageError, CatalogError) as exc:
                leftovers.append(f"object {record.key!r} ({exc.message})")
        if record.upload_id is not None:
            try:
                self.storage.abort_multipart_upload(record.key, record.upload_id)
                self.journal.forget_upload(record.id)
            except StorageError as exc:
                leftovers.append(f"multipart upload of {record.key!r} ({exc.message})")
        if record.catalog_file_id is not None:
            try:
                self.catalog.release(
                    record.catalog_file_id,
                    reason="upload failed or cancelled",
                    token=record.reservation_token,
                    at_key=self._object_at_key(record),
                )
                # What the reservation allowed to be replaced goes with it.
                self.journal.update(
                    record.id, TransferFacts(catalog_file_id=None, replaces_etag=None)
                )
            except CatalogError as exc:
                leftovers.append(f"catalog intent row {record.catalog_file_id} ({exc.message})")
        if leftovers:
            log.error(
                "Could not clean up after %s: %s. The consistency check will show it.",
                record.source_path,
                "; ".join(leftovers),
            )
