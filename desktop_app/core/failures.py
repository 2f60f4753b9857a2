"""Why transfers failed, grouped the way a person acts on them.

A failed transfer keeps the kind, title and message of its error (the
journal's columns). For the Failed inbox they fall into a few causes, each
with what a person does about it: fix the credentials, wait for the network,
look at the server, look at the file, resolve a conflict. Retrying helps
unless the error is final (a socket, a loop, a name that cannot be a key).
"""

from __future__ import annotations

import enum

from desktop_app.core.journal import ErrorKind, TransferError


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

# Titles are those of Ferry's own exceptions (errors.py, storage, catalog).
_BY_TITLE = {
    "Credentials refused": FailureCause.CREDENTIALS,
    "No credentials": FailureCause.CREDENTIALS,
    "Sign-in needed": FailureCause.CREDENTIALS,
    "Proxy sign-in needed": FailureCause.CREDENTIALS,
    "Access denied": FailureCause.CREDENTIALS,
    "Not allowed": FailureCause.CREDENTIALS,
    "Not allowed by the catalog": FailureCause.CREDENTIALS,
    "Keyring problem": FailureCause.CREDENTIALS,
    "Storage unreachable": FailureCause.NETWORK,
    "Catalog unreachable": FailureCause.NETWORK,
    "Storage problem": FailureCause.SERVER,
    "Not supported by the server": FailureCause.SERVER,
    "No such bucket": FailureCause.SERVER,
    "Catalog problem": FailureCause.SERVER,
    "Key already taken": FailureCause.CONFLICT,
    "Reserved by another upload": FailureCause.CONFLICT,
    "Same content in flight": FailureCause.CONFLICT,
    "Changed meanwhile": FailureCause.CONFLICT,
    "Another profile's transfer": FailureCause.CONFLICT,
}
_FILE_KINDS = frozenset({ErrorKind.INPUT, ErrorKind.SOURCE_CHANGED, ErrorKind.FINAL})


def cause_of(error: TransferError | None) -> FailureCause:
    if error is None:
        return FailureCause.OTHER
    if error.kind in _FILE_KINDS:
        return FailureCause.FILE
    return _BY_TITLE.get(error.title, FailureCause.OTHER)
