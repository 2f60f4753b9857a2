"""What `ferry status` reads, opened with as little as it needs.

The journal's transfers and attempts (read only, through sqlite3: beside a
running Ferry too) and the catalog outbox's backlog. It checks what
:meth:`Ferry.open <desktop_app.core.runtime.ferry.Ferry.open>` with ``read_only``
checks, in the same order and with the same errors (the profile, the data
folder, the S3 credentials, the catalog password, the catalog, the journal),
but builds no S3 client, no engine and no scheduler, and loads neither
boto3, SQLAlchemy nor Alembic when the catalog is an SQLite file at the
newest revision (:mod:`desktop_app.core.catalog.peek`); any other catalog is
opened as :func:`~desktop_app.core.catalog.service.open_catalog` opens it.

Two things :meth:`Ferry.open` does are left out, as nothing here uses them:
a sandbox profile's server is not started (the status is read from local
files; no server is asked anything), and the catalog password is not looked
up in the keyring for an SQLite catalog file (a file has no password; the
keyring's lookup alone loads its plugins, and may ask to unlock it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from desktop_app.core.catalog.peek import OutboxBacklog, sqlite_outbox_backlog
from desktop_app.core.journal.records import (
    AttemptRecord,
    JournalReader,
    TransferRecord,
    UnrecordedSending,
)
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.logs import REDACTOR
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import (
    CredentialSource,
    catalog_password,
    require_s3_credentials,
)

if TYPE_CHECKING:
    from desktop_app.core.catalog.service import CatalogService

log = logging.getLogger(
    "desktop_app.core.runtime.ferry"
)  # the lines Ferry.open writes, as it writes them


class StatusReader:
    """One profile's transfers and outbox backlog, read only; close it when done."""

    def __init__(
        self,
        profile: Profile,
        credential_source: CredentialSource,
        journal: JournalReader,
        backlog: OutboxBacklog | None,
        catalog: CatalogService | None,
    ) -> None:
        self.profile = profile
        self.credential_source = credential_source
        self.journal = journal
        self._backlog = backlog
        self._catalog = catalog

    @classmethod
    def open(cls, env: Environment, profile_name: str | None = None) -> StatusReader:
        profile = env.profile(profile_name)
        env.paths.ensure()
        credentials = require_s3_credentials(profile, env.secrets, env.environ)
        REDACTOR.add_secret(credentials.secret_access_key)
        log.info("Profile %s: S3 credentials from %s", profile.name, credentials.source.value)
        backlog = sqlite_outbox_backlog(profile.catalog_url)
        catalog = None
        if backlog is None:
            password = catalog_password(profile, env.secrets, env.environ)
            REDACTOR.add_secret(password)
            catalog = _open_catalog(env, profile, password)
        try:
            journal = JournalReader(env.paths.journal_file)
        except BaseException:
            if catalog is not None:
                catalog.close()
            raise
        return cls(profile, credentials.source, journal, backlog, catalog)

    def transfers(self) -> list[TransferRecord]:
        return self.journal.all()

    def attempts(self, transfer_ids: Iterable[int]) -> dict[int, list[AttemptRecord]]:
        return self.journal.attempts_of(transfer_ids)

    def unrecorded_sending(self, transfer_ids: Iterable[int]) -> dict[int, list[UnrecordedSending]]:
        return self.journal.unrecorded_sending(transfer_ids)

    def outbox_backlog(self) -> OutboxBacklog:
        """Catalog events not yet published by a relay (and those set aside)."""
        if self._catalog is not None:
            return self._catalog.outbox_backlog()
        assert self._backlog is not None
        return self._backlog

    def close(self) -> None:
        self.journal.close()
        if self._catalog is not None:
            self._catalog.close()

    def __enter__(self) -> StatusReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _open_catalog(env: Environment, profile: Profile, password: str | None) -> CatalogService:
    """The catalog opened as a read-only Ferry opens it (PostgreSQL, a new or older file)."""
    from desktop_app.core.catalog.database import CatalogMode
    from desktop_app.core.catalog.service import open_catalog

    return open_catalog(
        profile.catalog_url,
        owner=profile.owner,
        password=password,
        mode=CatalogMode.READ_ONLY,
        journal_file=env.paths.journal_file,
    )
