"""Watched folders: files saved into a folder go up on their own, complete and once.

There is no portable "closed after writing" event, so a file is *ready* when
its size and mtime have not changed for the settle time; a file that keeps
growing keeps waiting. Native events (inotify, FSEvents, ReadDirectoryChanges)
only tell the watcher where to look; a periodic sweep re-checks every
candidate, so a lost event delays a file but never loses it. Where native
events are unavailable (a network share, the inotify watch limit reached) the
watcher polls and says so.

Files already uploaded unchanged (the journal knows path and identity) are
not queued again; a file rewritten after upload is a new version. Deleting a
file locally never deletes anything remote: delete events are ignored.
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import logging
import os
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from desktop_app.core.model.errors import ConfigError
from desktop_app.core.settings.paths import write_atomically

log = logging.getLogger(__name__)

DEFAULT_EXCLUDES = (
    "*.tmp",
    "*.part",
    "*.crdownload",
    "*.partial",
    "*.swp",
    "~$*",
    ".~lock.*",
    ".*",
    "Thumbs.db",
    "desktop.ini",
)
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smbfs", "smb3", "fuse.sshfs", "9p", "afs", "fuse.rclone"}
)


@dataclass(frozen=True)
class WatchedFolder:
    """One folder and how its files become keys."""

    path: Path
    prefix: str = ""
    recursive: bool = True
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    paused: bool = False

    def wants(self, file: Path) -> bool:
        """Is this file (under the folder) one to upload, by name and place?"""
        try:
            relative = file.relative_to(self.path)
        except ValueError:
            return False
        parts = relative.parts
        if not parts or (not self.recursive and len(parts) > 1):
            return False
        # Excluded names apply to every level: a temporary folder's contents too.
        if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in self.exclude):
            return False
        return any(fnmatch.fnmatch(parts[-1], pattern) for pattern in self.include)

    def key_name(self, file: Path) -> str:
        relative = file.relative_to(self.path).as_posix()
        prefix = self.prefix.strip("/")
        return f"{prefix}/{relative}" if prefix else relative


@dataclass
class FolderStatus:
    """What a view shows about one folder."""

    folder: WatchedFolder
    mode: str = "starting"  # "native events", "polling (...)", "folder missing"
    last_activity: datetime | None = None
    last_error: str | None = None
    # Files handed over to be uploaded since this watcher started (a new watcher
    # starts with each change of the folder list): a running total, not what is
    # left to upload; the window counts that from its transfers.
    queued: int = 0


@dataclass
class _Candidate:
    folder: WatchedFolder
    size: int
    mtime_ns: int
    stable_since: float


class WatchedFolderStore:
    """The watched folders, kept in the config dir (no secrets)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[WatchedFolder]:
        if not self.path.exists():
            return []
        try:
            data = tomllib.loads(self.path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"{self.path} cannot be read ({exc}); fix or remove it.") from exc
        folders = []
        for entry in data.get("folders", []):
            try:
                folders.append(
                    WatchedFolder(
                        path=Path(entry["path"]),
                        prefix=str(entry.get("prefix", "")),
                        recursive=bool(entry.get("recursive", True)),
                        include=tuple(entry.get("include", ("*",))),
                        exclude=tuple(entry.get("exclude", DEFAULT_EXCLUDES)),
                        paused=bool(entry.get("paused", False)),
                    )
                )
            except (KeyError, TypeError) as exc:
                raise ConfigError(f"{self.path}: a folder entry is incomplete ({exc}).") from exc
        return folders

    def save(self, folders: Sequence[WatchedFolder]) -> None:
        entries: list[dict[str, Any]] = []
        for folder in folders:
            entry = dataclasses.asdict(folder)
            entry["path"] = str(folder.path)
            entry["include"] = list(folder.include)
            entry["exclude"] = list(folder.exclude)
            entries.append(entry)
        write_atomically(self.path, tomli_w.dumps({"folders": entries}).encode("utf-8"))


