"""The Ferry application object: one facade over journal, catalog, storage, engine.

The CLI and the window are thin over :class:`Ferry`; they never touch the
modules behind it directly. Everything it needs (paths, environment, keyring)
is passed in. A profile marked ``sandbox`` gets its local server started (or
reused) when Ferry opens and stopped when Ferry closes, if this Ferry started it.
What is not the facade lives beside it: :mod:`.environment`, :mod:`.run_mode`,
:mod:`.sandbox_profile`, :mod:`.relay_wiring`, :mod:`.diagnosis`, and the
facade's own helpers :mod:`.deletion`, :mod:`.system_follow`,
:mod:`.folder_following` and :mod:`.profile_checks`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from desktop_app.core.catalog.database import CatalogMode
from desktop_app.core.catalog.peek import OutboxBacklog
from desktop_app.core.catalog.records import DeleteOutcome, FileQuery, FileRecord
from desktop_app.core.catalog.service import CatalogService, open_catalog
from desktop_app.core.check.checker import ConsistencyChecker
from desktop_app.core.check.findings import (
    CheckOptions,
    CheckReport,
    Finding,
    RepairResult,
    write_report,
)
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.model.errors import FerryError
from desktop_app.core.model.events import EventBus
from desktop_app.core.model.failures import ConflictChoice
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import AttemptRecord, TransferRecord
from desktop_app.core.runtime.control import ControlServer, endpoint_address
from desktop_app.core.runtime.deletion import RegisteredObjectDeleter
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.facade import FacadeCall, invoke
from desktop_app.core.runtime.folder_following import FolderFollowing
from desktop_app.core.runtime.logs import REDACTOR
from desktop_app.core.runtime.profile_checks import ProfileChecks
from desktop_app.core.runtime.run_mode import RunMode
from desktop_app.core.runtime.sandbox import SandboxServer
from desktop_app.core.runtime.sandbox_profile import start_sandbox
from desktop_app.core.runtime.system_follow import SystemFollower
from desktop_app.core.runtime.watcher import (
    FolderStatus,
    FolderWatcher,
    WatchedFolder,
)
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import (
    CredentialSource,
    catalog_password,
    require_s3_credentials,
)
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.coordinator import TransferCoordinator
from desktop_app.core.transfers.cores import CoreSharing, system_affinity
from desktop_app.core.transfers.engine import TransferEngine
from desktop_app.core.transfers.in_flight import SMALL_FILES_CEILING
from desktop_app.core.transfers.options import EngineOptions
from desktop_app.core.transfers.prepass import HashesAhead
from desktop_app.core.transfers.protection import (
    PROTECTION_FILE,
    EndpointGuard,
    ProtectionMemory,
)
from desktop_app.core.transfers.scheduler import HoldBackReason, Scheduler, SchedulerOptions

log = logging.getLogger(__name__)


class Ferry:
    """One open profile: upload, resume, inspect, retry, cancel, delete, list."""

    def __init__(
        self,
        *,
        profile: Profile,
        env: Environment,
        storage: S3Storage,
        catalog: CatalogService,
        journal: Journal,
        bus: EventBus,
        credential_source: CredentialSource,
        sandbox: SandboxServer | None = None,
        mode: RunMode = RunMode.ONE_SHOT,
        scheduler_options: SchedulerOptions | None = None,
        hashes_ahead: HashesAhead | None = None,
    ) -> None:
        self.profile = profile
        self.env = env
        self.storage = storage
        self.catalog = catalog
        self.journal = journal
        self.bus = bus
        self.credential_source = credential_source
        self._sandbox = sandbox
        self.mode = mode
        # Told when the system holds uploads back or lets them go (the window
        # shows it): the text, and every reason holding them now.
        self.on_system_notice: Callable[[str, frozenset[HoldBackReason]], None] | None = None
        # Told how far a check started with run_check has got: objects, rows.
        self.on_check_progress: Callable[[int, int], None] | None = None
        self.engine = TransferEngine(
            journal=journal,
            storage=storage,
            catalog=catalog,
            profile_name=profile.name,
            options=EngineOptions(
                part_size=profile.part_size,
                concurrency=profile.concurrency,
                memory_budget=profile.memory_budget,
                bandwidth_limit=profile.bandwidth_limit,
                bandwidth_schedule=profile.schedule if profile.bandwidth_schedule else None,
                retry=mode.retry,
                duplicates=profile.duplicate_policy,
            ),
            bus=bus,
            hashes_ahead=hashes_ahead,
            # This Ferry's own threads only: one process may run several Ferrys (tests do).
            cores=CoreSharing(system_affinity(), threads=self.transfer_threads),
            # What the endpoint does with conditional writes, learnt once per endpoint.
            guard=EndpointGuard(
                storage,
                ProtectionMemory(env.paths.data_dir / PROTECTION_FILE),
                prefix=profile.prefix,
            ),
        )
        self.scheduler = Scheduler(
            self.engine,
            scheduler_options or mode.scheduler_options(profile.concurrency),
            probe=storage.answers,
        )
        # A person's cancel, pause and retry: the one way they reach transfers.
        self.coordinator = TransferCoordinator(self.engine)
        # What a resident Ferry follows of the system (see start).
        self._system = SystemFollower(
            profile=profile,
            environ=env.environ,
            scheduler=self.scheduler,
            sandbox=sandbox,
            announce=self._announce,
        )
        self._deleter = RegisteredObjectDeleter(storage, profile.retention_seconds)
        self._folders = FolderFollowing(
            journal=journal,
            profile=profile,
            intake=self.engine.intake,
            scheduler=self.scheduler,
            folders_file=env.paths.watched_folders_file,
            start=self.start,
        )
        self._checks = ProfileChecks(
            storage=storage,
            catalog=catalog,
            journal=journal,
            profile=profile,
            data_dir=env.paths.data_dir,
            reupload=self._reupload,
        )

    @classmethod
    def open(
        cls,
        env: Environment,
        profile_name: str | None = None,
        *,
        mode: RunMode = RunMode.ONE_SHOT,
        scheduler_options: SchedulerOptions | None = None,
        read_only: bool = False,
        hashes_ahead: HashesAhead | None = None,
    ) -> Ferry:
        """Open a profile. ``read_only`` reads the journal beside a running Ferry
        (``status``, ``ls``, ``check`` without repairs); it can queue nothing.
        ``hashes_ahead``: the pre-pass a command started before opening it, for
        the engine to take (the caller closes it)."""
        profile = env.profile(profile_name)
        env.paths.ensure()
        sandbox: SandboxServer | None = None
        if profile.sandbox:
            sandbox, _state, profile = start_sandbox(env)
            profile = profile.with_env_overrides(env.environ)
        opened: list[object] = []
        try:
            credentials = require_s3_credentials(profile, env.secrets, env.environ)
            REDACTOR.add_secret(credentials.secret_access_key)
            REDACTOR.add_binary_secret(credentials.sse_customer_key)
            log.info("Profile %s: S3 credentials from %s", profile.name, credentials.source.value)
            # Parts of large files, single-request files up to their window, and a few
            # for probes and listings: none waits for a connection.
            storage = S3Storage.connect(
                profile,
                credentials,
                max_connections=profile.concurrency + SMALL_FILES_CEILING + 4,
            )
            password = catalog_password(profile, env.secrets, env.environ)
            REDACTOR.add_secret(password)
            catalog = open_catalog(
                profile.catalog_url,
                owner=profile.owner,
                password=password,
                mode=CatalogMode.READ_ONLY if read_only else CatalogMode.MAY_MIGRATE,
                journal_file=env.paths.journal_file,
            )
            opened.append(catalog)
            journal = Journal(env.paths.journal_file, read_only=read_only)
        except BaseException:
            for thing in opened:
                if isinstance(thing, CatalogService):
                    thing.close()
            if sandbox is not None:
                sandbox.stop()
            raise
        return cls(
            profile=profile,
            env=env,
            storage=storage,
            catalog=catalog,
            journal=journal,
            bus=EventBus(),
            credential_source=credentials.source,
            sandbox=sandbox,
            mode=mode,
            scheduler_options=scheduler_options,
            hashes_ahead=hashes_ahead,
        )

    def transfer_threads(self) -> list[threading.Thread]:
        """The threads that run a small file's Python between its socket calls: the
        scheduler's and its file workers', and the journal's and catalog's writers'."""
        return [*self.scheduler.threads(), *self.journal.threads(), *self.catalog.threads()]

    def close(self, patience: float | None = None) -> bool:
        """Stop watching and uploading, close the journal and the catalog.

        ``patience``: the seconds running uploads get to stop at their next
        check (without it, as long as they take). An upload still on the wire
        then is left to the end of the process, the journal and the catalog
        with it, and False is returned: end the process now. Nothing is lost:
        its parts not yet confirmed are sent again at the next start.
        """
        self._system.stop()  # first: nothing may start the sandbox server again now
        self._folders.stop()
        stopped = self.scheduler.stop(patience)
        if stopped:
            self.engine.close()
            self.journal.close()
            self.catalog.close()
        if self._sandbox is not None:
            self._sandbox.stop()
        return stopped

    def __enter__(self) -> Ferry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transfers ------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler (once): from now on queued transfers run by themselves.

        A resident Ferry (the window, `ferry watch`) also follows the system:
        uploads held while the network is metered (if the profile says so),
        the computer kept awake while they run (unless the profile says not).
        """
        self.scheduler.start()
        if self.mode is RunMode.RESIDENT:
            self._system.start()

    def _announce(self, text: str) -> None:
        log.info("%s", text)
        if self.on_system_notice is not None:
            self.on_system_notice(text, self.scheduler.held_back_for)

    def queue(self, paths: Iterable[Path | str], prefix: str | None = None) -> list[TransferRecord]:
        """Write the paths into the journal as transfers and wake the scheduler."""
        key_prefix = self.profile.prefix if prefix is None else prefix
        queued = self.engine.intake.queue_paths(paths, key_prefix)
        self.scheduler.wake()
        return queued

    def wait(
        self, transfer_ids: Iterable[int], *, patience: int | None = None
    ) -> list[TransferRecord]:
        """Run until each transfer is settled (done, duplicate, cancelled, or failed
        for good in this run, or ``patience`` attempts failed); returns them as they then are."""
        self.start()
        handles = self.scheduler.submit(transfer_ids)
        try:
            return self.scheduler.wait(handles, patience=patience)
        finally:
            self.scheduler.let_go(handles)

    def upload(
        self, paths: Iterable[Path | str], prefix: str | None = None
    ) -> list[TransferRecord]:
        """Queue the paths and wait until each is done or failed."""
        return self.wait([r.id for r in self.queue(paths, prefix)])

    def resume(self, *, patience: int | None = None) -> list[TransferRecord]:
        """Finish every unfinished, unpaused transfer of this profile, and try the
        failures that are retried on their own now rather than at their time."""
        return self.wait([r.id for r in self._resumable()], patience=patience)

    def _resumable(self) -> list[TransferRecord]:
        self.scheduler.retry_waiting_now()
        return self.journal.runnable([self.profile.name], datetime.now(UTC))

    def listen(self) -> ControlServer:
        """Answer other `ferry` commands on this user's local endpoint (the owner only)."""
        self.start()
        return ControlServer(endpoint_address(self.env.paths.data_dir), type(self), self.answer)

    def answer(self, profile: str | None, call: FacadeCall) -> object:
        """Carry out a call of a facade method handed over by another `ferry` command."""
        if profile is not None and profile != self.profile.name:
            raise FerryError(
                f"The running Ferry (pid {os.getpid()}) uses profile {self.profile.name!r}, "
                f"not {profile!r}, and only one Ferry runs on a journal. Switch its profile, "
                "or stop it and run the command again.",
                title="Another profile is running",
            )
        return invoke(self, call)

    def transfers(self, states: Iterable[TransferState] | None = None) -> list[TransferRecord]:
        return self.journal.all(states)

    def window_history(self, finished_kept: int) -> list[TransferRecord]:
        """Every unfinished transfer and the newest finished ones not cleared."""
        return self.journal.window_history(finished_kept)

    def clear_finished(self, transfer_ids: Iterable[int]) -> int:
        """Hide finished transfers from the window; the journal's history keeps them."""
        return self.journal.clear_finished(transfer_ids)

    def attempts(self, transfer_ids: Iterable[int]) -> dict[int, list[AttemptRecord]]:
        return self.journal.attempts_of(transfer_ids)

    def retry(self, transfer_ids: Iterable[int] | None = None) -> list[TransferRecord]:
        """A person's Retry: put failed transfers back and wake the scheduler."""
        retried = self.coordinator.retry(transfer_ids)
        self.scheduler.wake()
        return retried

    def cancel(self, transfer_ids: Iterable[int]) -> list[TransferRecord]:
        cancelled = self.coordinator.cancel(transfer_ids)
        self.scheduler.wake()  # waiters look again at once
        return cancelled

    def resolve(
        self, transfer_id: int, choice: ConflictChoice, seen_etag: str | None = None
    ) -> TransferRecord:
        """A person's answer to a conflict (Failed inbox, `ferry resolve`): upload under
        the next free name, replace the object seen (``seen_etag``; None: the one at
        the key now), or skip; the transfer as it then is."""
        resolved = self.coordinator.resolve(transfer_id, choice, seen_etag)
        self.scheduler.wake()
        return resolved

    def pause(self, transfer_ids: Iterable[int] | None = None) -> int:
        count = self.coordinator.pause(transfer_ids)
        self.scheduler.wake()
        return count

    def unpause(self, transfer_ids: Iterable[int] | None = None) -> int:
        count = self.coordinator.unpause(transfer_ids)
        self.scheduler.wake()
        return count

    # -- catalog ----------------------------------------------------------------

    def delete(self, key: str) -> DeleteOutcome:
        """Invariant 2: the row is marked deleted (committed) before the object goes.

        The object goes only while it is the one Ferry registered (If-Match on
        the row's ETag): one another program wrote over it since stays. In a
        bucket that keeps versions, the version Ferry wrote goes, bytes and all
        (a plain delete would only hide them behind a delete marker), unless
        the profile keeps deleted files for a while: then it is hidden by a
        marker and the check removes it once that time has passed.
        """
        return self.catalog.delete(self.profile.bucket, key, self._deleter.delete)

    def outbox_backlog(self) -> OutboxBacklog:
        """Catalog events not yet published by a relay (and those set aside)."""
        return self.catalog.outbox_backlog()

    def files(self, query: FileQuery) -> list[FileRecord]:
        return self.catalog.search(dataclasses.replace(query, bucket=self.profile.bucket))

    def head(self, key: str) -> ObjectInfo | None:
        return self.storage.head_object(key)

    def server_software(self) -> str:
        return self.storage.server_software()

    # -- watched folders ------------------------------------------------------------

    def watch_saved_folders(self) -> None:
        """Watch the folders kept in the config dir (a resident Ferry, at its start)."""
        self._folders.watch_saved()

    def set_watched_folders(self, folders: list[WatchedFolder]) -> None:
        """Keep these as the watched folders and watch them from now on."""
        self._folders.set_folders(folders)

    def folder_statuses(self) -> list[FolderStatus]:
        """How each watched folder fares (copies: the watcher updates its own in place)."""
        return self._folders.statuses()

    def watch(
        self,
        folders: list[WatchedFolder],
        *,
        settle_seconds: float = 3.0,
        force_polling: bool = False,
    ) -> FolderWatcher:
        """Start watching; settled files are queued and the scheduler is woken.

        Only a resident Ferry watches: a one-shot one runs only what it waits for.
        """
        return self._folders.watch(
            folders, settle_seconds=settle_seconds, force_polling=force_polling
        )

    # -- consistency --------------------------------------------------------------

    def checker(self) -> ConsistencyChecker:
        return self._checks.checker()

    def _reupload(
        self, source: Path, key: str, file_id: int, sha256: str, replaces_etag: str | None
    ) -> bool:
        """A repair's re-upload, sent like any transfer of this profile; whether it is done."""
        record = self.engine.intake.queue_reupload(
            source, key, file_id, sha256, replaces_etag=replaces_etag
        )
        [finished] = self.wait([record.id])
        return finished.state is TransferState.DONE

    def check(self, options: CheckOptions | None = None) -> CheckReport:
        """Run the consistency check and keep its report as the last one."""
        return self._checks.check(options)

    def run_check(self, *, without_grace: bool = False) -> CheckReport:
        """The profile's check, which :meth:`cancel_check` stops and ``on_check_progress``
        follows; ``without_grace`` judges objects and rows of any age."""
        return self._checks.run(without_grace=without_grace, progress=self.on_check_progress)

    def cancel_check(self) -> None:
        """Stop the check that :meth:`run_check` runs (a check not yet started is not stopped)."""
        self._checks.cancel()

    def repair(
        self, findings: list[Finding], *, adopt_owner: str | None = None
    ) -> list[RepairResult]:
        return self.checker().repair(findings, adopt_owner=adopt_owner)

    def export_report(self, report: CheckReport, path: Path) -> None:
        """Save a check's report as JSON (.json) or CSV (anything else)."""
        write_report(report, path)

    def last_report(self) -> dict[str, object] | None:
        """The last check's report as saved (JSON), with when it ran and how long it took."""
        return self._checks.last_report()
