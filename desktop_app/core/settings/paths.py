"""Where Ferry keeps its files.

Config, data and logs come from platformdirs; ``FERRY_HOME=DIR`` puts all of
them under DIR (tests and scripts use it). Nothing is read at import time: the
environment is passed in. :func:`write_atomically` is how a settings file is
written: a reader sees the old file or the new one, never half of one.

Promise (POSIX): :meth:`FerryPaths.ensure` creates missing folders as 0700 and
refuses, with :class:`UnsafeFolderError`, a folder another user of the machine
could change: Ferry's own folders (and FERRY_HOME) must be the user's and
writable by no one else; every folder above them must belong to the user or
root and be writable by no one else unless sticky (``/tmp`` is fine, a
world-writable folder someone else made is not). A group that is the user's
own private group (Debian's "user private groups") counts as the user.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from desktop_app.core.model.errors import UnsafeFolderError

APP_NAME = "ferry"


@dataclass(frozen=True)
class FerryPaths:
    """The three directories Ferry writes to, and the files inside them."""

    config_dir: Path
    data_dir: Path
    log_dir: Path
    home: Path | None = None  # FERRY_HOME, when set

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> FerryPaths:
        home = environ.get("FERRY_HOME")
        if home:
            root = Path(home).expanduser().resolve()
            return cls(root / "config", root / "data", root / "logs", root)
        return cls(
            Path(platformdirs.user_config_dir(APP_NAME)),
            Path(platformdirs.user_data_dir(APP_NAME)),
            Path(platformdirs.user_log_dir(APP_NAME)),
        )

    def ensure(self) -> None:
        """Create the folders (0700 where new); refuse one another user could change."""
        self.ensure_log_dir()
        make_private_dir(self.config_dir, "settings folder")
        make_private_dir(self.data_dir, "data folder")

    def ensure_log_dir(self) -> None:
        """The log folder alone, as :meth:`ensure` makes it (logging starts first)."""
        if self.home is not None:
            make_private_dir(self.home, "home folder (FERRY_HOME)")
        make_private_dir(self.log_dir, "log folder")

    @property
    def profiles_file(self) -> Path:
        return self.config_dir / "profiles.toml"

    @property
    def watched_folders_file(self) -> Path:
        return self.config_dir / "watched.toml"

    @property
    def journal_file(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    @property
    def sandbox_dir(self) -> Path:
        return self.data_dir / "sandbox"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "ferry.log"

    def default_catalog_url(self, profile_name: str) -> str:
        return f"sqlite:///{self.data_dir / f'catalog-{profile_name}.sqlite3'}"


def write_atomically(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace a file's content at once (a temp file beside it, synced, renamed over it).

    ``private``: readable by the owner only (0600) from the first byte on.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    with os.fdopen(descriptor, "wb") as handle:
        if private:
            os.fchmod(handle.fileno(), 0o600)  # a temp file left from before keeps its mode
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(path)


def make_private_dir(path: Path, what: str) -> None:
    """Create ``path`` and its missing parents as 0700, then :func:`refuse_unsafe_dir`."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        # Made meanwhile by someone: judged below like any folder found.
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    refuse_unsafe_dir(path, what)


def refuse_unsafe_dir(path: Path, what: str) -> None:
    """Raise :class:`UnsafeFolderError` when another user could change what ``path`` holds.

    ``path`` itself must be the user's and writable by no one else; each
    folder above it (as written and with links resolved) must be the user's or
    root's and writable by others only with the sticky bit, for whoever can
    write a folder can rename what is in it and put something else there.
    """
    if sys.platform == "win32":
        return  # per-user folders there are guarded by the profile's ACL
    me = os.geteuid()
    own = os.stat(path)
    if own.st_uid != me:
        raise UnsafeFolderError(
            f"Ferry's {what} {path} belongs to {describe_user(own.st_uid)}, not to you "
            f"({_name(me)}): they could change or replace what Ferry keeps there. Remove "
            f"it or make it yours (`chown {_name(me)} {path}`), or set FERRY_HOME to a "
            "folder of your own."
        )
    others = _writers(own, sticky_counts=False)
    if others:
        raise UnsafeFolderError(
            f"Ferry's {what} {path} can be written by {others} (mode "
            f"{stat.S_IMODE(own.st_mode):04o}): they could change or replace what Ferry "
            f"keeps there. Run `chmod go-w {path}`, or set FERRY_HOME to a folder of your own."
        )
    for above, found in _folders_above(path):
        if found.st_uid not in (me, 0):
            raise UnsafeFolderError(
                f"{above}, a folder above Ferry's {what} {path}, belongs to "
                f"{describe_user(found.st_uid)}, who could replace Ferry's folder there. Set "
                "FERRY_HOME to a folder of your own (in your home folder)."
            )
        others = _writers(found, sticky_counts=True)
        if others:
            raise UnsafeFolderError(
                f"{above}, a folder above Ferry's {what} {path}, can be written by "
                f"{others} (mode {stat.S_IMODE(found.st_mode):04o}, not sticky), who could "
                f"replace Ferry's folder there. Run `chmod go-w {above}`, or set FERRY_HOME "
                "to a folder of your own."
            )


def _folders_above(path: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Each folder above ``path``, as written and as its links lead, once each."""
    seen: set[tuple[int, int]] = set()
    for chain in (path.absolute().parents, path.resolve().parents):
        for above in chain:
            found = os.stat(above)
            if (found.st_dev, found.st_ino) not in seen:
                seen.add((found.st_dev, found.st_ino))
                yield above, found


def _writers(found: os.stat_result, *, sticky_counts: bool) -> str:
    """Who besides the user may write the folder ('' when no one), in words."""
    if sticky_counts and found.st_mode & stat.S_ISVTX:
        return ""  # others may add, never rename or remove what is not theirs
    if found.st_mode & stat.S_IWOTH:
        return "every user"
    if found.st_mode & stat.S_IWGRP and not _private_group(found.st_gid):
        return f"the group {_group(found.st_gid)}"
    return ""


def _private_group(gid: int) -> bool:
    """The user's own group: named after the user, with no other member."""
    import grp
    import pwd

    try:
        group = grp.getgrgid(gid)
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return False
    return group.gr_name == user and set(group.gr_mem) <= {user}


def describe_user(uid: int) -> str:
    """A user as people read it: name and uid."""
    name = _name(uid)
    return f"{name} (uid {uid})" if name != str(uid) else f"uid {uid}"


def _name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
