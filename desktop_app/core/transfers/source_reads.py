"""Reading a transfer's source while it is sent: its identity checked, its bytes read.

Promises: a source gone or unreadable is a :class:`SourceError` that says
so; one whose identity (size, mtime_ns, ctime_ns, device, inode) differs
from the one hashed is a :class:`SourceChangedError`, whose words say the
partial upload was discarded so that no mix of old and new bytes is stored.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from desktop_app.core.model.errors import SourceChangedError, SourceError
from desktop_app.core.model.transfer_records import SourceIdentity, TransferRecord


def read_into(fd: int, offset: int, into: bytearray) -> int:
    """Fill ``into`` from ``offset`` of the file; fewer bytes only where the file ends."""
    view = memoryview(into)
    filled = 0
    while filled < len(into):
        got = os.preadv(fd, [view[filled:]], offset + filled)
        if not got:
            break
        filled += got
    return filled


def open_source(record: TransferRecord) -> BinaryIO:
    try:
        return open(record.source_path, "rb")
    except OSError as exc:
        raise SourceError(f"{record.source_path} cannot be read: {exc.strerror}.") from exc


def current_identity(record: TransferRecord) -> SourceIdentity:
    try:
        return SourceIdentity.of(os.stat(record.source_path))
    except FileNotFoundError:
        raise SourceError(
            f"{record.source_path} is gone; it was moved or deleted before it was uploaded. "
            "Put it back and retry, or remove the transfer.",
            title="File gone",
        ) from None
    except OSError as exc:
        raise SourceError(f"{record.source_path} cannot be read: {exc.strerror}.") from exc


def source_changed(record: TransferRecord, detail: str | None = None) -> SourceChangedError:
    how = f" ({detail})" if detail else ""
    return SourceChangedError(
        f"{record.source_path} changed while uploading{how}; the partial upload was "
        "discarded so that no mix of old and new bytes is stored. Retry to upload the new "
        "version."
    )


def check_source(record: TransferRecord) -> None:
    if not record.identity.matches(current_identity(record)):
        raise source_changed(record)
