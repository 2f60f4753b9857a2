"""Ferry's engine in a process of its own, for the window.

The window must answer within 100 ms while thousands of files are queued and
uploaded. In one process that cannot hold: the engine's threads run Python and
the GUI thread waits for the GIL (measured: three quarters of a 350 ms stall).
So the window starts this host in a child process (``multiprocessing`` with
``spawn``, no fork of a Qt process) and talks to it over two one-way pipes:

- the window sends :data:`Command` objects; the host's main thread reads them,
  answers a check cancel at once and hands the rest, in order, to a job thread
  that owns the :class:`~desktop_app.core.app.Ferry` facade;
- the host sends :data:`HostMessage` objects back on a second pipe. Engine events are coalesced
  (latest snapshot and latest progress per transfer) and sent every 50 ms in
  one :class:`EngineUpdate`, never one message per event.

Promises: every command is carried out or answered with a :class:`HostFailed`;
:class:`Stop` interrupts transfers (they resume at the next start), stops the
watcher, runner and sandbox, sends :class:`HostStopped` and ends the process.
If the pipe closes or the parent process changes (the window died, however),
the host stops the same way and exits hard after ``ORPHAN_PATIENCE`` seconds
whatever is still running: an engine never outlives its window for long.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from desktop_app.core.app import Environment, Ferry, RunMode, start_sandbox
from desktop_app.core.catalog import FileQuery, FileRecord
from desktop_app.core.config import Profile
from desktop_app.core.control import ControlServer
from desktop_app.core.errors import FerryError
from desktop_app.core.events import LatestPerTransfer, TransferProgress, TransferSnapshot
from desktop_app.core.journal import AttemptRecord
from desktop_app.core.reconcile import (
    CheckOptions,
    CheckReport,
    Finding,
    RepairResult,
    write_report,
)
from desktop_app.core.sandbox import SandboxServer
from desktop_app.core.scheduler import HoldReason
from desktop_app.core.watcher import FolderStatus, FolderWatcher, WatchedFolder, WatchedFolderStore

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 0.05  # seconds between engine updates sent to the window
FOLDER_STATUS_INTERVAL = 1.0
ORPHAN_PATIENCE = 3.0  # seconds an engine whose window died may take to stop
FINISHED_KEPT = 1000  # finished transfers a window shows; the journal keeps them all


# -- commands: window -> host ---------------------------------------------------------


@dataclass(frozen=True)
class AddPaths:
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Retry:
    ids: tuple[int, ...] | None  # None: every failed transfer


@dataclass(frozen=True)
class Cancel:
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Pause:
    ids: tuple[int, ...] | None  # None: all


@dataclass(frozen=True)
class Unpause:
    ids: tuple[int, ...] | None


@dataclass(frozen=True)
class RunCheck:
    without_grace: bool = False  # judge objects and rows of any age


@dataclass(frozen=True)
class ClearFinished:
    ids: tuple[int, ...]


@dataclass(frozen=True)
class LoadAttempts:
    ids: tuple[int, ...]


@dataclass(frozen=True)
class CancelCheck:
    pass


@dataclass(frozen=True)
class Repair:
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class ExportReport:
    report: CheckReport
    path: Path


@dataclass(frozen=True)
class SearchFiles:
    query: FileQuery


@dataclass(frozen=True)
class Inspect:
    key: str


@dataclass(frozen=True)
class AskServerSoftware:
    pass


@dataclass(frozen=True)
class SetFolders:
    folders: tuple[WatchedFolder, ...]


@dataclass(frozen=True)
class Stop:
    pass


Command = (
    AddPaths
    | Retry
    | Cancel
    | Pause
    | Unpause
    | RunCheck
    | ClearFinished
    | LoadAttempts
    | CancelCheck
    | Repair
    | ExportReport
    | SearchFiles
    | Inspect
    | AskServerSoftware
    | SetFolders
    | Stop
)


# -- messages: host -> window -----------------------------------------------------------


@dataclass(frozen=True)
class HostOpened:
    description: str  # a line for the status bar
    profile: Profile
    history: tuple[TransferSnapshot, ...]  # unfinished, and the newest finished not cleared


@dataclass(frozen=True)
class HostNotice:
    text: str


@dataclass(frozen=True)
class HostFailed:
    title: str
    message: str
    fatal: bool = False  # Ferry could not open: nothing else will come


@dataclass(frozen=True)
class EngineUpdate:
    snapshots: tuple[TransferSnapshot, ...]
    progress: tuple[TransferProgress, ...]


@dataclass(frozen=True)
class AttemptsLoaded:
    attempts: dict[int, tuple[AttemptRecord, ...]]  # oldest first, per transfer


@dataclass(frozen=True)
class CheckProgressed:
    objects: int
    rows: int


@dataclass(frozen=True)
class CheckFinished:
    report: CheckReport


@dataclass(frozen=True)
class CheckFailed:
    message: str


@dataclass(frozen=True)
class Repaired:
    results: tuple[RepairResult, ...]


@dataclass(frozen=True)
class FilesFound:
    records: tuple[FileRecord, ...]


@dataclass(frozen=True)
class Inspected:
    key: str
    description: str


@dataclass(frozen=True)
class ServerSoftware:
    text: str


@dataclass(frozen=True)
class FoldersUpdate:
    statuses: tuple[FolderStatus, ...]
    changed: bool  # the folder list itself changed (not only their status)


@dataclass(frozen=True)
class UploadsHeld:
    """The system holds uploads back (a metered connection), or let them go."""

    text: str  # what happened, in words
    reasons: tuple[HoldReason, ...]  # every reason holding them now; empty: they run


@dataclass(frozen=True)
class HostStopped:
    pass


HostMessage = (
    HostOpened
    | HostNotice
    | HostFailed
    | EngineUpdate
    | AttemptsLoaded
    | CheckProgressed
    | CheckFinished
    | CheckFailed
    | Repaired
    | FilesFound
    | Inspected
    | ServerSoftware
    | FoldersUpdate
    | UploadsHeld
    | HostStopped
)


class EngineHost:
    """The child's side: owns Ferry, the runner and the watcher; obeys commands."""

    def __init__(
        self,
        commands: Connection,
        messages: Connection,
        env: Environment,
        profile_name: str | None,
        sandbox: bool,
    ) -> None:
        self.commands = commands
        self.messages = messages
        self.env = env
        self.profile_name = profile_name
        self.create_sandbox = sandbox
        self._send_lock = threading.Lock()
        self._pending = LatestPerTransfer()
        self._jobs: queue.Queue[Command | None] = queue.Queue()
        self._check_cancel = threading.Event()
        self._stopping = threading.Event()
        self.ferry: Ferry | None = None
        self._sandbox: SandboxServer | None = None
        self._watcher: FolderWatcher | None = None
        self._control: ControlServer | None = None
        self._last_statuses: tuple[FolderStatus, ...] = ()

    # -- the pipe -----------------------------------------------------------------

    def send(self, message: HostMessage) -> None:
        with self._send_lock:
            try:
                self.messages.send(message)
            except (BrokenPipeError, EOFError, OSError):
                self._stopping.set()  # the window is gone

    def _flush_loop(self) -> None:
        since_status = 0.0
        parent = os.getppid()
        while not self._stopping.wait(FLUSH_INTERVAL):
            if os.getppid() != parent:
                # The window died but the pipe stayed open (an inherited copy):
                # the same end as a closed pipe.
                log.warning("The window's process is gone; the engine stops")
                _exit_after(ORPHAN_PATIENCE)
                self.commands.close()
                self._stopping.set()
                return
            self._flush()
            since_status += FLUSH_INTERVAL
            if since_status >= FOLDER_STATUS_INTERVAL:
                since_status = 0.0
                self._send_folder_statuses(changed=False)

    def _flush(self) -> None:
        snapshots, progress = self._pending.take()
        if snapshots or progress:
            self.send(EngineUpdate(snapshots, progress))

    def _send_folder_statuses(self, *, changed: bool) -> None:
        watcher = self._watcher
        # Copies: the watcher updates its statuses in place.
        statuses = tuple(dataclasses.replace(s) for s in watcher.status.values()) if watcher else ()
        if changed or statuses != self._last_statuses:
            self._last_statuses = statuses
            self.send(FoldersUpdate(statuses, changed))

    # -- life -----------------------------------------------------------------------

    def run(self) -> None:
        jobs = threading.Thread(target=self._job_loop, name="ferry-host-jobs", daemon=True)
        flusher = threading.Thread(target=self._flush_loop, name="ferry-host-flush", daemon=True)
        jobs.start()
        flusher.start()
        try:
            while not self._stopping.is_set():
                try:
                    command = self.commands.recv()
                except (EOFError, OSError):
                    # The window is gone, however it ended: stop as if asked, but
                    # never outlive it for long (the journal makes a hard end safe).
                    _exit_after(ORPHAN_PATIENCE)
                    break
                if isinstance(command, CancelCheck):
                    self._check_cancel.set()
                    continue
                if isinstance(command, Stop):
                    self._check_cancel.set()  # a running check must not delay quitting
                    break
                self._jobs.put(command)
        finally:
            self._jobs.put(None)
            jobs.join(timeout=120)
            self._shut_down()
            self._stopping.set()
            flusher.join(timeout=5)
            self._flush()
            self.send(HostStopped())

    def _open(self) -> Ferry:
        if self.create_sandbox:
            self._sandbox, _state, profile = start_sandbox(self.env)
            self.profile_name = profile.name
        ferry = Ferry.open(self.env, self.profile_name, mode=RunMode.RESIDENT)
        ferry.bus.subscribe(self._pending.add)
        history = ferry.window_history(FINISHED_KEPT)
        resuming = sum(1 for r in history if r.state.in_progress and not r.paused)
        log.info("Connected: profile %s, bucket %s", ferry.profile.name, ferry.profile.bucket)
        self.send(
            HostOpened(
                description=(
                    f"Profile {ferry.profile.name}: bucket {ferry.profile.bucket} at "
                    f"{ferry.profile.endpoint_url or 'AWS S3'} (credentials from "
                    f"{ferry.credential_source.value})"
                ),
                profile=ferry.profile,
                history=tuple(TransferSnapshot.of(r) for r in history),
            )
        )
        if resuming:
            self.send(HostNotice(f"Resuming {resuming} transfer(s)."))
        return ferry

    def _job_loop(self) -> None:
        try:
            self.ferry = self._open()
        except FerryError as exc:
            self.send(HostFailed(exc.title, exc.message, fatal=True))
            return
        except Exception as exc:  # shown, not swallowed: the window must say why
            log.exception("Opening Ferry failed")
            self.send(HostFailed("Could not start", f"{type(exc).__name__}: {exc}", fatal=True))
            return
        self.ferry.scheduler.on_error = lambda exc: self.send(HostFailed(exc.title, exc.message))
        self.ferry.on_system_notice = lambda text, holds: self.send(
            UploadsHeld(text, tuple(sorted(holds, key=lambda h: h.value)))
        )
        self.ferry.start()
        try:
            self._control = self.ferry.listen()
        except OSError as exc:  # the window works without; the command line then waits
            log.warning("Other ferry commands cannot reach this one: %s", exc)
        try:
            folders = WatchedFolderStore(self.env.paths.watched_folders_file).load()
        except FerryError as exc:
            self.send(HostFailed(exc.title, exc.message))
            folders = []
        self._restart_watcher(self.ferry, folders)
        while True:
            command = self._jobs.get()
            if command is None:
                return
            try:
                self._carry_out(self.ferry, command)
            except FerryError as exc:
                self.send(HostFailed(exc.title, exc.message))
            except Exception as exc:
                log.exception("A command failed: %r", command)
                self.send(HostFailed("Unexpected error", f"{type(exc).__name__}: {exc}"))

    def _shut_down(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self._control is not None:
            self._control.stop()
        if self.ferry is not None:
            self.ferry.close()
            self.ferry = None
        if self._sandbox is not None:
            self._sandbox.stop()

    def _restart_watcher(self, ferry: Ferry, folders: list[WatchedFolder]) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if folders:
            self._watcher = ferry.watch(folders)
        self._send_folder_statuses(changed=True)

    # -- commands ---------------------------------------------------------------------

    def _count(self, count: int, verb: str) -> None:
        self.send(HostNotice(f"{count} transfer(s) {verb}."))

    def _carry_out(self, ferry: Ferry, command: Command) -> None:
        if isinstance(command, AddPaths):
            records = ferry.queue(list(command.paths))
            self.send(HostNotice(f"Queued {len(records)} file(s)."))
        elif isinstance(command, Retry):
            self._count(len(ferry.retry(command.ids)), "retrying")
        elif isinstance(command, Cancel):
            self._count(len(ferry.cancel(command.ids)), "cancelled")
        elif isinstance(command, Pause):
            self._count(ferry.pause(command.ids), "paused")
        elif isinstance(command, Unpause):
            self._count(ferry.unpause(command.ids), "resumed")
        elif isinstance(command, RunCheck):
            self._run_check(ferry, without_grace=command.without_grace)
        elif isinstance(command, ClearFinished):
            ferry.clear_finished(command.ids)
        elif isinstance(command, LoadAttempts):
            found = ferry.attempts(command.ids)
            self.send(AttemptsLoaded({i: tuple(found.get(i, ())) for i in command.ids}))
        elif isinstance(command, Repair):
            self.send(Repaired(tuple(ferry.repair(list(command.findings)))))
        elif isinstance(command, ExportReport):
            write_report(command.report, command.path)
            self.send(HostNotice(f"Report saved to {command.path}."))
        elif isinstance(command, SearchFiles):
            self.send(FilesFound(tuple(ferry.files(command.query))))
        elif isinstance(command, Inspect):
            self.send(Inspected(command.key, _describe_head(ferry, command.key)))
        elif isinstance(command, AskServerSoftware):
            try:
                self.send(ServerSoftware(ferry.server_software()))
            except FerryError as exc:  # About is no place for a warning box
                self.send(ServerSoftware(f"could not ask ({exc.title})"))
        elif isinstance(command, SetFolders):
            folders = list(command.folders)
            WatchedFolderStore(self.env.paths.watched_folders_file).save(folders)
            self._restart_watcher(ferry, folders)

    def _run_check(self, ferry: Ferry, *, without_grace: bool) -> None:
        self._check_cancel.clear()
        options = CheckOptions(
            grace_seconds=0 if without_grace else ferry.profile.grace_seconds,
            retention_seconds=ferry.profile.retention_seconds,
            cancel=self._check_cancel,
            progress=lambda objects, rows: self.send(CheckProgressed(objects, rows)),
        )
        try:
            self.send(CheckFinished(ferry.check(options)))
        except FerryError as exc:
            self.send(CheckFailed(exc.message))


def _describe_head(ferry: Ferry, key: str) -> str:
    head = ferry.head(key)
    if head is None:
        return "No object in the bucket."
    modified = head.last_modified.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{head.size:,} bytes, ETag {head.etag}, modified {modified}, "
        f"SHA-256 (metadata) {head.sha256 or 'not recorded'}"
    )


def _exit_after(seconds: float) -> None:
    """End this process after ``seconds`` whatever is still running."""

    def end() -> None:
        log.warning("The engine did not stop within %s s of the window's end; exiting", seconds)
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()


def host_main(
    commands: Connection,
    messages: Connection,
    env: Environment,
    profile_name: str | None,
    *,
    sandbox: bool = False,
) -> None:
    """Entry point of the child process (a module-level function, as spawn needs)."""
    from desktop_app.allocator import fix_mmap_threshold
    from desktop_app.core.logs import configure_logging

    # This process holds the part buffers: the same allocator setting as the CLI.
    fix_mmap_threshold()
    # Ctrl-C in a terminal reaches the whole process group; the window decides
    # how to stop (it sends Stop), so the engine must not die half-way on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    with contextlib.suppress(OSError):  # the window reports log trouble; uploads go on
        configure_logging(env.paths.log_file, stderr_level=None)
    EngineHost(commands, messages, env, profile_name, sandbox).run()
