"""The Ferry application object: one facade over journal, catalog, storage, engine.

The CLI and the window are thin over :class:`Ferry`; they never touch the
modules behind it directly. Everything it needs (paths, environment, keyring)
is passed in. A profile marked ``sandbox`` gets its local server started (or
reused) when Ferry opens and stopped when Ferry closes, if this Ferry started it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from desktop_app.core.catalog.service import (
    CatalogMode,
    CatalogService,
    DeleteOutcome,
    FileQuery,
    FileRecord,
    OutboxBacklog,
    open_catalog,
)
from desktop_app.core.check.checker import (
    CheckOptions,
    CheckReport,
    ConsistencyChecker,
    Finding,
    RepairResult,
    write_report,
)
from desktop_app.core.journal.store import (
    AttemptRecord,
    Journal,
    KeyConflictPolicy,
    SourceIdentity,
    TransferRecord,
    TransferState,
)
from desktop_app.core.model.errors import ErrorCause, FerryError, StorageError, StorageErrorKind
from desktop_app.core.model.events import EventBus
from desktop_app.core.model.failures import ConflictChoice
from desktop_app.core.relay.publisher import EventPublisher, JetStreamPublisher, Relay
from desktop_app.core.runtime.control import ControlServer, endpoint_address

# Light, and re-exported here: the CLI's reading commands start from it alone.
from desktop_app.core.runtime.environment import Environment as Environment
from desktop_app.core.runtime.facade import FacadeCall, invoke
from desktop_app.core.runtime.logs import REDACTOR
from desktop_app.core.runtime.sandbox import (
    SANDBOX_BUCKET,
    SandboxAccess,
    SandboxKeeper,
    SandboxServer,
    SandboxState,
    find_weed,
)
from desktop_app.core.runtime.system_bus import (
    AwakeWhileBusy,
    MeteredWatch,
    SleepInhibitor,
    system_bus_address,
)
from desktop_app.core.runtime.watcher import (
    FolderStatus,
    FolderWatcher,
    WatchedFolder,
    WatchedFolderStore,
)
from desktop_app.core.settings.profiles import DEFAULT_PROFILE_NAME, Encryption, Profile
from desktop_app.core.settings.secrets import (
    SANDBOX_ACCESS_KEY,
    SANDBOX_SECRET_KEY,
    CredentialSource,
    catalog_password,
    describe_encryption,
    missing_customer_key,
    require_s3_credentials,
    resolve_s3_credentials,
)
from desktop_app.core.storage.s3 import KEPT_BY_RULES, ObjectInfo, S3Storage
from desktop_app.core.transfers.checksums import CHECKSUM_FILE, ChecksumMemory, integrity
from desktop_app.core.transfers.coordinator import TransferCoordinator
from desktop_app.core.transfers.engine import TransferEngine
from desktop_app.core.transfers.options import EngineOptions
from desktop_app.core.transfers.protection import (
    PROTECTION_FILE,
    EndpointGuard,
    LearntProtection,
    ProtectionMemory,
    endpoint_key,
)
from desktop_app.core.transfers.retry import RetryPolicy
from desktop_app.core.transfers.scheduler import HoldReason, Runs, Scheduler, SchedulerOptions

log = logging.getLogger(__name__)


# Failed attempts after which a command that waits reports a transfer as failed
# (with its next try time); a resident Ferry goes on trying it by itself.
ONE_SHOT_PATIENCE = 5
OTHERS_VERSION_KEPT = (
    "Another program's object, written at this key after Ferry's, was left in place byte for byte."
)


def _days(seconds: int) -> str:
    days = seconds / 86400
    if days >= 1:
        return f"{days:g} day{'s' if days != 1 else ''}"
    return f"{seconds / 3600:g} hours"


class RunMode(enum.Enum):
    """How long this Ferry runs, which decides how long it keeps retrying by itself."""

    ONE_SHOT = "one_shot"  # a command that ends: a few quick retries, then report
    RESIDENT = "resident"  # the window or `ferry watch`: retry for as long as it runs

    @property
    def retry(self) -> RetryPolicy:
        if self is RunMode.ONE_SHOT:
            return RetryPolicy(base=0.5, cap=30.0, give_up_after=ONE_SHOT_PATIENCE)
        return RetryPolicy(base=5.0, cap=3600.0)

    def scheduler_options(self, workers: int) -> SchedulerOptions:
        if self is RunMode.ONE_SHOT:
            return SchedulerOptions(workers=workers, probe_interval=5.0, runs=Runs.AWAITED)
        return SchedulerOptions(workers=workers, probe_interval=15.0)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def sandbox_access(profile: Profile) -> SandboxAccess:
    """The sandbox's address and placeholder keys, for other programs."""
    return SandboxAccess(
        profile.endpoint_url or "", profile.bucket, SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY
    )


