"""Ferry's own exceptions.

Every failure a person may see is a :class:`FerryError` with a short title and
a plain message saying what happened, to which file and what to do. Library
errors (botocore, SQLAlchemy) are translated into these at the edge of the
module that owns the client; nothing above that edge sees a library error.
Messages never contain a secret.
"""

from __future__ import annotations

import enum

from desktop_app.core.states import ErrorKind, TransferState


class FerryError(Exception):
    """Base of every error Ferry shows to a person."""

    title = "Ferry error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message

    @property
    def transient(self) -> bool:
        """Whether trying again later, with nothing changed, may succeed."""
        return False

    @property
    def error_kind(self) -> ErrorKind:
        """What a failed transfer becomes: who acts next."""
        return ErrorKind.TRANSIENT if self.transient else ErrorKind.PERMANENT

    @property
    def halts(self) -> bool:
        """Whether every transfer must stop (nothing can be recorded), not just this one."""
        return False


class ConfigError(FerryError):
    title = "Configuration problem"


class ProfileNotFoundError(ConfigError):
    title = "Unknown profile"


class SignInRequiredError(ConfigError):
    """The AWS sign-in (SSO) behind a profile's credentials has expired: a person must sign in."""

    title = "Sign-in needed"


class UnsafeFolderError(ConfigError):
    """A folder Ferry keeps its files in could be changed by another user of the machine."""

    title = "Unsafe folder"


class ControlChannelError(FerryError):
    """The local endpoint of a running Ferry is not this user's own, or answered nonsense."""

    title = "Cannot talk to the running Ferry"


class SecretStoreError(FerryError):
    title = "Keyring problem"


class SandboxError(FerryError):
    title = "Local sandbox problem"


class JournalLockedError(FerryError):
    title = "Ferry is already running"


class JournalError(FerryError):
    title = "Journal problem"

    @property
    def halts(self) -> bool:
        return True


class CatalogError(FerryError):
    """The catalog could not be read or written."""

    title = "Catalog problem"

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        title: str | None = None,
        halts: bool = False,
    ) -> None:
        super().__init__(message, title=title)
        self._transient = transient
        self._halts = halts

    @property
    def transient(self) -> bool:
        return self._transient

    @property
    def halts(self) -> bool:
        return self._halts


class CatalogAccessError(CatalogError):
    title = "Not allowed by the catalog"


class RelayLockTaken(CatalogError):
    """Another relay publishes this SQLite catalog already."""

    title = "Relay already running"


class EventStreamError(FerryError):
    """NATS JetStream could not be reached or refused the relay's stream."""

    title = "Event stream problem"

    def __init__(self, message: str, *, transient: bool = True, title: str | None = None) -> None:
        super().__init__(message, title=title)
        self._transient = transient

    @property
    def transient(self) -> bool:
        return self._transient


class InvalidKeyError(FerryError):
    title = "Name cannot be a key"


class KeyConflictError(CatalogError):
    title = "Key already taken"


class NotInCatalogError(CatalogError):
    title = "Not in the catalog"


class ReservationLostError(CatalogError):
    """An upload's catalog reservation is gone: it must not write or register its object."""

    title = "Reservation removed"


class IllegalMoveError(JournalError):
    """A state change outside the table of allowed moves: a bug, refused."""

    title = "Refused state change"

    def __init__(self, transfer_id: int, current: TransferState, target: TransferState) -> None:
        super().__init__(
            f"Transfer {transfer_id} cannot go from {current.value} to {target.value}; "
            "the change was refused and the transfer kept as it was. Please report this."
        )
        self.current = current
        self.target = target


class SourceError(FerryError):
    """The local file cannot be uploaded as it is (gone, unreadable, changed...)."""

    title = "Problem with the file"

    @property
    def error_kind(self) -> ErrorKind:
        return ErrorKind.INPUT


class SourceChangedError(SourceError):
    title = "File changed while uploading"

    @property
    def error_kind(self) -> ErrorKind:
        return ErrorKind.SOURCE_CHANGED


class StorageErrorKind(enum.Enum):
    """How the engine should react to a storage failure."""

    TRANSIENT = "transient"  # retry with backoff
    PERMANENT = "permanent"  # fail now, a person must act
    NO_SUCH_UPLOAD = "no_such_upload"  # multipart upload expired/aborted: restart it
    NOT_FOUND = "not_found"  # object or bucket absent
    BAD_DIGEST = "bad_digest"  # the server saw other bytes than we sent: resend
    NOT_SUPPORTED = "not_supported"  # the server lacks this call (501, 405): do without it
    PRECONDITION_FAILED = "precondition_failed"  # the object is not the one the request named


class StorageError(FerryError):
    title = "Storage problem"

    def __init__(
        self,
        message: str,
        *,
        kind: StorageErrorKind,
        code: str = "",
        title: str | None = None,
    ) -> None:
        super().__init__(message, title=title)
        self.kind = kind
        self.code = code

    @property
    def transient(self) -> bool:
        return self.kind in (StorageErrorKind.TRANSIENT, StorageErrorKind.BAD_DIGEST)
