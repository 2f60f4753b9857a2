"""The transfer engine: chunked, resumable, verified uploads through the journal.

One transfer goes queued -> hashing -> uploading -> completing -> verifying ->
registering -> done, each step recorded in the journal before the next one
depends on it, so a crash at any instant resumes where it stopped:

- the SHA-256 is known and the catalog intent row written before any byte is
  sent (a duplicate of live content is recognised there and nothing is sent;
  :mod:`.reserve_step`);
- the bytes are sent and verified by :mod:`desktop_app.core.transfers.sender` (single
  PUT or the multipart protocol, parts confirmed only with a matching ETag,
  reconciled with ListParts on resume, HEAD before registering);
- the catalog row becomes active only after that verification (:mod:`.registration`).

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
  release the intent row (:mod:`.compensation`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.journal.facts import NewAttempt, TransferFacts
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import (
    CatalogError,
    ErrorCause,
    FerryError,
    IllegalMoveError,
    StorageError,
    StorageErrorKind,
)
from desktop_app.core.model.events import (
    EventBus,
    TransferChanged,
    TransferSnapshot,
)
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.model.transfer_records import TransferError, TransferRecord
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.compensation import Compensation
from desktop_app.core.transfers.control import Stopped, TransferControl
from desktop_app.core.transfers.cores import CoreSharing
from desktop_app.core.transfers.holds import TransferHolds
from desktop_app.core.transfers.intake import TransferIntake
from desktop_app.core.transfers.limits import BandwidthLimiter, ByteBudget
from desktop_app.core.transfers.options import EngineOptions
from desktop_app.core.transfers.prepass import HashesAhead, PrePass
from desktop_app.core.transfers.progress import ProgressMeter
from desktop_app.core.transfers.protection import EndpointGuard
from desktop_app.core.transfers.registration import Registration, reservation_lost
from desktop_app.core.transfers.reserve_step import HashAndReserve
from desktop_app.core.transfers.resume import abandon_upload
from desktop_app.core.transfers.sender import ObjectSender

log = logging.getLogger(__name__)
# A request this small waits only for its own bytes at the bandwidth limit, not
# for the debt of large parts before it: a 1-byte file never waits for a big one.
_SMALL_REQUEST = 256 * 1024


class TransferHeldError(Exception):
    """A transfer was asked to run while another attempt holds it (a scheduler bug)."""


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
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
        guard: EndpointGuard | None = None,
        hashes_ahead: HashesAhead | None = None,
        cores: CoreSharing | None = None,
    ) -> None:
        """``hashes_ahead``: what a command's start-up already hashed (see :class:`HashesAhead`);
        ``cores``: where the small-file threads run (none given: where the kernel puts them)."""
        self.journal = journal
        self.storage = storage
        self.catalog = catalog
        self.profile_name = profile_name
        self.options = options
        self.bus = bus or EventBus()
        self.monotonic = monotonic
        self.now = now
        self.jitter = jitter
        schedule = options.bandwidth_schedule
        self.limiter = BandwidthLimiter(
            options.bandwidth_limit,
            monotonic=monotonic,
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
        self.cores = cores or CoreSharing(None, threads=list)
        # The parts' and hashes' threads run on every core, whoever starts them.
        self.prepass = PrePass(self.budget, thread_start=self.cores.unbind_this_thread)
        self._ahead = hashes_ahead
        self._part_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.concurrency,
            thread_name_prefix="ferry-part",
            initializer=self.cores.unbind_this_thread,
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
                self.bus, self.monotonic, transfer_id, total, done
            ),
            guard=guard,
        )
        # The first step, and the catalog's side of the last ones: options and
        # time are read at each call (a test may replace them between attempts).
        self.first_step = HashAndReserve(
            journal=journal,
            storage=storage,
            catalog=catalog,
            prepass=self.prepass,
            ahead=hashes_ahead,
            move=self.move,
            now=lambda: self.now(),
            options=lambda: self.options,
        )
        self.registration = Registration(catalog, self.move, lambda: self.now())
        # Undoing what will not finish: a failure's, a cancel's, a person's action's.
        self.compensation = Compensation(journal, storage, catalog)

    def interrupt(self) -> None:
        """Stop running transfers at their next check, leaving the journal as it is.

        They resume at the next start; this is what quitting the program does,
        and it is final for this engine object.
        """
        self._interrupted.set()
        if self._ahead is not None:
            self._ahead.stop()  # a worker waiting on a file read ahead goes on at once
        self.pause_running()

    def pause_running(self) -> None:
        """Stop the running attempts at their next check; unlike :meth:`interrupt`
        this is not final: the journal keeps them as they were, to go on later."""
        self.holds.pause_running()

    def close(self) -> None:
        self.interrupt()
        self._part_pool.shutdown(wait=True, cancel_futures=True)
        self.prepass.close()
        self.cores.close()

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
            self.compensation.compensate(record)
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
                control.reservation_lost(reservation_lost(record))
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
                with self.cores.attempt(spreads=not self.is_small(record.size)):
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
            record = self.first_step.run(record, NewAttempt(started, started, None, 0), control)
            if record.state is TransferState.DUPLICATE:
                return
        if record.state is TransferState.UPLOADING and not self.sender.sends_whole(record):
            if record.copy_source_key is not None:  # a server-side copy writes the object at once
                self.registration.confirm_reservation(record, control)
            record = self.sender.upload(record, control)
        if record.state is TransferState.UPLOADING and self.sender.sends_whole(record):
            # The one path of a file sent in one request (a copy that fell back too).
            self.registration.confirm_reservation(record, control)
            answer = self.sender.single_put.put(record, control, record.write_condition)
            self.registration.register(
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
            self.registration.confirm_reservation(record, control, always=True)
            record = self.sender.multipart.complete(record, record.write_condition)
        if record.state is TransferState.VERIFYING:
            record = self.sender.verifier.verify(record)
        if record.state is TransferState.REGISTERING:
            assert record.etag is not None
            self.registration.register(
                record,
                record.etag,
                control,
                started,
                recorded=True,
                version_id=record.version_id,
                checksum=self.sender.verifier.proven_checksum(record),
            )

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
            abandon_upload(self.journal, self.storage, record)
            record = self.journal.get(transfer_id)
            kind = ErrorKind.TRANSIENT
        if not kind.retries_on_its_own:
            self.compensation.compensate(record)
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
