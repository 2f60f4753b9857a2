"""The watched folders of one resident Ferry: kept in the config dir, watched, their
settled files queued.

Promises: one watcher at a time (a new set of folders stops the old one
first); a file already uploaded or queued unchanged (same path and identity)
is not queued again; only a Ferry that runs every runnable transfer watches
(a one-shot one runs only what it waits for).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path

from desktop_app.core.journal.store import Journal
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import KeyConflictPolicy, SourceIdentity
from desktop_app.core.runtime.watcher import (
    FolderStatus,
    FolderWatcher,
    WatchedFolder,
    WatchedFolderStore,
)
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.transfers.intake import TransferIntake
from desktop_app.core.transfers.scheduler import Runs, Scheduler


class FolderFollowing:
    """Watches one profile's folders and queues what settles in them; thread-safe."""

    def __init__(
        self,
        *,
        journal: Journal,
        profile: Profile,
        intake: TransferIntake,
        scheduler: Scheduler,
        folders_file: Path,
        start: Callable[[], None],
    ) -> None:
        self.journal = journal
        self.profile = profile
        self.intake = intake
        self.scheduler = scheduler
        self.folders_file = folders_file
        self._start = start  # the Ferry's own start: the scheduler runs what is queued
        self._lock = threading.Lock()
        self._watcher: FolderWatcher | None = None

    def already_sent(self, path: Path, info: os.stat_result) -> bool:
        """Has this exact file (path and identity) been uploaded or queued already?"""
        latest = self.journal.latest_for_source(str(path), self.profile.name)
        if latest is None or latest.state in (TransferState.FAILED, TransferState.CANCELLED):
            return False
        return latest.identity == SourceIdentity.of(info)

    def watch_saved(self) -> None:
        """Watch the folders kept in the config dir (a resident Ferry, at its start)."""
        self._follow(WatchedFolderStore(self.folders_file).load())

    def set_folders(self, folders: list[WatchedFolder]) -> None:
        """Keep these as the watched folders and watch them from now on."""
        WatchedFolderStore(self.folders_file).save(folders)
        self._follow(folders)

    def statuses(self) -> list[FolderStatus]:
        """How each watched folder fares (copies: the watcher updates its own in place)."""
        with self._lock:
            watcher = self._watcher
            return [dataclasses.replace(s) for s in watcher.status.values()] if watcher else []

    def stop(self) -> None:
        with self._lock:
            if self._watcher is not None:
                self._watcher.stop()
                self._watcher = None

    def _follow(self, folders: list[WatchedFolder]) -> None:
        with self._lock:
            if self._watcher is not None:
                self._watcher.stop()
                self._watcher = None
            if folders:
                self._watcher = self.watch(folders)

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
        self._start()

        def on_ready(folder: WatchedFolder, files: list[Path]) -> None:
            queued = self.intake.queue_files([(f, folder.key_name(f)) for f in files], policy)
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
