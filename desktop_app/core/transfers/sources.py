"""Turning what a person drops or names into files to upload, one verdict each.

Directories are walked (the folder's own name becomes part of the key);
symlinks are followed only when they point inside the folder given, and a
directory loop is refused; sockets, devices, unreadable files, files over the
S3 object limit and names that cannot be keys each get their own clear error,
and never stop the others. Zero-byte files are fine: they become empty objects.
A name with a backslash (a character of the name on POSIX) is refused with its
own error: Windows and some S3 servers (SeaweedFS) read it as a folder
separator, so its object would be another file's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from desktop_app.core.model.errors import ErrorCause, InvalidKeyError
from desktop_app.core.model.object_keys import is_ambiguous, join_key

MAX_OBJECT_SIZE = 5 * 1024**4  # 5 TiB


def printable(text: str) -> str:
    """Text as it can be printed and stored: a file name's undecodable bytes as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class SourceFile:
    path: Path
    key: str
    stat: os.stat_result


@dataclass(frozen=True)
class SourceProblem:
    path: Path
    title: str
    message: str
    key: str = ""  # the key it would have had, when that much was known
    final: bool = False  # retrying cannot help: not a file, a loop, an impossible name
    # Every kind of problem here is the file's own (gone, unreadable, not a
    # file, too large, a loop, a name that cannot be a key).
    cause: ErrorCause = ErrorCause.FILE


def _check_file(path: Path, key_name: str, prefix: str) -> SourceFile | SourceProblem:
    try:
        key = join_key(prefix, key_name)
    except InvalidKeyError as exc:
        return SourceProblem(path, exc.title, f"{path}: {exc.message}", final=True, cause=exc.cause)
    return check_file(path, key)


def check_file(path: Path, key: str) -> SourceFile | SourceProblem:
    """A verdict on one file that would go to key."""
    if is_ambiguous(key):
        return _ambiguous(path, key)
    try:
        info = path.stat()
    except FileNotFoundError:
        return SourceProblem(path, "File not found", f"{path} does not exist (any more).", key)
    except OSError as exc:
        return SourceProblem(path, "Cannot read file", f"{path}: {exc.strerror}.", key)
    if stat.S_ISSOCK(info.st_mode) or stat.S_ISFIFO(info.st_mode):
        return SourceProblem(
            path,
            "Not a regular file",
            f"{path} is a socket or pipe, not a file; skipped.",
            key,
            final=True,
        )
    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
        return SourceProblem(
            path, "Not a regular file", f"{path} is a device; skipped.", key, final=True
        )
    if not stat.S_ISREG(info.st_mode):
        return SourceProblem(
            path, "Not a regular file", f"{path} is not a regular file.", key, final=True
        )
    if not os.access(path, os.R_OK):
        return SourceProblem(
            path,
            "No permission to read",
            f"{path} cannot be read (permission denied). Give yourself read access and retry.",
            key,
        )
    if info.st_size > MAX_OBJECT_SIZE:
        return SourceProblem(
            path,
            "File too large",
            f"{path} is {info.st_size:,} bytes; S3 objects may be at most 5 TiB.",
            key,
        )
    return SourceFile(path, key, info)


def _ambiguous(path: Path, key: str) -> SourceProblem:
    # SeaweedFS stores 'a\b' as 'a/b' (and Windows users read it so): the key
    # would name another file's object, so the name is refused, not mapped.
    alias = "/".join(part for part in key.replace("\\", "/").split("/") if part)
    return SourceProblem(
        path,
        "Name cannot be a key",
        f"{printable(str(path))}: the name holds a backslash, which Windows and some S3 "
        f"servers (SeaweedFS among them) read as a folder separator, so '{printable(key)}' "
        f"could be the same object as '{printable(alias)}'. Rename the file without '\\' "
        "and add it again.",
        key,
        final=True,
    )


def _walk(root: Path, prefix: str) -> Iterator[SourceFile | SourceProblem]:
    root_real = root.resolve()
    base_name = root_real.name
    seen_dirs: set[tuple[int, int]] = set()

    def visit(directory: Path, relative: str) -> Iterator[SourceFile | SourceProblem]:
        try:
            info = directory.stat()
        except OSError as exc:
            yield SourceProblem(directory, "Cannot read folder", f"{directory}: {exc.strerror}.")
            return
        identity = (info.st_dev, info.st_ino)
        if identity in seen_dirs:
            yield SourceProblem(
                directory,
                "Folder loop",
                f"{directory} leads back to a folder already visited (a symlink loop); skipped.",
                final=True,
            )
            return
        seen_dirs.add(identity)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            yield SourceProblem(directory, "Cannot read folder", f"{directory}: {exc.strerror}.")
            return
        for entry in entries:
            path = Path(entry.path)
            name = f"{relative}/{entry.name}"
            if entry.is_symlink():
                try:
                    target = path.resolve()
                except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError for loops
                    yield SourceProblem(
                        path,
                        "Link loop",
                        f"{path} is a symbolic link that leads back to itself; skipped.",
                        final=True,
                    )
                    continue
                if not target.is_relative_to(root_real):
                    yield SourceProblem(
                        path,
                        "Link outside the folder",
                        f"{path} points outside {root} ({target}); links are followed only "
                        "inside the folder given.",
                        final=True,
                    )
                    continue
            if path.is_dir():
                yield from visit(path, name)
            else:
                yield _check_file(path, name, prefix)

    yield from visit(root, base_name)


def expand(paths: Iterable[Path | str], prefix: str) -> Iterator[SourceFile | SourceProblem]:
    """Every file under the given paths, in a stable order, or the reason it cannot go."""
    for raw in paths:
        path = Path(raw).expanduser().absolute()
        try:
            if path.is_dir():
                yield from _walk(path, prefix)
                continue
        except OSError as exc:
            yield SourceProblem(path, "Cannot read", f"{path}: {exc.strerror}.")
            continue
        yield _check_file(path, path.name, prefix)
