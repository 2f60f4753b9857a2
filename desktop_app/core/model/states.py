"""A transfer's states, the moves allowed between them, and the kinds of failure.

The table :data:`ALLOWED_MOVES` is the only definition of which state may
follow which. The journal checks every state change against it inside the
write transaction that makes it, so no caller (engine, sender, scheduler,
repair) can move a transfer where it may not go: a finished transfer stays
finished, and a transfer is never moved back to a step whose facts are gone.

Failure kinds say who acts next: the scheduler itself (transient), a person
(permanent, source changed, input), or nobody (final: retrying cannot help).
"""

from __future__ import annotations

import enum


class TransferState(enum.Enum):
    QUEUED = "queued"
    HASHING = "hashing"
    UPLOADING = "uploading"
    COMPLETING = "completing"
    VERIFYING = "verifying"
    REGISTERING = "registering"
    DONE = "done"
    DUPLICATE = "duplicate"  # same content already live for this owner: nothing sent
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES

    @property
    def in_progress(self) -> bool:
        """Neither finished nor failed: a scheduler should run it."""
        return not self.finished and self is not TransferState.FAILED


FINISHED_STATES = frozenset({TransferState.DONE, TransferState.DUPLICATE, TransferState.CANCELLED})

# The states a transfer is born in: queued (a file to send), failed (bad
# input, recorded so that it is listed with its reason), uploading (a repair
# re-sending a catalog row whose hash and row are known). Every other state
# is reached only through the moves below.
INITIAL_STATES = frozenset({TransferState.QUEUED, TransferState.FAILED, TransferState.UPLOADING})

_Q, _H, _U, _C, _V, _R = (
    TransferState.QUEUED,
    TransferState.HASHING,
    TransferState.UPLOADING,
    TransferState.COMPLETING,
    TransferState.VERIFYING,
    TransferState.REGISTERING,
)
_DONE, _DUP, _FAIL, _CANCEL = (
    TransferState.DONE,
    TransferState.DUPLICATE,
    TransferState.FAILED,
    TransferState.CANCELLED,
)

# Every step may fail or be cancelled. A step may be entered again (a resume
# after a crash re-enters the step it was in). UPLOADING may be re-entered from
# the later byte steps: the server forgot the multipart upload, or the object
# did not verify, and the bytes are sent afresh under the same reservation.
# A file sent in one request skips the steps that only say "working" (its hash
# takes milliseconds) or that its single PUT proves at once: queued goes
# straight to uploading (or duplicate), and uploading to done once the PUT's
# ETag is the MD5 of the bytes sent and the catalog row is active.
ALLOWED_MOVES: dict[TransferState, frozenset[TransferState]] = {
    _Q: frozenset({_Q, _H, _U, _DUP, _FAIL, _CANCEL}),
    _H: frozenset({_H, _U, _DUP, _FAIL, _CANCEL}),
    _U: frozenset({_U, _C, _V, _R, _DONE, _FAIL, _CANCEL}),
    _C: frozenset({_C, _U, _V, _FAIL, _CANCEL}),
    _V: frozenset({_V, _U, _R, _FAIL, _CANCEL}),
    _R: frozenset({_R, _DONE, _FAIL, _CANCEL}),
    # A failed transfer goes back to the step it can resume from, or fails
    # again when its input is looked at afresh and is still bad.
    _FAIL: frozenset({_Q, _U, _V, _FAIL, _CANCEL}),
    _DONE: frozenset(),
    _DUP: frozenset(),
    _CANCEL: frozenset(),
}


def move_allowed(current: TransferState, target: TransferState) -> bool:
    return target in ALLOWED_MOVES[current]


class ErrorKind(enum.Enum):
    """Why a transfer failed, and so who may act on it."""

    TRANSIENT = "transient"  # network, 5xx, throttling, catalog away: retried on its own
    PERMANENT = "permanent"  # access denied, no bucket, key taken: a person fixes, then retries
    SOURCE_CHANGED = "source_changed"  # the file changed: Retry uploads the new version
    INPUT = "input"  # the file could not be read as given: Retry looks at it again
    FINAL = "final"  # can never succeed by retrying (a socket, a loop, an impossible name)
    INTERRUPTED = "interrupted"  # an unexpected error in Ferry itself: retried on its own

    @property
    def retries_on_its_own(self) -> bool:
        return self in (ErrorKind.TRANSIENT, ErrorKind.INTERRUPTED)

    @property
    def retryable(self) -> bool:
        """Whether Retry is offered to a person at all."""
        return self is not ErrorKind.FINAL

    @classmethod
    def parse(cls, value: str | None) -> ErrorKind:
        try:
            return cls(value)
        except ValueError:
            return cls.PERMANENT  # rows written before kinds were an enum
