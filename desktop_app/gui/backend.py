"""The window's handle on Ferry's engine, which runs in a child process.

``start()`` spawns :func:`desktop_app.core.host.host_main` (multiprocessing,
``spawn``) with two one-way pipes. A sender thread writes the commands the
window posts; a reader thread receives the host's messages and turns them into
typed Qt signals, and feeds engine updates to the EngineBridge. The GUI thread
only posts commands and receives signals: no I/O, and no engine thread
competing with it for the GIL. ``stop()`` asks the host to stop (transfers are
interrupted and resume at the next start), waits for it and for both threads.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop_app.core import host
from desktop_app.core.app import Environment
from desktop_app.core.catalog import FileQuery
from desktop_app.core.config import Profile
from desktop_app.core.reconcile import CheckReport, Finding
from desktop_app.core.watcher import FolderStatus, WatchedFolder
from desktop_app.gui.bridge import EngineBridge

log = logging.getLogger(__name__)
STOP_TIMEOUT = 90.0  # seconds the host may take to interrupt transfers and close


class Backend(QObject):
    opened = Signal(str)  # a line for the status bar
    failed = Signal(str, str)  # title, message
    notice = Signal(str)
    # Why uploads are held back by the system ("" when they are not).
    heldBack = Signal(str)
    checkProgress = Signal(int, int)  # objects, rows scanned so far
    checkFinished = Signal(CheckReport)
    checkFailed = Signal(str)
    repairsFinished = Signal(host.Repaired)
    attemptsLoaded = Signal(host.AttemptsLoaded)
    filesFound = Signal(host.FilesFound)
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
        self.profile: Profile | None = None  # the profile in use, once open
        self._folder_statuses: tuple[FolderStatus, ...] = ()
        self._ready = threading.Event()
        self._commands: queue.Queue[host.Command | None] = queue.Queue()
        self._link: _HostLink | None = None
        self._restarting = threading.Lock()

    def start(self) -> None:
        """Spawn the engine process and the threads that talk to it."""
        env = Environment(self.env.paths, dict(self.env.environ), self.env.secrets)
        self._link = _HostLink(env, self.profile_name, self.create_sandbox)
        self._link.start(self._send_loop, self._read_loop)

    def restart(self) -> None:
        """Stop the engine and start it again with the saved profile, off the GUI thread.

        Running transfers are interrupted and resume at once in the new engine;
        commands posted meanwhile wait in the queue and go to the new one.
        """

        def work() -> None:
            with self._restarting:
                self._ready.clear()
                self.profile = None
                self._stop_link()
                self.create_sandbox = False  # a sandbox profile starts its server itself
                self.start()

        threading.Thread(target=work, name="ferry-restart", daemon=True).start()

    @property
    def ready(self) -> bool:
        """True once Ferry opened in the engine process, or failed to."""
        return self._ready.is_set()

    # -- commands the window posts -------------------------------------------------

    def post(self, command: host.Command) -> None:
        self._commands.put(command)

    def add_paths(self, paths: list[Path]) -> None:
        self.post(host.AddPaths(tuple(paths)))

    def retry(self, ids: list[int] | None) -> None:
        self.post(host.Retry(None if ids is None else tuple(ids)))

    def cancel(self, ids: list[int]) -> None:
        self.post(host.Cancel(tuple(ids)))

    def pause(self, ids: list[int] | None) -> None:
        self.post(host.Pause(None if ids is None else tuple(ids)))

    def unpause(self, ids: list[int] | None) -> None:
        self.post(host.Unpause(None if ids is None else tuple(ids)))

    def run_check(self, *, without_grace: bool = False) -> None:
        self.post(host.RunCheck(without_grace))

    def clear_finished(self, ids: list[int]) -> None:
        if ids:
            self.post(host.ClearFinished(tuple(ids)))

    def load_attempts(self, ids: list[int]) -> None:
        self.post(host.LoadAttempts(tuple(ids)))

    def cancel_check(self) -> None:
        self.post(host.CancelCheck())

    def repair(self, findings: list[Finding]) -> None:
        self.post(host.Repair(tuple(findings)))

    def export_report(self, report: CheckReport, path: Path) -> None:
        self.post(host.ExportReport(report, path))

    def search_files(self, query: FileQuery) -> None:
        self.post(host.SearchFiles(query))

    def inspect(self, key: str) -> None:
        self.post(host.Inspect(key))

    def ask_server_software(self) -> None:
        self.post(host.AskServerSoftware())

    def set_folders(self, folders: list[WatchedFolder]) -> None:
        self.post(host.SetFolders(tuple(folders)))

    def folder_statuses(self) -> list[FolderStatus]:
        """The latest status of the watched folders the host sent (no I/O)."""
        return list(self._folder_statuses)

    # -- threads ----------------------------------------------------------------------

    def _send_loop(self, link: _HostLink) -> None:
        while True:
            command = self._commands.get()
            if command is None:
                return
            try:
                link.command_writer.send(command)
            except (BrokenPipeError, OSError):
                return  # the host is gone; the reader says so

    def _read_loop(self, link: _HostLink) -> None:
        while True:
            try:
                message = link.message_reader.recv()
            except (EOFError, OSError):
                if not self._ready.is_set() or link.process.exitcode not in (0, None):
                    self.failed.emit(
                        "Ferry's engine stopped",
                        "The part of Ferry that uploads stopped unexpectedly. Close and "
                        "start Ferry again: unfinished transfers resume. The log has details.",
                    )
                self._ready.set()
                return
            if isinstance(message, host.HostStopped):
                return
            self._dispatch(message)

    def _dispatch(self, message: host.HostMessage) -> None:
        if isinstance(message, host.EngineUpdate):
            self.bridge.accept(message.snapshots, message.progress)
        elif isinstance(message, host.HostOpened):
            self.profile = message.profile
            self.profile_name = message.profile.name
            self.bridge.accept(message.history)
            self.historyLoaded.emit(max((s.id for s in message.history), default=0))
            self._ready.set()
            self.opened.emit(message.description)
        elif isinstance(message, host.HostFailed):
            if message.fatal:
                self._ready.set()
            self.failed.emit(message.title, message.message)
        elif isinstance(message, host.HostNotice):
            self.notice.emit(message.text)
        elif isinstance(message, host.UploadsHeld):
            if not message.reasons:  # while held, the lasting label says it (not twice)
                self.notice.emit(message.text)
            self.heldBack.emit("; ".join(reason.description for reason in message.reasons))
        elif isinstance(message, host.CheckProgressed):
            self.checkProgress.emit(message.objects, message.rows)
        elif isinstance(message, host.CheckFinished):
            self.checkFinished.emit(message.report)
        elif isinstance(message, host.CheckFailed):
            self.checkFailed.emit(message.message)
        elif isinstance(message, host.Repaired):
            self.repairsFinished.emit(message)
        elif isinstance(message, host.AttemptsLoaded):
            self.attemptsLoaded.emit(message)
        elif isinstance(message, host.FilesFound):
            self.filesFound.emit(message)
        elif isinstance(message, host.Inspected):
            self.objectInspected.emit(message.key, message.description)
        elif isinstance(message, host.ServerSoftware):
            self.serverSoftware.emit(message.text)
        elif isinstance(message, host.FoldersUpdate):
            self._folder_statuses = message.statuses
            if message.changed:
                self.foldersChanged.emit()

    def stop(self) -> None:
        """Interrupt transfers (they resume next start), stop the host, join everything."""
        self.bridge.stop()
        with self._restarting:
            self._stop_link()

    def _stop_link(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        self._commands.put(host.Stop())
        self._commands.put(None)
        link.stop()


class _HostLink:
    """One engine process with its two pipes and the two threads that use them."""

    def __init__(self, env: Environment, profile_name: str | None, sandbox: bool) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a Qt process
        command_reader, self.command_writer = context.Pipe(duplex=False)
        self.message_reader, message_writer = context.Pipe(duplex=False)
        self._child_ends = (command_reader, message_writer)
        self.process = context.Process(
            target=host.host_main,
            args=(command_reader, message_writer, env, profile_name),
            kwargs={"sandbox": sandbox},
            name="ferry-engine",
            daemon=True,
        )
        self._threads: list[threading.Thread] = []

    def start(
        self,
        send_loop: Callable[[_HostLink], None],
        read_loop: Callable[[_HostLink], None],
    ) -> None:
        self.process.start()
        for end in self._child_ends:  # the child holds its own copies now
            end.close()
        for name, loop in (("ferry-send", send_loop), ("ferry-read", read_loop)):
            thread = threading.Thread(target=loop, args=(self,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Wait for the host to stop after Stop was queued; kill it if it hangs."""
        sender, reader = self._threads
        sender.join(timeout=10)
        self.process.join(timeout=STOP_TIMEOUT)
        if self.process.is_alive():
            log.warning("The engine process did not stop in %s s; killing it", STOP_TIMEOUT)
            self.process.kill()
            self.process.join(timeout=10)
        reader.join(timeout=10)
        self.command_writer.close()
        self.message_reader.close()