def sandbox_running(env: Environment) -> bool:
    return SandboxServer(env.paths.sandbox_dir, Path("weed")).running() is not None


def start_sandbox(env: Environment) -> tuple[SandboxServer, SandboxState, Profile]:
    """Start (or reuse) the sandbox server and write the "local" profile for it."""
    env.paths.ensure()
    server = SandboxServer(env.paths.sandbox_dir, find_weed(env.environ))
    state = server.start()
    store = env.profiles
    try:
        existing = store.get(DEFAULT_PROFILE_NAME)
    except FerryError:
        existing = None
    profile = Profile(
        name=DEFAULT_PROFILE_NAME,
        bucket=SANDBOX_BUCKET,
        catalog_url=env.paths.default_catalog_url(DEFAULT_PROFILE_NAME),
        endpoint_url=state.endpoint_url,
        sandbox=True,
    )
    if existing is not None and existing.sandbox:
        profile = dataclasses.replace(existing, endpoint_url=state.endpoint_url)
    if existing is None or existing != profile:
        if existing is not None and not existing.sandbox:
            server.stop()
            raise FerryError(
                f"A profile named {DEFAULT_PROFILE_NAME!r} exists and is not the sandbox; "
                "remove or rename it first (`ferry profile remove local`).",
                title="Profile name taken",
            )
        store.save(profile, make_default=existing is None)
    credentials = resolve_s3_credentials(profile, env.secrets, env.environ)
    REDACTOR.add_binary_secret(credentials.sse_customer_key)
    storage = S3Storage.connect(profile, credentials)
    try:
        storage.create_bucket_if_missing()
    except StorageError:
        server.stop()
        raise
    return server, state, profile


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
        self.on_system_notice: Callable[[str, frozenset[HoldReason]], None] | None = None
        self._system_watches: list[MeteredWatch | AwakeWhileBusy] = []
        # Told how far a check started with run_check has got: objects, rows.
        self.on_check_progress: Callable[[int, int], None] | None = None
        self._check_cancel = threading.Event()
        self._folder_watcher: FolderWatcher | None = None
        self._sandbox_keeper: SandboxKeeper | None = None
        self._folders_lock = threading.Lock()
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

    @classmethod
    def open(
        cls,
        env: Environment,
        profile_name: str | None = None,
        *,
        mode: RunMode = RunMode.ONE_SHOT,
        scheduler_options: SchedulerOptions | None = None,
        read_only: bool = False,
    ) -> Ferry:
        """Open a profile. ``read_only`` reads the journal beside a running Ferry
        (``status``, ``ls``, ``check`` without repairs); it can queue nothing."""
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
            storage = S3Storage.connect(
                profile, credentials, max_connections=profile.concurrency + 4
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
        )

    def close(self, patience: float | None = None) -> bool:
        """Stop watching and uploading, close the journal and the catalog.

        ``patience``: the seconds running uploads get to stop at their next
        check (without it, as long as they take). An upload still on the wire
        then is left to the end of the process, the journal and the catalog
        with it, and False is returned: end the process now. Nothing is lost:
        its parts not yet confirmed are sent again at the next start.
        """
        if self._sandbox_keeper is not None:
            self._sandbox_keeper.stop()  # first: nothing may start the server again now
        with self._folders_lock:
            if self._folder_watcher is not None:
                self._folder_watcher.stop()
                self._folder_watcher = None
        for watch in self._system_watches:
            watch.stop()
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
        if self.mode is RunMode.RESIDENT and not self._system_watches:
            self._watch_system()
        if self.mode is RunMode.RESIDENT and self._sandbox is not None and self._sandbox.owned:
            with self._folders_lock:
                if self._sandbox_keeper is None:
                    self._sandbox_keeper = SandboxKeeper(self._sandbox, self._sandbox_restarted)
                    self._sandbox_keeper.start()

    def _sandbox_restarted(self, text: str) -> None:
        self._announce(text)
        # What failed while the server was away is tried at once, not at its time.
        self.scheduler.retry_waiting_now()
        self.scheduler.wake()

    def _watch_system(self) -> None:
        bus = system_bus_address(self.env.environ)
        if self.profile.pause_on_metered:
            metered = MeteredWatch(self._metered_changed, bus_address=bus)
            metered.start()
            self._system_watches.append(metered)
            if metered.unavailable is not None:
                self._announce(f"Pause on a metered connection is off: {metered.unavailable}.")
        if self.profile.keep_awake:
            awake = AwakeWhileBusy(
                SleepInhibitor(bus_address=bus), lambda: bool(self.scheduler.held())
            )
            awake.start()
            self._system_watches.append(awake)

    def _metered_changed(self, metered: bool) -> None:
        if not self.scheduler.hold_back(HoldReason.METERED, metered):
            return
        if metered:
            self._announce(
                f"Uploads paused: {HoldReason.METERED.description}. They go on by themselves "
                "when it is not (Settings: pause on a metered connection)."
            )
        else:
            self._announce("The connection is no longer metered: uploads go on.")

    def _announce(self, text: str) -> None:
        log.info("%s", text)
        if self.on_system_notice is not None:
            self.on_system_notice(text, self.scheduler.holds)

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
        return self.catalog.delete(self.profile.bucket, key, self._delete_registered)

    def _delete_registered(self, row: FileRecord) -> str | None:
        try:
            found = self.storage.head_object(row.key) if row.version_id is None else None
            version = row.version_id or self._unrecorded_version(row, found)
            if version is not None:
                return self._delete_version(row, version)
            if found is not None and row.etag is not None and found.etag != row.etag:
                # Looked at first: a server that ignores If-Match on DELETE (rclone
                # serve s3, Ceph) would delete another program's object.
                raise self._left_in_place(row, "412", looked=True)
            # Size and SHA-256 let a refusal be looked at (Swift's multipart objects).
            self.storage.delete_object(row.key, if_match=row.etag, size=row.size, sha256=row.sha256)
            return None
        except StorageError as exc:
            if exc.title == KEPT_BY_RULES or exc.code == "VersionMismatch":
                raise  # says what to do already
            if exc.kind is StorageErrorKind.PRECONDITION_FAILED:
                raise self._left_in_place(row, exc.code) from exc
            raise StorageError(
                f"{exc.message} `ferry check` will offer to remove the object.",
                kind=exc.kind,
                code=exc.code,
                title=exc.title,
                cause=exc.cause,
            ) from exc

    @staticmethod
    def _left_in_place(row: FileRecord, code: str, *, looked: bool = False) -> StorageError:
        how = " (Ferry looked at it just before deleting)" if looked else ""
        return StorageError(
            f"The object at {row.key!r} is no longer the one Ferry uploaded: another "
            f"program wrote that key since{how}. It was left in place; only Ferry's record "
            "of the file was removed.",
            kind=StorageErrorKind.PERMANENT,
            code=code,
            title="Written by another program",
            cause=ErrorCause.CONFLICT,
        )

    def _unrecorded_version(self, row: FileRecord, found: ObjectInfo | None) -> str | None:
        """The version of a row that recorded none (uploaded before versions were
        recorded): the key's current one (``found``, HEADed by the caller), while it
        has the row's ETag and size (the proof the delete by If-Match relied on).
        None where the bucket keeps no versions. The same HEAD keeps a server that
        ignores If-Match on DELETE from deleting another program's object."""
        if found is None or found.version_id is None:
            return None
        if found.etag != row.etag or found.size != row.size:
            return None
        return found.version_id

    def _delete_version(self, row: FileRecord, version_id: str) -> str | None:
        """Remove the version Ferry wrote, or hide it while the profile keeps deleted files.

        Another program's version written over Ferry's is never touched: it
        stays current, byte for byte. The answer is a note on what stayed.
        """
        retention = self.profile.retention_seconds
        if retention > 0:
            on_top = False
            try:  # a delete marker, only over Ferry's own version
                self.storage.delete_object(
                    row.key, if_match=row.etag, size=row.size, sha256=row.sha256
                )
            except StorageError as exc:
                if exc.kind is not StorageErrorKind.PRECONDITION_FAILED:
                    raise
                on_top = True  # another program's version is current: it stays so
            until = (row.deleted_at or datetime.now(UTC)) + timedelta(seconds=retention)
            return (
                (OTHERS_VERSION_KEPT + " " if on_top else "")
                + f"Ferry's version stays in the bucket's history (not listed) until "
                f"{until:%Y-%m-%d %H:%M} UTC: the profile keeps deleted files for "
                f"{_days(retention)}. `ferry check --repair` removes it after that."
            )
        current = self.storage.head_object(row.key)
        self.storage.delete_version(
            row.key, version_id, etag=row.etag or "", file=row.original_name
        )
        if current is not None and current.version_id != version_id:
            return OTHERS_VERSION_KEPT + " Only Ferry's version was removed."
        return None

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

    def already_sent(self, path: Path, info: os.stat_result) -> bool:
        """Has this exact file (path and identity) been uploaded or queued already?"""
        latest = self.journal.latest_for_source(str(path), self.profile.name)
        if latest is None or latest.state in (TransferState.FAILED, TransferState.CANCELLED):
            return False
        return latest.identity == SourceIdentity.of(info)

    def watch_saved_folders(self) -> None:
        """Watch the folders kept in the config dir (a resident Ferry, at its start)."""
        self._follow(WatchedFolderStore(self.env.paths.watched_folders_file).load())

    def set_watched_folders(self, folders: list[WatchedFolder]) -> None:
        """Keep these as the watched folders and watch them from now on."""
        WatchedFolderStore(self.env.paths.watched_folders_file).save(folders)
        self._follow(folders)

    def folder_statuses(self) -> list[FolderStatus]:
        """How each watched folder fares (copies: the watcher updates its own in place)."""
        with self._folders_lock:
            watcher = self._folder_watcher
            return [dataclasses.replace(s) for s in watcher.status.values()] if watcher else []

    def _follow(self, folders: list[WatchedFolder]) -> None:
        with self._folders_lock:
            if self._folder_watcher is not None:
                self._folder_watcher.stop()
                self._folder_watcher = None
            if folders:
                self._folder_watcher = self.watch(folders)

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
        if self.scheduler.options.runs is not Runs.EVERY_RUNNABLE:
            raise ValueError("Folders are watched by a Ferry that runs every runnable transfer")
        policy = KeyConflictPolicy(self.profile.watch_key_conflict)
        self.start()

        def on_ready(folder: WatchedFolder, files: list[Path]) -> None:
            queued = self.engine.intake.queue_files(
                [(f, folder.key_name(f)) for f in files], policy
            )
            if queued:
                self.scheduler.wake()

        watcher = FolderWatcher(
            folders,
            on_ready=on_ready,
            already_sent=self.already_sent,
            settle_seconds=settle_seconds,
            force_polling=force_polling,
        )
        watcher.start()
        return watcher

    # -- consistency --------------------------------------------------------------

    def checker(self) -> ConsistencyChecker:
        def reupload(
            source: Path, key: str, file_id: int, sha256: str, replaces_etag: str | None
        ) -> bool:
            record = self.engine.intake.queue_reupload(
                source, key, file_id, sha256, replaces_etag=replaces_etag
            )
            [finished] = self.wait([record.id])
            return finished.state is TransferState.DONE

        return ConsistencyChecker(
            storage=self.storage,
            catalog=self.catalog,
            journal=self.journal,
            prefix=self.profile.prefix,
            reupload=reupload,
            spool_dir=self.env.paths.data_dir,
        )

    def check(self, options: CheckOptions | None = None) -> CheckReport:
        """Run the consistency check and keep its report as the last one."""
        if options is None:
            options = CheckOptions(
                grace_seconds=self.profile.grace_seconds,
                retention_seconds=self.profile.retention_seconds,
            )
        report = self.checker().check(options)
        self._last_report_file.write_text(json.dumps(report.to_json(), indent=2))
        return report

    def run_check(self, *, without_grace: bool = False) -> CheckReport:
        """The profile's check, which :meth:`cancel_check` stops and ``on_check_progress``
        follows; ``without_grace`` judges objects and rows of any age."""
        self._check_cancel = threading.Event()
        return self.check(
            CheckOptions(
                grace_seconds=0 if without_grace else self.profile.grace_seconds,
                retention_seconds=self.profile.retention_seconds,
                cancel=self._check_cancel,
                progress=self.on_check_progress,
            )
        )

    def cancel_check(self) -> None:
        """Stop the check that :meth:`run_check` runs (a check not yet started is not stopped)."""
        self._check_cancel.set()

    def repair(
        self, findings: list[Finding], *, adopt_owner: str | None = None
    ) -> list[RepairResult]:
        return self.checker().repair(findings, adopt_owner=adopt_owner)

    def export_report(self, report: CheckReport, path: Path) -> None:
        """Save a check's report as JSON (.json) or CSV (anything else)."""
        write_report(report, path)

    @property
    def _last_report_file(self) -> Path:
        return self.env.paths.data_dir / f"last-check-{self.profile.name}.json"

    def last_report(self) -> dict[str, object] | None:
        """The last check's report as saved (JSON), with when it ran and how long it took."""
        try:
            loaded: dict[str, object] = json.loads(self._last_report_file.read_text())
        except (OSError, ValueError):
            return None
        return loaded


