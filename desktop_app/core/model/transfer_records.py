"""A transfer as Ferry reads it: its record, its attempts, its error.

The plain values the journal's rows become (:class:`TransferRecord`,
:class:`AttemptRecord`, :class:`TransferError`, :class:`UnrecordedSending`)
and what a transfer is given when it is queued (:class:`SourceIdentity`,
:class:`KeyConflictPolicy`). They sit in the model layer (docs/ARCHITECTURE.md,
"The map"), below the journal that writes them, so the events, the Failed
inbox and the window can speak of a transfer without importing the journal;
:mod:`desktop_app.core.journal.records` and :mod:`desktop_app.core.journal.store`
re-export them.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from desktop_app.core.model.errors import ErrorCause
from desktop_app.core.model.states import ErrorKind, TransferState

if TYPE_CHECKING:
    from desktop_app.core.model.bucket_objects import WriteCondition


class KeyConflictPolicy(enum.Enum):
    """When the key is taken by other content: fail, upload as "name (2).ext", or replace."""

    FAIL = "fail"
    SUFFIX = "suffix"
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class SourceIdentity:
    """What a file was when Ferry looked at it; any change means other bytes.

    ctime is in it because no program can set it back: a rewrite that keeps
    size and mtime (``touch -d``, a copy with ``-p``) still moves ctime. A
    ctime of 0 means "not recorded" (transfers queued before it was) and is
    then left out of the comparison.
    """

    size: int
    mtime_ns: int
    device: int
    inode: int
    ctime_ns: int = 0

    @classmethod
    def of(cls, stat: os.stat_result) -> SourceIdentity:
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_dev, stat.st_ino, stat.st_ctime_ns)

    def matches(self, now: SourceIdentity) -> bool:
        """Is the file still what it was (``now`` is a fresh stat)?"""
        if self.ctime_ns == 0:
            now = dataclasses.replace(now, ctime_ns=0)
        return self == now

    def columns(self) -> dict[str, Any]:
        """The journal's columns for this identity."""
        return {
            "source_size": self.size,
            "source_mtime_ns": self.mtime_ns,
            "source_device": self.device,
            "source_inode": self.inode,
            "source_ctime_ns": self.ctime_ns,
        }


@dataclass(frozen=True, init=False)
class TransferError:
    """A failed transfer's error: who acts next, the words a person reads, and why.

    ``cause`` is the code set where the error was raised; code acts on it (the
    Failed inbox's groups, a repeated verification failure), never on the
    title. Left out, it is the kind's (:meth:`ErrorCause.of_kind`).
    """

    kind: ErrorKind
    title: str
    message: str
    cause: ErrorCause

    def __init__(
        self, kind: ErrorKind, title: str, message: str, cause: ErrorCause | None = None
    ) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "title", title)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "cause", cause or ErrorCause.of_kind(kind))


@dataclass(frozen=True)
class AttemptRecord:
    """One try at a transfer: when, how it ended, and the bytes it sent."""

    number: int
    started_at: datetime
    ended_at: datetime
    error: TransferError | None  # None: the attempt succeeded (or was stopped)
    bytes_sent: int


@dataclass(frozen=True)
class UnrecordedSending:
    """Parts the server confirmed outside every recorded attempt of a transfer.

    An attempt is recorded only when it ends in done, duplicate or failed; one
    cut by a pause or by Ferry stopping (a kill, a crash, a power cut) leaves
    no record, only the parts it had confirmed. Those between two recorded
    attempts (or before the first, or after the last) are one such stretch:
    one cut attempt or more, as far as the journal can know. Parts sent whole
    in one request, parts the server had not confirmed, and parts an upload
    started afresh since (its parts are forgotten) are not known here.
    """

    after: int  # the number of the recorded attempt it came after; 0: before the first
    first_confirmed_at: datetime
    last_confirmed_at: datetime
    parts: int
    bytes_sent: int


@dataclass(frozen=True)
class TransferRecord:
    id: int
    source_path: str
    identity: SourceIdentity
    profile: str
    bucket: str
    key: str
    content_type: str
    sha256: str | None
    part_size: int
    part_count: int
    upload_id: str | None
    catalog_file_id: int | None
    etag: str | None
    duplicate_of: str | None
    state: TransferState
    paused: bool
    attempts: int
    error: TransferError | None
    retry_at: datetime | None
    created_at: datetime
    updated_at: datetime
    on_conflict: KeyConflictPolicy = KeyConflictPolicy.FAIL
    reservation_token: str | None = None  # owns this transfer's catalog reservation
    # Set just before CreateMultipartUpload, cleared when its id is committed:
    # a crash in between left an upload on the server that only a listing finds.
    upload_intent_at: datetime | None = None
    # Content already stored in the bucket under another key: this key is
    # filled by a server-side copy of that object, conditional on its ETag.
    copy_source_key: str | None = None
    copy_source_etag: str | None = None
    # The object at the key this transfer may write over: Ferry's own that an
    # overwrite replaces, or the one a person's repair chose to replace. None:
    # the key must hold no object (Ferry never writes over another's).
    replaces_etag: str | None = None
    # The version the object's write made, in a bucket that keeps versions
    # (None: it keeps none). Carried to the catalog row like the ETag: what
    # `ferry delete` removes is exactly this version.
    version_id: str | None = None

    @property
    def write_condition(self) -> WriteCondition:
        """What the key must hold for this transfer's PUT or Complete to land."""
        from desktop_app.core.model.bucket_objects import (
            WriteCondition,  # botocore: not for reading
        )

        return WriteCondition(self.replaces_etag)

    @property
    def size(self) -> int:
        return self.identity.size

    @property
    def failure_kind(self) -> ErrorKind:
        """Why it failed (rows without a recorded kind count as permanent)."""
        return self.error.kind if self.error else ErrorKind.PERMANENT

    @property
    def resume_point(self) -> TransferState:
        """The step a failed or interrupted transfer goes on from.

        Read from the facts the later steps need, and from nothing else: an
        ETag and a catalog row (the object was written: verify it), a row and
        a SHA-256 (reserved: send, the parts the server has are kept), else
        from the start. A second record of the point could disagree with the
        facts after a crash between two writes; these cannot. The one step
        back, to sending afresh, is :meth:`Journal.forget_upload`.
        """
        if self.etag is not None and self.catalog_file_id is not None:
            return TransferState.VERIFYING
        if self.catalog_file_id is not None and self.sha256 is not None:
            return TransferState.UPLOADING
        return TransferState.QUEUED
