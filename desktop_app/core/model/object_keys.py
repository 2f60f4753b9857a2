"""What may be an object key, and how a local path becomes one.

A key must be something S3 accepts and must stay inside the profile's prefix:
no empty name, no leading '/', no '.' or '..' segment, no control characters,
at most 1024 bytes in UTF-8. Keys are refused before anything is written.

A local name becomes a key by its own system's rules: a backslash separates
folders only on Windows. On POSIX it is a character of the name and stays one
in the key, so ``\\x.txt`` and ``x.txt`` are two files with two keys, never
one mapped onto the other; :func:`is_ambiguous` says which keys a Windows user
(or a tool that treats ``\\`` as a separator) would read differently.
"""

from __future__ import annotations

import enum
import os
import unicodedata
from pathlib import PurePosixPath

from desktop_app.core.model.errors import InvalidKeyError

MAX_KEY_BYTES = 1024


def validate_key(key: str) -> str:
    """Return the key unchanged, or raise InvalidKeyError with the reason."""
    if not key:
        raise InvalidKeyError("An empty name cannot be a key.")
    if any(unicodedata.category(ch) == "Cc" for ch in key):
        raise InvalidKeyError(f"{key!r} contains control characters; rename the file.")
    if key.startswith("/"):
        raise InvalidKeyError(f"{key!r} starts with '/', which would escape the prefix.")
    segments = key.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise InvalidKeyError(
            f"{key!r} contains a '.' or '..' segment, which would escape the prefix."
        )
    if "" in segments[:-1]:
        raise InvalidKeyError(f"{key!r} contains an empty path segment ('//').")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError(
            f"{key!r} is not valid Unicode (an undecodable file name); rename the file."
        ) from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"{key[:60]!r}… is {len(encoded)} bytes long in UTF-8; S3 allows at most 1024."
        )
    return key


class PathFlavour(enum.Enum):
    """Whose rules split a local relative name into folders."""

    POSIX = "posix"  # only '/' separates; a backslash is part of the name
    WINDOWS = "windows"  # '\\' and '/' both separate


LOCAL_FLAVOUR = PathFlavour.WINDOWS if os.name == "nt" else PathFlavour.POSIX


def is_ambiguous(key: str) -> bool:
    """Whether the key holds a backslash: Windows (and some S3 tools) read it as a folder."""
    return "\\" in key


def join_key(prefix: str, relative: str, flavour: PathFlavour = LOCAL_FLAVOUR) -> str:
    """The key for a relative name under a prefix, validated.

    ``relative`` uses '/' between folders (and, on Windows, '\\' too); on POSIX a
    backslash is kept as part of the name.
    """
    if flavour is PathFlavour.WINDOWS:
        relative = relative.replace("\\", "/")
    relative_posix = PurePosixPath(*relative.split("/")).as_posix()
    clean_prefix = prefix.strip("/")
    return validate_key(f"{clean_prefix}/{relative_posix}" if clean_prefix else relative_posix)