def open_relay(
    env: Environment,
    profile_name: str | None = None,
    *,
    nats_url: str | None = None,
    stream: str | None = None,
    subject_prefix: str | None = None,
    batch_size: int | None = None,
    publisher: EventPublisher | None = None,
) -> Relay:
    """A relay over a profile's catalog: only the catalog is opened (no S3 keys needed).

    The NATS address comes from ``nats_url``, else ``FERRY_NATS_URL``, else the
    profile's ``relay_nats_url``, else NATS's default on this machine.
    """
    profile = env.profile(profile_name)
    options = profile.relay_options(
        nats_url=nats_url or env.environ.get("FERRY_NATS_URL"),
        stream=stream,
        subject_prefix=subject_prefix,
    )
    if batch_size is not None:
        options = dataclasses.replace(options, batch_size=batch_size)
    options.validate()
    nats_parts = urlsplit(options.nats_url)
    # nats://TOKEN@host carries a token as its user name.
    REDACTOR.add_secret(nats_parts.password or nats_parts.username)
    password = catalog_password(profile, env.secrets, env.environ)
    REDACTOR.add_secret(password)
    catalog = open_catalog(
        profile.catalog_url,
        owner=profile.owner,
        password=password,
        journal_file=env.paths.journal_file,
    )
    return Relay(
        catalog.outbox(),
        publisher or JetStreamPublisher(options),
        options,
        on_close=catalog.close,
    )