def _filesystem_type(path: Path) -> str:
    """The mount's filesystem type on Linux ('' elsewhere or when unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    best, kind = "", ""
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3 and resolved.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher, folder: WatchedFolder) -> None:
        self.watcher = watcher
        self.folder = folder

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type == "deleted" or (event.is_directory and event.event_type != "moved"):
            return
        target = getattr(event, "dest_path", "") or event.src_path
        path = Path(os.fsdecode(target))
        if event.is_directory:
            self.watcher.note_tree(self.folder, path)  # a folder moved in: all its files
        else:
            self.watcher.note(self.folder, path)


class FolderWatcher:
    """Watches folders and hands over files once they have settled.

    ``on_ready(folder, files)`` is called from the watcher's thread with files
    that are complete and not already uploaded unchanged; ``already_sent(path,
    stat)`` answers the latter from the journal.
    """

    def __init__(
        self,
        folders: Sequence[WatchedFolder],
        *,
        on_ready: Callable[[WatchedFolder, list[Path]], None],
        already_sent: Callable[[Path, os.stat_result], bool],
        settle_seconds: float = 3.0,
        sweep_seconds: float = 0.5,
        force_polling: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folders = list(folders)
        self.on_ready = on_ready
        self.already_sent = already_sent
        self.settle_seconds = settle_seconds
        self.sweep_seconds = sweep_seconds
        self.force_polling = force_polling
        self.monotonic = monotonic
        self.status: dict[Path, FolderStatus] = {f.path: FolderStatus(f) for f in self.folders}
        self._candidates: dict[Path, _Candidate] = {}
        self._lock = threading.Lock()
        self._observers: dict[Path, BaseObserver] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sweep_loop, name="ferry-watch", daemon=True)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        for folder in self.folders:
            if not folder.paused:
                self._attach(folder)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        for observer in self._observers.values():
            observer.stop()
        for observer in self._observers.values():
            observer.join(timeout=10)
        self._observers.clear()

    def _attach(self, folder: WatchedFolder) -> None:
        status = self.status[folder.path]
        if not folder.path.is_dir():
            status.mode = "folder missing"
            status.last_error = f"{folder.path} does not exist (yet); Ferry waits for it."
            log.warning(status.last_error)
            return
        fs_type = _filesystem_type(folder.path)
        reason = ""
        if self.force_polling:
            reason = "asked for"
        elif fs_type in NETWORK_FILESYSTEMS:
            reason = f"{fs_type} network share: native events do not cross the network"
        observer: BaseObserver = PollingObserver(timeout=2) if reason else Observer()
        try:
            observer.schedule(_Handler(self, folder), str(folder.path), recursive=folder.recursive)
            observer.start()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE):
                reason = (
                    "the inotify watch limit is reached; raise fs.inotify.max_user_watches "
                    "(e.g. `sysctl fs.inotify.max_user_watches=524288`) for native events"
                )
            else:
                reason = f"native events failed ({exc.strerror})"
            log.warning("Watching %s by polling: %s", folder.path, reason)
            observer = PollingObserver(timeout=2)
            observer.schedule(_Handler(self, folder), str(folder.path), recursive=folder.recursive)
            observer.start()
        self._observers[folder.path] = observer
        status.mode = f"polling ({reason})" if reason else "native events"
        status.last_error = None
        log.info("Watching %s (%s)", folder.path, status.mode)
        self.note_tree(folder, folder.path)  # what arrived while Ferry was not running

    def _detach(self, folder: WatchedFolder) -> None:
        observer = self._observers.pop(folder.path, None)
        if observer is not None:
            observer.stop()
            observer.join(timeout=10)

    # -- noticing -----------------------------------------------------------------------

    def note(self, folder: WatchedFolder, path: Path) -> None:
        if not folder.wants(path):
            return
        try:
            info = path.stat()
        except OSError:
            return
        if not path.is_file():
            return
        with self._lock:
            current = self._candidates.get(path)
            if current is None or (current.size, current.mtime_ns) != (
                info.st_size,
                info.st_mtime_ns,
            ):
                self._candidates[path] = _Candidate(
                    folder, info.st_size, info.st_mtime_ns, self.monotonic()
                )

    def note_tree(self, folder: WatchedFolder, root: Path) -> None:
        for path in self._walk(folder, root):
            self.note(folder, path)

    @staticmethod
    def _walk(folder: WatchedFolder, root: Path) -> Iterator[Path]:
        if root.is_file():
            yield root
            return
        for directory, subdirs, files in os.walk(root):
            if not folder.recursive:
                subdirs.clear()
            for name in files:
                yield Path(directory) / name

    # -- settling -------------------------------------------------------------------------

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_seconds):
            try:
                self.sweep()
            except Exception:
                log.exception("The watched-folder sweep failed")

    def sweep(self) -> None:
        """Re-check folders and candidates; hand over what has settled."""
        for folder in self.folders:
            if folder.paused:
                continue
            present = folder.path.is_dir()
            attached = folder.path in self._observers
            if attached and not present:
                self._detach(folder)
                status = self.status[folder.path]
                status.mode = "folder missing"
                status.last_error = f"{folder.path} was removed; Ferry waits for it to return."
                log.warning(status.last_error)
            elif present and not attached:
                self._attach(folder)
        now = self.monotonic()
        ready: dict[Path, list[Path]] = {}
        with self._lock:
            candidates = list(self._candidates.items())
        for path, candidate in candidates:
            try:
                info = path.stat()
            except OSError:
                with self._lock:
                    self._candidates.pop(path, None)  # gone again: nothing to send
                continue
            if (info.st_size, info.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                with self._lock:
                    self._candidates[path] = _Candidate(
                        candidate.folder, info.st_size, info.st_mtime_ns, now
                    )
                continue
            if now - candidate.stable_since < self.settle_seconds:
                continue
            with self._lock:
                self._candidates.pop(path, None)
            if self.already_sent(path, info):
                continue
            ready.setdefault(candidate.folder.path, []).append(path)
        for folder_path, files in ready.items():
            folder = next(f for f in self.folders if f.path == folder_path)
            status = self.status[folder_path]
            status.last_activity = datetime.now(UTC)
            try:
                self.on_ready(folder, sorted(files))
            except Exception as exc:
                status.last_error = str(exc)
                log.exception("Queuing files from %s failed", folder_path)
                continue
            status.queued += len(files)  # only files actually handed over

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._candidates)
