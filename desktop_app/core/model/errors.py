"""Ferry's own exceptions.

Every failure a person may see is a :class:`FerryError` with a short title and
a plain message saying what happened, to which file and what to do. Library
errors (botocore, SQLAlchemy) are translated into these at the edge of the
module that owns the client; nothing above that edge sees a library error.
Messages never contain a secret.
"""

from __future__ import annotations

import enum

from desktop_app.core.model.states import ErrorKind, TransferState


class ErrorCause(enum.Enum):
    """Why an error happened, as a stable code set where it is raised.

    The journal keeps it beside a failed transfer's error. The Failed inbox
    groups failures by it, and the engine recognises a repeated verification
    failure by it; a title is wording only and may be changed freely. The
    values are stored: add members, never rename one.
    """

    CREDENTIALS = "credentials"  # credentials refused or missing, a permission lacking
    NETWORK = "network"  # the storage server or catalog could not be reached
    SERVER = "server"  # the storage server or catalog refused or failed
    FILE = "file"  # the local file: gone, unreadable, changed, a name that cannot be a key
    CONFLICT = "conflict"  # another upload or person holds the key or the content
    # Another program's object is at the key (a write refused, or seen by a HEAD):
    # a person chooses another name, replacing it, or skipping the file.
    FOREIGN_OBJECT = "foreign_object"
    VERIFICATION = "verification"  # the bucket holds other bytes than Ferry sent
    OTHER = "other"

    @classmethod
    def parse(cls, value: str | None) -> ErrorCause | None:
        """The stored code, or None (a row written before causes were) for :meth:`of_kind`."""
        if value is None:
            return None
        try:
            return cls(value)
        except ValueError:
            return cls.OTHER  # a code of a newer Ferry

    @classmethod
    def of_kind(cls, kind: ErrorKind) -> ErrorCause:
        """The cause of an error recorded without one: the file's kinds are the file's."""
        if kind in (ErrorKind.INPUT, ErrorKind.SOURCE_CHANGED, ErrorKind.FINAL):
            return cls.FILE
        return cls.OTHER


class FerryError(Exception):
    """Base of every error Ferry shows to a person.

    ``title`` is what a person reads; ``cause`` is what code acts on (each
    class has its own, and a raise site may name another).
    """

    title = "Ferry error"
    cause = ErrorCause.OTHER

    def __init__(
        self, message: str, *, title: str | None = None, cause: ErrorCause | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title
        if cause is not None:
            self.cause = cause

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
    cause = ErrorCause.CREDENTIALS


class UnsafeFolderError(ConfigError):
    """A folder Ferry keeps its files in could be changed by another user of the machine."""

    title = "Unsafe folder"


class ControlChannelError(FerryError):
    """The local endpoint of a running Ferry is not this user's own, or answered nonsense."""

    title = "Cannot talk to the running Ferry"


class SecretStoreError(FerryError):
    title = "Keyring problem"
    cause = ErrorCause.CREDENTIALS


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
    cause = ErrorCause.SERVER

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        title: str | None = None,
        halts: bool = False,
        cause: ErrorCause | None = None,
    ) -> None:
        super().__init__(message, title=title, cause=cause)
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
    cause = ErrorCause.CREDENTIALS


class RelayLockTaken(CatalogError):
    """Another relay publishes this SQLite catalog already."""

    title = "Relay already running"
    cause = ErrorCause.OTHER


class EventStreamError(FerryError):
    """NATS JetStream could not be reached or refused the relay's stream."""

    title = "Event stream problem"

    def __init__(
        self,
        message: str,
        *,
        transient: bool = True,
        title: str | None = None,
        cause: ErrorCause | None = None,
    ) -> None:
        super().__init__(message, title=title, cause=cause)
        self._transient = transient

    @property
    def transient(self) -> bool:
        return self._transient


class InvalidKeyError(FerryError):
    title = "Name cannot be a key"
    cause = ErrorCause.FILE


class KeyConflictError(CatalogError):
    title = "Key already taken"
    cause = ErrorCause.CONFLICT


class NotInCatalogError(CatalogError):
    title = "Not in the catalog"
    cause = ErrorCause.OTHER


class ReservationLostError(CatalogError):
    """An upload's catalog reservation is gone: it must not write or register its object."""

    title = "Reservation removed"
    cause = ErrorCause.OTHER


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

    @property
    def halts(self) -> bool:
        # One transfer's refused move is not a journal that cannot record:
        # that attempt ends, the others go on.
        return False


class SourceError(FerryError):
    """The local file cannot be uploaded as it is (gone, unreadable, changed...)."""

    title = "Problem with the file"
    cause = ErrorCause.FILE

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

    @property
    def cause(self) -> ErrorCause:
        """A storage error's cause unless its raise site names another."""
        return _STORAGE_CAUSES[self]


_STORAGE_CAUSES = {
    StorageErrorKind.TRANSIENT: ErrorCause.SERVER,
    StorageErrorKind.PERMANENT: ErrorCause.SERVER,
    StorageErrorKind.NO_SUCH_UPLOAD: ErrorCause.SERVER,
    StorageErrorKind.NOT_FOUND: ErrorCause.SERVER,
    StorageErrorKind.BAD_DIGEST: ErrorCause.SERVER,
    StorageErrorKind.NOT_SUPPORTED: ErrorCause.SERVER,
    StorageErrorKind.PRECONDITION_FAILED: ErrorCause.CONFLICT,
}


class StorageError(FerryError):
    title = "Storage problem"

    def __init__(
        self,
        message: str,
        *,
        kind: StorageErrorKind,
        code: str = "",
        title: str | None = None,
        cause: ErrorCause | None = None,
    ) -> None:
        super().__init__(message, title=title, cause=cause or kind.cause)
        self.kind = kind
        self.code = code

    @property
    def transient(self) -> bool:
        return self.kind in (StorageErrorKind.TRANSIENT, StorageErrorKind.BAD_DIGEST)
