"""Runs Ferry off the GUI thread.

Two Python threads: a job thread that opens Ferry and carries out what the
person asks (queue a drop of 10,000 files, cancel, pause, retry), and a runner
thread that keeps the engine going while anything is runnable. The GUI thread
only posts jobs and receives typed signals; it never waits on I/O. ``stop()``
interrupts running transfers (they resume at the next start), joins both
threads and closes Ferry.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop_app.core.app import Environment, Ferry, start_sandbox
from desktop_app.core.catalog import FileQuery
from desktop_app.core.errors import FerryError
from desktop_app.core.events import TransferSnapshot
from desktop_app.core.reconcile import CheckOptions, CheckReport, Finding, write_report
from desktop_app.core.runner import TransferRunner
from desktop_app.core.sandbox import SandboxServer
from desktop_app.core.watcher import FolderStatus, FolderWatcher, WatchedFolder, WatchedFolderStore
from desktop_app.gui.bridge import EngineBridge

log = logging.getLogger(__name__)
Job = Callable[[Ferry], None]


class Backend(QObject):
    opened = Signal(str)  # a line for the status bar
    failed = Signal(str, str)  # title, message
    notice = Signal(str)
    checkProgress = Signal(int, int)  # objects, rows scanned so far
    checkFinished = Signal(CheckReport)
    checkFailed = Signal(str)
    repairsFinished = Signal(list)  # list[RepairResult]
    filesFound = Signal(list)  # list[FileRecord]
    objectInspected = Signal(str, str)  # key, description of its HEAD
    foldersChanged = Signal()
    historyLoaded = Signal(int)  # highest transfer id already in the journal at start
    serverSoftware = Signal(str)  # what the S3 server says it is

    def __init__(
        self,
        env: Environment,
        profile_name: str | None,
        bridge: EngineBridge,
        *,
        create_sandbox: bool = False,
    ) -> None:
        super().__init__()
        self.env = env
        self.profile_name = profile_name
        self.bridge = bridge
        self.create_sandbox = create_sandbox
        self.ferry: Ferry | None = None
        self._sandbox: SandboxServer | None = None
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._job_thread = threading.Thread(target=self._job_loop, name="ferry-jobs", daemon=True)
        self._runner: TransferRunner | None = None
        self.watcher: FolderWatcher | None = None

    def start(self) -> None:
        self._job_thread.start()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    # -- jobs the window posts ------------------------------------------------

    def post(self, job: Job) -> None:
        self._jobs.put(job)

    def add_paths(self, paths: list[Path]) -> None:
        def job(ferry: Ferry) -> None:
            records = ferry.queue(paths)
            self.notice.emit(f"Queued {len(records)} file(s).")

        self.post(job)

    def retry(self, ids: list[int] | None) -> None:
        self.post(lambda ferry: self._count(len(ferry.engine.retry(ids)), "retrying"))

    def cancel(self, ids: list[int]) -> None:
        self.post(lambda ferry: self._count(len(ferry.cancel(ids)), "cancelled"))

    def pause(self, ids: list[int] | None) -> None:
        self.post(lambda ferry: self._count(ferry.pause(ids), "paused"))

    def unpause(self, ids: list[int] | None) -> None:
        self.post(lambda ferry: self._count(ferry.unpause(ids), "resumed"))

    def _count(self, count: int, verb: str) -> None:
        self.notice.emit(f"{count} transfer(s) {verb}.")

    # -- bucket & catalog ----------------------------------------------------------

    def run_check(self, cancel: threading.Event) -> None:
        def job(ferry: Ferry) -> None:
            options = CheckOptions(
                grace_seconds=ferry.profile.grace_seconds,
                retention_seconds=ferry.profile.retention_seconds,
                cancel=cancel,
                progress=lambda objects, rows: self.checkProgress.emit(objects, rows),
            )
            try:
                self.checkFinished.emit(ferry.check(options))
            except FerryError as exc:
                self.checkFailed.emit(exc.message)

        self.post(job)

    def repair(self, findings: list[Finding]) -> None:
        self.post(lambda ferry: self.repairsFinished.emit(ferry.repair(findings)))

    def export_report(self, report: CheckReport, path: Path) -> None:
        def job(_ferry: Ferry) -> None:
            write_report(report, path)
            self.notice.emit(f"Report saved to {path}.")

        self.post(job)

    def search_files(self, query: FileQuery) -> None:
        self.post(lambda ferry: self.filesFound.emit(ferry.files(query)))

    def ask_server_software(self) -> None:
        def job(ferry: Ferry) -> None:
            try:
                self.serverSoftware.emit(ferry.server_software())
            except FerryError as exc:  # About is no place for a warning box
                self.serverSoftware.emit(f"could not ask ({exc.title})")

        self.post(job)

    def inspect(self, key: str) -> None:
        def job(ferry: Ferry) -> None:
            head = ferry.head(key)
            if head is None:
                self.objectInspected.emit(key, "No object in the bucket.")
                return
            modified = head.last_modified.strftime("%Y-%m-%d %H:%M:%S")
            self.objectInspected.emit(
                key,
                f"{head.size:,} bytes, ETag {head.etag}, modified {modified}, "
                f"SHA-256 (metadata) {head.sha256 or 'not recorded'}",
            )

        self.post(job)

    # -- watched folders ----------------------------------------------------------------

    @property
    def watched_store(self) -> WatchedFolderStore:
        return WatchedFolderStore(self.env.paths.config_dir / "watched.toml")

    def folder_statuses(self) -> list[FolderStatus]:
        """In-memory status of the watched folders (no I/O: safe on the GUI thread)."""
        watcher = self.watcher
        return list(watcher.status.values()) if watcher is not None else []

    def set_folders(self, folders: list[WatchedFolder]) -> None:
        def job(ferry: Ferry) -> None:
            self.watched_store.save(folders)
            self._restart_watcher(ferry, folders)
            self.foldersChanged.emit()

        self.post(job)

    def _restart_watcher(self, ferry: Ferry, folders: list[WatchedFolder]) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if folders and self._runner is not None:
            self.watcher = ferry.watch(folders, self._runner)

    # -- threads ----------------------------------------------------------------

    def _open(self) -> Ferry:
        if self.create_sandbox:
            self._sandbox, _state, profile = start_sandbox(self.env)
            self.profile_name = profile.name
        ferry = Ferry.open(self.env, self.profile_name)
        self.bridge.attach(ferry.bus)
        history = ferry.transfers()
        for record in history:
            self.bridge.accept_snapshot(TransferSnapshot.of(record))
        self.historyLoaded.emit(max((r.id for r in history), default=0))
        unfinished = [r for r in history if r.state.active and not r.paused]
        self.opened.emit(
            f"Profile {ferry.profile.name}: bucket {ferry.profile.bucket} at "
            f"{ferry.profile.endpoint_url or 'AWS S3'} (credentials from "
            f"{ferry.credential_source.value})"
        )
        log.info("Connected: profile %s, bucket %s", ferry.profile.name, ferry.profile.bucket)
        if unfinished:
            self.notice.emit(f"Resuming {len(unfinished)} transfer(s).")
        return ferry

    def _job_loop(self) -> None:
        try:
            self.ferry = self._open()
        except FerryError as exc:
            self.failed.emit(exc.title, exc.message)
            return
        except Exception as exc:  # shown, not swallowed: the window must say why
            log.exception("Opening Ferry failed")
            self.failed.emit("Could not start", f"{type(exc).__name__}: {exc}")
            return
        finally:
            self._ready.set()
        # Everything alive now (modules, botocore's service model, the journal's
        # history) lives as long as the window. A full collector pass holds the
        # GIL and so stalls the window (passes of up to 234 ms were measured
        # during a 10,000-file drop); frozen objects are not scanned again.
        gc.freeze()
        self._runner = TransferRunner(
            self.ferry.engine, on_error=lambda exc: self.failed.emit(exc.title, exc.message)
        )
        self._runner.start()
        try:
            folders = self.watched_store.load()
        except FerryError as exc:
            self.failed.emit(exc.title, exc.message)
            folders = []
        self._restart_watcher(self.ferry, folders)
        self.foldersChanged.emit()
        while not self._stopping.is_set():
            job = self._jobs.get()
            if job is None:
                return
            try:
                job(self.ferry)
            except FerryError as exc:
                self.failed.emit(exc.title, exc.message)
            except Exception as exc:
                log.exception("A background job failed")
                self.failed.emit("Unexpected error", f"{type(exc).__name__}: {exc}")
            self._runner.wake()

    def stop(self) -> None:
        """Interrupt transfers (they resume next start), join the threads, close Ferry."""
        self._stopping.set()
        self._jobs.put(None)
        if self._job_thread.is_alive():
            self._job_thread.join(timeout=60)
        if self.watcher is not None:
            self.watcher.stop()
        if self._runner is not None:
            self._runner.stop()
        self.bridge.detach()
        if self.ferry is not None:
            self.ferry.close()
            self.ferry = None
        if self._sandbox is not None:
            self._sandbox.stop()