def diagnose_profile(env: Environment, profile: Profile) -> list[CheckResult]:
    """Check, one by one, what a profile needs; each result says what is wrong."""
    results: list[CheckResult] = []
    sandbox: SandboxServer | None = None
    try:
        if profile.sandbox:
            try:
                sandbox, _state, profile = start_sandbox(env)
                results.append(CheckResult("sandbox", True, f"running at {profile.endpoint_url}"))
            except FerryError as exc:
                results.append(CheckResult("sandbox", False, exc.message))
                return results
        try:
            credentials = require_s3_credentials(profile, env.secrets, env.environ)
            REDACTOR.add_secret(credentials.secret_access_key)
            REDACTOR.add_binary_secret(credentials.sse_customer_key)
            results.append(CheckResult("credentials", True, f"found in {credentials.source.value}"))
        except FerryError as exc:
            results.append(CheckResult("credentials", False, exc.message))
            return results
        held = profile.encryption is not Encryption.SSE_C or credentials.sse_customer_key
        results.append(
            CheckResult("encryption", bool(held), describe_encryption(profile, credentials))
        )
        if not held:
            results.append(CheckResult("customer key", False, missing_customer_key(profile)))
            return results
        storage = S3Storage.connect(profile, credentials)
        try:
            storage.check_bucket()
            results.append(CheckResult("bucket", True, f"{profile.bucket} is reachable"))
            protection = storage.probe_write(profile.prefix)
            # Kept for the uploads to come (and shown by Settings): no probe at their start.
            ProtectionMemory(env.paths.data_dir / PROTECTION_FILE).put(
                storage.endpoint_id, protection
            )
            results.append(CheckResult("write", True, "a test object was written and deleted"))
            # Not a failure where conditions are ignored: Ferry works, with less protection.
            results.append(CheckResult("other tools", True, protection.description))
            # The integrity its uploads reach: the server verifies CRC64NVMEs, or MD5s.
            verified = storage.probe_checksums(profile.prefix)
            ChecksumMemory(env.paths.data_dir / CHECKSUM_FILE).put(storage.endpoint_id, verified)
            results.append(CheckResult("integrity", True, integrity(verified)))
        except StorageError as exc:
            results.append(CheckResult("bucket", False, exc.message))
        skew = storage.clock.notable_offset()
        if skew is not None:
            results.append(CheckResult("clock", False, skew))
        try:
            password = catalog_password(profile, env.secrets, env.environ)
            REDACTOR.add_secret(password)
            catalog = open_catalog(
                profile.catalog_url,
                owner=profile.owner,
                password=password,
                mode=CatalogMode.READ_ONLY,  # a test that changes nothing
                journal_file=env.paths.journal_file,
            )
            try:
                catalog.ping()
            finally:
                catalog.close()
            results.append(CheckResult("catalog", True, "reachable and up to date"))
        except FerryError as exc:
            results.append(CheckResult("catalog", False, exc.message))
        return results
    finally:
        if sandbox is not None:
            sandbox.stop()


def known_protection(env: Environment, profile: Profile) -> LearntProtection | None:
    """What the profile's endpoint was found to do with conditional writes (by its first
    upload or a connection test); None: not found out yet. Reads a small file."""
    return ProtectionMemory(env.paths.data_dir / PROTECTION_FILE).get(endpoint_key(profile))
