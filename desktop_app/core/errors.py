"""Ferry's own exceptions.

Every failure a person may see is a :class:`FerryError` with a short title and
a plain message saying what happened, to which file and what to do. Library
errors (botocore, SQLAlchemy) are translated into these at the edge of the
module that owns the client; nothing above that edge sees a library error.
Messages never contain a secret.
"""

from __future__ import annotations

import enum


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


class ConfigError(FerryError):
    title = "Configuration problem"


class ProfileNotFoundError(ConfigError):
    title = "Unknown profile"


class SecretStoreError(FerryError):
    title = "Keyring problem"


class SandboxError(FerryError):
    title = "Local sandbox problem"


class JournalLockedError(FerryError):
    title = "Ferry is already running"


class JournalError(FerryError):
    title = "Journal problem"


class CatalogError(FerryError):
    """The catalog could not be read or written."""

    title = "Catalog problem"

    def __init__(self, message: str, *, transient: bool = False, title: str | None = None) -> None:
        super().__init__(message, title=title)
        self.transient = transient


class CatalogAccessError(CatalogError):
    title = "Not allowed by the catalog"


class InvalidKeyError(FerryError):
    title = "Name cannot be a key"


class KeyConflictError(CatalogError):
    title = "Key already taken"


class NotInCatalogError(CatalogError):
    title = "Not in the catalog"


class SourceError(FerryError):
    """The local file cannot be uploaded as it is (gone, unreadable, changed...)."""

    title = "Problem with the file"


class SourceChangedError(SourceError):
    title = "File changed while uploading"


class StorageErrorKind(enum.Enum):
    """How the engine should react to a storage failure."""

    TRANSIENT = "transient"  # retry with backoff
    PERMANENT = "permanent"  # fail now, a person must act
    NO_SUCH_UPLOAD = "no_such_upload"  # multipart upload expired/aborted: restart it
    NOT_FOUND = "not_found"  # object or bucket absent
    BAD_DIGEST = "bad_digest"  # the server saw other bytes than we sent: resend


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
