"""What the journal is asked to write: a new transfer, an attempt that ended, changed facts.

Typed, frozen records, not keyword columns: a misspelt fact is an error of
the type checker, not of a running upload. :func:`check_birth` holds the rule
for the state a transfer may be born in; the journal refuses any other.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from desktop_app.core.journal.records import KeyConflictPolicy, SourceIdentity, TransferError
from desktop_app.core.model.states import INITIAL_STATES, TransferState


@dataclass(frozen=True)
class NewTransfer:
    """A transfer to queue: its source, where it goes, its part plan and the state it is born in."""

    source_path: str
    identity: SourceIdentity
    profile: str
    bucket: str
    key: str
    content_type: str
    part_size: int
    part_count: int
    state: TransferState = TransferState.QUEUED
    error: TransferError | None = None
    on_conflict: KeyConflictPolicy = KeyConflictPolicy.FAIL
    sha256: str | None = None  # known already (a repair re-sending a catalog row)
    catalog_file_id: int | None = None
    reservation_token: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    replaces_etag: str | None = None  # a repair replacing the object a person saw


def check_birth(new: NewTransfer) -> None:
    """A transfer is born only in an initial state, with what that state needs."""
    if new.state not in INITIAL_STATES:
        raise ValueError(f"a transfer cannot be born {new.state.value}")
    if (new.error is not None) != (new.state is TransferState.FAILED):
        raise ValueError("a transfer is born failed with its error, and only then")
    if new.state is TransferState.UPLOADING and (new.sha256 is None or new.catalog_file_id is None):
        raise ValueError("a transfer born uploading re-sends a known catalog row and hash")


@dataclass(frozen=True)
class NewAttempt:
    """An attempt that just ended, to be numbered and kept by the journal."""

    started_at: datetime
    ended_at: datetime
    error: TransferError | None
    bytes_sent: int


class Unchanged(enum.Enum):
    """A fact a :class:`TransferFacts` leaves as the journal has it."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True)
class TransferFacts:
    """Facts of one transfer to write, with or without a state change.

    Each field left :data:`UNCHANGED` keeps its column as it is; ``None``
    clears it. A typed record, not keyword columns: a misspelt fact is an
    error of the type checker, not of a running upload.
    """

    identity: SourceIdentity | Unchanged = UNCHANGED
    key: str | Unchanged = UNCHANGED
    content_type: str | Unchanged = UNCHANGED
    sha256: str | Unchanged | None = UNCHANGED
    part_size: int | Unchanged = UNCHANGED
    part_count: int | Unchanged = UNCHANGED
    catalog_file_id: int | Unchanged | None = UNCHANGED
    reservation_token: str | Unchanged = UNCHANGED
    etag: str | Unchanged | None = UNCHANGED
    duplicate_of: str | Unchanged | None = UNCHANGED
    copy_source_key: str | Unchanged | None = UNCHANGED
    copy_source_etag: str | Unchanged | None = UNCHANGED
    replaces_etag: str | Unchanged | None = UNCHANGED
    version_id: str | Unchanged | None = UNCHANGED
    upload_intent_at: datetime | Unchanged | None = UNCHANGED
    attempts: int | Unchanged = UNCHANGED
    paused: bool | Unchanged = UNCHANGED

    def columns(self) -> dict[str, Any]:
        """The journal's columns these facts set."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is UNCHANGED:
                continue
            if isinstance(value, SourceIdentity):
                values.update(value.columns())
            else:
                values[field.name] = value
        return values
