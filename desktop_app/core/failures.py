"""Why transfers failed, grouped the way a person acts on them.

A failed transfer keeps the kind, title, message and cause code of its error
(the journal's columns). For the Failed inbox the cause codes fall into a
few groups, each with what a person does about it: fix the credentials, wait
for the network, look at the server, look at the file, resolve a conflict.
The title is wording only and groups nothing. Retrying helps unless the error
is final (a socket, a loop, a name that cannot be a key).
"""

from __future__ import annotations

import enum

from desktop_app.core.errors import ErrorCause
from desktop_app.core.journal import TransferError


class FailureCause(enum.Enum):
    CREDENTIALS = "credentials"
    NETWORK = "network"
    SERVER = "server"
    FILE = "file"
    CONFLICT = "conflict"
    OTHER = "other"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def advice(self) -> str:
        return _ADVICE[self]


_LABELS = {
    FailureCause.CREDENTIALS: "Credentials and permissions",
    FailureCause.NETWORK: "Network",
    FailureCause.SERVER: "Server",
    FailureCause.FILE: "The file itself",
    FailureCause.CONFLICT: "Conflicts",
    FailureCause.OTHER: "Other",
}
_ADVICE = {
    FailureCause.CREDENTIALS: (
        "Check the access key and secret in Settings, or ask whoever manages the bucket "
        "for the permission; then Retry."
    ),
    FailureCause.NETWORK: (
        "Ferry tries again by itself when the server answers again; Retry tries at once."
    ),
    FailureCause.SERVER: (
        "The server refused or failed; Ferry tries again by itself where that can help. "
        "If it lasts, ask whoever runs the server."
    ),
    FailureCause.FILE: (
        "Look at the file (moved, changed, unreadable, a name the bucket cannot hold); "
        "Retry looks at it afresh."
    ),
    FailureCause.CONFLICT: (
        "Another upload or person holds the same name; Retry once that is settled, or "
        "change the conflict setting."
    ),
    FailureCause.OTHER: "See the message; Retry tries again.",
}

# Each cause code (set where the error was raised) in the group a person
# acts on; a failed verification is told in its message, not a group of its own.
_GROUPS = {
    ErrorCause.CREDENTIALS: FailureCause.CREDENTIALS,
    ErrorCause.NETWORK: FailureCause.NETWORK,
    ErrorCause.SERVER: FailureCause.SERVER,
    ErrorCause.FILE: FailureCause.FILE,
    ErrorCause.CONFLICT: FailureCause.CONFLICT,
    ErrorCause.VERIFICATION: FailureCause.OTHER,
    ErrorCause.OTHER: FailureCause.OTHER,
}


def cause_of(error: TransferError | None) -> FailureCause:
    """The Failed inbox's group of an error: by its cause code, never by its title."""
    if error is None:
        return FailureCause.OTHER
    return _GROUPS[error.cause]
