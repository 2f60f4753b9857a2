"""The transfer engine: chunked, resumable, verified uploads through the journal.

One transfer goes queued -> hashing -> uploading -> completing -> verifying ->
registering -> done, each step recorded in the journal before the next one
depends on it, so a crash at any instant resumes where it stopped:

- the SHA-256 is known and the catalog intent row written before any byte is
  sent (a duplicate of live content is recognised there and nothing is sent);
- the bytes are sent and verified by :mod:`desktop_app.core.sender` (single
  PUT or the multipart protocol, parts confirmed only with a matching ETag,
  reconciled with ListParts on resume, HEAD before registering);
- the catalog row becomes active only after that verification.

Transient failures are retried with exponential backoff and jitter; after the
limit the transfer is failed with a retry time and keeps its multipart upload,
so a retry sends only what is missing. Permanent failures, a changed source
and cancel run compensation, last step first: delete an object we wrote but
did not register, abort the multipart upload, release the intent row.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import mimetypes
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from desktop_app.core.catalog import (
    CatalogService,
    Reservation,
    ReservationOutcome,
    UploadIntent,
)
from desktop_app.core.errors import (
    CatalogError,
    FerryError,
    KeyConflictError,
    SourceChangedError,
    SourceError,
    StorageError,
    StorageErrorKind,
)
from desktop_app.core.events import (
    EventBus,
    TransferChanged,
    TransferQueued,
    TransferSnapshot,
)
from desktop_app.core.journal import (
    Journal,
    KeyConflictPolicy,
    NewTransfer,
    SourceIdentity,
    TransferError,
    TransferRecord,
    TransferState,
)
from desktop_app.core.sender import (
    ObjectSender,
    ProgressMeter,
    Stopped,
    TransferControl,
    choose_part_size,
    current_identity,
    part_plan,
)
from desktop_app.core.sources import SourceFile, SourceProblem, check_file, expand
from desktop_app.core.storage import S3Storage
from desktop_app.core.throttle import BandwidthLimiter, ByteBudget

log = logging.getLogger(__name__)
MIB = 1024 * 1024
_HASH_CHUNK = 1 * MIB


@dataclass(frozen=True)
class EngineOptions:
    part_size: int = 16 * MIB
    concurrency: int = 8
    memory_budget: int = 64 * MIB
    bandwidth_limit: int = 0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_delay_after_failure: float = 300.0

    @property
    def single_put_threshold(self) -> int:
        # Below one part a multipart upload only adds requests; above it,
        # parts give parallelism and resumability.
        return self.part_size


def suffixed_key(key: str, number: int) -> str:
    """'dir/name.ext' -> 'dir/name (2).ext': a new version beside the old one."""
    head, slash, name = key.rpartition("/")
    stem, dot, extension = name.partition(".") if not name.startswith(".") else (name, "", "")
    return f"{head}{slash}{stem} ({number}){dot}{extension}"


class TransferEngine:
    """Runs the transfers of one profile; the CLI, the window and the tests drive it."""

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
    ) -> None:
        self.journal = journal
        self.storage = storage
        self.catalog = catalog
        self.profile_name = profile_name
        self.options = options
        self.bus = bus or EventBus()
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.jitter = jitter
        self.limiter = BandwidthLimiter(options.bandwidth_limit, clock=clock, sleep=sleep)
        self.budget = ByteBudget(options.memory_budget)
        self._controls: dict[int, TransferControl] = {}
        self._interrupted = threading.Event()
        self._controls_lock = threading.Lock()
        self._part_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.concurrency, thread_name_prefix="ferry-part"
        )
        self.sender = ObjectSender(
            journal=journal,
            storage=storage,
            limiter=self.limiter,
            budget=self.budget,
            part_pool=self._part_pool,
            single_put_threshold=options.single_put_threshold,
            transition=self._transition,
            meter=lambda transfer_id, total, done: ProgressMeter(
                self.bus, self.clock, transfer_id, total, done
            ),
        )

    def interrupt(self) -> None:
        """Stop running transfers at their next check, leaving the journal as it is.

        Transfers waiting for a worker do not start at all. They resume at the
        next start; this is what quitting the program does, and it is final
        for this engine object.
        """
        self._interrupted.set()
        with self._controls_lock:
            for control in self._controls.values():
                control.pause.set()

    def close(self) -> None:
        self.interrupt()
        self._part_pool.shutdown(wait=True, cancel_futures=True)

    # -- queueing -----------------------------------------------------------

    def enqueue(self, paths: Iterable[Path | str], prefix: str) -> list[TransferRecord]:
        """Queue every file under the paths; bad input becomes a failed transfer each."""
        return self._queue([*expand(paths, prefix)])

    def queue_files(
        self, items: Iterable[tuple[Path, str]], on_conflict: KeyConflictPolicy
    ) -> list[TransferRecord]:
        """Queue files under keys chosen by the caller (a watched folder)."""
        return self._queue([check_file(path, key) for path, key in items], on_conflict)

    def _queue(
        self,
        found: list[SourceFile | SourceProblem],
        on_conflict: KeyConflictPolicy = KeyConflictPolicy.FAIL,
    ) -> list[TransferRecord]:
        news = []
        for item in found:
            if isinstance(item, SourceProblem):
                log.warning("Not queued: %s", item.message)
                news.append(
                    NewTransfer(
                        source_path=str(item.path),
                        identity=SourceIdentity(0, 0, 0, 0),
                        profile=self.profile_name,
                        bucket=self.storage.bucket,
                        key=item.key,
                        content_type="",
                        part_size=self.options.part_size,
                        part_count=0,
                        state=TransferState.FAILED,
                        error=TransferError("input", item.title, item.message),
                    )
                )
            else:
                news.append(dataclasses.replace(self._new_transfer(item), on_conflict=on_conflict))
        records = self.journal.add_many(news)
        for record in records:
            self.bus.publish(TransferQueued(TransferSnapshot.of(record)))
        return records

    def _new_transfer(self, source: SourceFile) -> NewTransfer:
        size = source.stat.st_size
        part_size = choose_part_size(size, self.options.part_size)
        content_type = mimetypes.guess_type(source.path.name)[0] or "application/octet-stream"
        return NewTransfer(
            source_path=str(source.path),
            identity=SourceIdentity.of(source.stat),
            profile=self.profile_name,
            bucket=self.storage.bucket,
            key=source.key,
            content_type=content_type,
            part_size=part_size,
            part_count=len(part_plan(size, part_size)),
        )

    def queue_reupload(self, source: Path, key: str, file_id: int, sha256: str) -> TransferRecord:
        """A repair: send source to key again for an existing (missing) catalog row.

        The transfer starts at uploading with the row and hash known, so the
        catalog reservation (which would call it a duplicate) is skipped; it
        is verified and registered like any other upload.
        """
        found = check_file(source, key)
        if isinstance(found, SourceProblem):
            raise SourceError(found.message, title=found.title)
        record = self.journal.add(self._new_transfer(found))
        return self.journal.set_state(
            record.id, TransferState.UPLOADING, sha256=sha256, catalog_file_id=file_id
        )

    # -- control ------------------------------------------------------------

    def _control(self, transfer_id: int) -> TransferControl:
        with self._controls_lock:
            return self._controls.setdefault(transfer_id, TransferControl())

    def pause(self, transfer_ids: Iterable[int] | None = None) -> int:
        ids = None if transfer_ids is None else list(transfer_ids)
        count = self.journal.set_paused(ids, True)
        with self._controls_lock:
            for transfer_id, control in self._controls.items():
                if ids is None or transfer_id in ids:
                    control.pause.set()
        self._publish_all(ids)
        return count

    def unpause(self, transfer_ids: Iterable[int] | None = None) -> int:
        ids = None if transfer_ids is None else list(transfer_ids)
        count = self.journal.set_paused(ids, False)
        with self._controls_lock:
            for transfer_id, control in self._controls.items():
                if ids is None or transfer_id in ids:
                    control.pause.clear()
        self._publish_all(ids)
        return count

    def _publish_all(self, ids: list[int] | None) -> None:
        for record in self.journal.all():
            if ids is None or record.id in ids:
                self.bus.publish(TransferChanged(TransferSnapshot.of(record)))

    def cancel(self, transfer_ids: Iterable[int]) -> list[TransferRecord]:
        """Cancel: a running transfer stops at its next check; others compensate now."""
        results = []
        for transfer_id in transfer_ids:
            record = self.journal.get(transfer_id)
            if record.state.finished:
                results.append(record)
                continue
            with self._controls_lock:
                running = self._controls.get(transfer_id)
            if running is not None:
                running.cancel.set()
                results.append(record)
                continue
            self._compensate(record)
            results.append(self._transition(transfer_id, TransferState.CANCELLED))
        return results

    def retry(self, transfer_ids: Iterable[int] | None = None) -> list[TransferRecord]:
        """Put failed transfers back: to the step they can resume from, or to queued."""
        failed = self.journal.all([TransferState.FAILED])
        wanted = None if transfer_ids is None else set(transfer_ids)
        records = []
        for record in failed:
            if wanted is not None and record.id not in wanted:
                continue
            if record.error is not None and record.error.kind == "input":
                # Bad input is looked at afresh: the person may have fixed it.
                self.journal.remove(record.id)
                records.extend(self._queue([check_file(Path(record.source_path), record.key)]))
                continue
            records.append(self._transition(record.id, self._resume_state(record), attempts=0))
        return records

    @staticmethod
    def _resume_state(record: TransferRecord) -> TransferState:
        if record.etag is not None and record.catalog_file_id is not None:
            return TransferState.VERIFYING
        if record.catalog_file_id is not None and record.sha256 is not None:
            return TransferState.UPLOADING
        return TransferState.QUEUED

    # -- running ------------------------------------------------------------

    def runnable(self) -> list[TransferRecord]:
        return [r for r in self.journal.unfinished() if not r.paused]

    def run(
        self, transfer_ids: Iterable[int] | None = None, *, workers: int | None = None
    ) -> list[TransferRecord]:
        """Run the given (or all runnable) transfers until each is finished, failed or paused."""
        if transfer_ids is None:
            ids = [r.id for r in self.runnable()]
        else:
            wanted = set(transfer_ids)
            ids = [r.id for r in self.runnable() if r.id in wanted]
        if ids:
            count = workers or self.options.concurrency
            with concurrent.futures.ThreadPoolExecutor(
                max_workers=count, thread_name_prefix="ferry-file"
            ) as files:
                for future in [files.submit(self._process_safely, i) for i in ids]:
                    future.result()
        return [self.journal.get(i) for i in ids]

    def _transition(self, transfer_id: int, state: TransferState, **values: Any) -> TransferRecord:
        record = self.journal.set_state(transfer_id, state, **values)
        self.bus.publish(TransferChanged(TransferSnapshot.of(record)))
        return record

    def _fail(self, record: TransferRecord, error: FerryError, *, retryable: bool) -> None:
        kind = "transient" if retryable else "permanent"
        if isinstance(error, SourceChangedError):
            kind = "source_changed"
        retry_at = (
            self.now() + timedelta(seconds=self.options.retry_delay_after_failure)
            if retryable
            else None
        )
        message = error.message
        if retryable:
            message += (
                f" Ferry tried {record.attempts} times and stopped; it keeps what was sent, "
                "so Retry sends only the rest once the problem is gone."
            )
        failed = self.journal.set_failed(
            record.id, TransferError(kind, error.title, message), retry_at
        )
        log.error("Upload of %s failed: %s", record.source_path, error.message)
        self.bus.publish(TransferChanged(TransferSnapshot.of(failed)))

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * 2 ** (attempt - 1))
        return float(ceiling * (0.5 + 0.5 * self.jitter()))

    def _process_safely(self, transfer_id: int) -> None:
        if self._interrupted.is_set():
            return
        control = self._control(transfer_id)
        try:
            while True:
                record = self.journal.get(transfer_id)
                if record.paused or record.state.finished:
                    return  # paused or cancelled while it waited for a worker
                try:
                    control.check()
                    self._process(record, control)
                    return
                except Stopped as stop:
                    if stop.cancelled:
                        self._compensate(self.journal.get(transfer_id))
                        self._transition(transfer_id, TransferState.CANCELLED)
                    return
                except (StorageError, CatalogError) as exc:
                    retryable = getattr(exc, "transient", False)
                    if (
                        isinstance(exc, StorageError)
                        and exc.kind is StorageErrorKind.NO_SUCH_UPLOAD
                    ):
                        log.warning("%s: %s", record.key, exc.message)
                        self.sender.abandon(self.journal.get(transfer_id))
                        retryable = True
                    if not retryable:
                        self._compensate(self.journal.get(transfer_id))
                        self._fail(record, exc, retryable=False)
                        return
                    attempts = record.attempts + 1
                    self.journal.update(transfer_id, attempts=attempts)
                    if attempts >= self.options.max_attempts:
                        self._fail(self.journal.get(transfer_id), exc, retryable=True)
                        return
                    delay = self._backoff(attempts)
                    log.warning(
                        "%s: %s (attempt %s of %s, next in %.1f s)",
                        record.key,
                        exc.message,
                        attempts,
                        self.options.max_attempts,
                        delay,
                    )
                    self.sleep(delay)
                except FerryError as exc:
                    self._compensate(self.journal.get(transfer_id))
                    self._fail(record, exc, retryable=False)
                    return
        except Exception as exc:
            log.exception("Unexpected error in transfer %s", transfer_id)
            self._fail(
                self.journal.get(transfer_id),
                FerryError(
                    f"Unexpected error while uploading: {type(exc).__name__}: {exc}. "
                    "The transfer is kept; retry it, and report this if it happens again.",
                    title="Unexpected error",
                ),
                retryable=True,
            )
        finally:
            with self._controls_lock:
                self._controls.pop(transfer_id, None)

    def _process(self, record: TransferRecord, control: TransferControl) -> None:
        if record.state in (TransferState.QUEUED, TransferState.HASHING, TransferState.FAILED):
            record = self._hash_and_reserve(record)
            if record.state is TransferState.DUPLICATE:
                return
        if record.state is TransferState.UPLOADING:
            record = self.sender.upload(record, control)
        if record.state is TransferState.COMPLETING:
            control.check()
            record = self.sender.complete(record)
        if record.state is TransferState.VERIFYING:
            record = self.sender.verify(record)
        if record.state is TransferState.REGISTERING:
            assert record.catalog_file_id is not None and record.etag is not None
            self.catalog.activate(record.catalog_file_id, etag=record.etag)
            self._transition(record.id, TransferState.DONE)

    # -- steps --------------------------------------------------------------

    def _hash_and_reserve(self, record: TransferRecord) -> TransferRecord:
        self._transition(record.id, TransferState.HASHING)
        before = current_identity(record)
        digest = hashlib.sha256()
        try:
            with open(record.source_path, "rb") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise SourceError(f"{record.source_path} cannot be read: {exc.strerror}.") from None
        after = current_identity(record)
        if before != after:
            raise SourceChangedError(
                f"{record.source_path} changed while Ferry was reading it. Retry once the "
                "program writing it has finished."
            )
        sha256 = digest.hexdigest()
        if record.catalog_file_id is not None and record.sha256 not in (None, sha256):
            # The file changed while Ferry was not running: the old intent goes.
            self.catalog.release(record.catalog_file_id, reason="source changed before upload")
        part_size = choose_part_size(after.size, self.options.part_size)
        count = len(part_plan(after.size, part_size))
        hashed = {
            "sha256": sha256,
            "source_size": after.size,
            "source_mtime_ns": after.mtime_ns,
            "source_device": after.device,
            "source_inode": after.inode,
            "part_size": part_size,
            "part_count": count,
        }
        if after != record.identity and record.upload_id is not None:
            self.sender.abandon(record)
        # What the hash found is committed together with the reservation's
        # outcome: a crash in between hashes again and finds its own intent.
        reservation, key = self._reserve(record, after.size, sha256)
        hashed["key"] = key
        if reservation.outcome is ReservationOutcome.DUPLICATE:
            log.info("%s is already stored as %s", record.source_path, reservation.record.key)
            return self._transition(
                record.id, TransferState.DUPLICATE, duplicate_of=reservation.record.key, **hashed
            )
        return self._transition(
            record.id, TransferState.UPLOADING, catalog_file_id=reservation.record.id, **hashed
        )

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
            )
            try:
                return self.catalog.reserve(intent), key
            except KeyConflictError:
                policy = record.on_conflict
                if policy is KeyConflictPolicy.FAIL:
                    raise
                if policy is KeyConflictPolicy.OVERWRITE and attempt == 1:
                    # The old row is marked deleted (audited, announced) before
                    # the new bytes replace its object: invariant 2 holds.
                    self.catalog.mark_deleted(record.bucket, record.key)
                    continue
                key = suffixed_key(record.key, attempt + 1)
        raise KeyConflictError(f"No free name was found for {record.key!r}.")

    # -- compensation ---------------------------------------------------------

    def _compensate(self, record: TransferRecord) -> None:
        """Undo a transfer that will not finish, last step first; log what could not be."""
        leftovers = []
        wrote_object = record.state in (TransferState.VERIFYING, TransferState.REGISTERING)
        if wrote_object and record.catalog_file_id is not None:
            try:
                self.storage.delete_object(record.key)
            except StorageError as exc:
                leftovers.append(f"object {record.key!r} ({exc.message})")
        if record.upload_id is not None:
            try:
                self.storage.abort_multipart_upload(record.key, record.upload_id)
                self.journal.forget_upload(record.id)
            except StorageError as exc:
                leftovers.append(f"multipart upload of {record.key!r} ({exc.message})")
        if record.catalog_file_id is not None:
            try:
                self.catalog.release(record.catalog_file_id, reason="upload failed or cancelled")
                self.journal.update(record.id, catalog_file_id=None)
            except CatalogError as exc:
                leftovers.append(f"catalog intent row {record.catalog_file_id} ({exc.message})")
        if leftovers:
            log.error(
                "Could not clean up after %s: %s. The consistency check will show it.",
                record.source_path,
                "; ".join(leftovers),
            )
