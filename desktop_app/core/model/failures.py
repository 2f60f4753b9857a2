"""Why transfers failed, grouped the way a person acts on them.

A failed transfer keeps the kind, title, message and cause code of its error
(the journal's columns). For the Failed inbox the cause codes fall into a
few groups, each with what a person does about it: fix the credentials, wait
for the network, look at the server, look at the file, resolve a conflict.
The title is wording only and groups nothing. Retrying helps unless the error
is final (a socket, a loop, a name that cannot be a key).

A conflict a person resolves (:func:`conflict_choices`) offers what a person
would expect: upload under the next free name, replace the other program's
object (only where another program's object is at the key, never a row of
Ferry's catalog), or skip the file. Nothing is lost by any of them unless the
person chose Replace, and then only the object they saw.
"""

from __future__ import annotations

import enum

from desktop_app.core.model.errors import ErrorCause
from desktop_app.core.model.states import ErrorKind
from desktop_app.core.model.transfer_records import TransferError


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
        "Another upload, person or program holds the same name: upload the file under "
        "the next free name, replace the other program's object, or skip the file; or "
        "Retry once that is settled."
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
    ErrorCause.FOREIGN_OBJECT: FailureCause.CONFLICT,
    ErrorCause.VERIFICATION: FailureCause.OTHER,
    ErrorCause.OTHER: FailureCause.OTHER,
}


def cause_of(error: TransferError | None) -> FailureCause:
    """The Failed inbox's group of an error: by its cause code, never by its title."""
    if error is None:
        return FailureCause.OTHER
    return _GROUPS[error.cause]


class ConflictChoice(enum.Enum):
    """What a person chooses for a transfer that failed as a conflict."""

    RENAME = "rename"  # upload as "name (2).ext", the next free name
    REPLACE = "replace"  # write over the other program's object seen now (If-Match on it)
    SKIP = "skip"  # set the transfer aside: nothing uploaded, the object at the key untouched


def conflict_choices(error: TransferError | None) -> tuple[ConflictChoice, ...]:
    """The choices a failed transfer offers: none unless it failed for good as a conflict.

    Replace only where another program's object is at the key: a key Ferry's
    catalog holds for another file is never taken over from here.
    """
    if error is None or error.kind is not ErrorKind.PERMANENT:
        return ()
    if error.cause is ErrorCause.FOREIGN_OBJECT:
        return (ConflictChoice.RENAME, ConflictChoice.REPLACE, ConflictChoice.SKIP)
    if error.cause is ErrorCause.CONFLICT:
        return (ConflictChoice.RENAME, ConflictChoice.SKIP)
    return ()


def suffixed_name(key: str, number: int = 2) -> str:
    """'dir/name.ext' -> 'dir/name (2).ext': the naming of the watched folders'
    'suffix' policy, and of a conflict's Rename."""
    head, slash, name = key.rpartition("/")
    stem, dot, extension = name.partition(".") if not name.startswith(".") else (name, "", "")
    return f"{head}{slash}{stem} ({number}){dot}{extension}"


def choice_label(choice: ConflictChoice, key: str) -> str:
    """A choice in a person's words, as the Failed inbox and `ferry status` say it."""
    if choice is ConflictChoice.RENAME:
        return f"Upload as “{suffixed_name(key).rpartition('/')[2]}”"
    if choice is ConflictChoice.REPLACE:
        return "Replace the other program's object"
    return "Skip"
