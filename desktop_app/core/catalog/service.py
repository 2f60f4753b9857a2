"""The catalog: the server-side record of every file Ferry put into a bucket.

An SQLite file for one person, PostgreSQL for a team. :func:`open_catalog`
connects, checks and upgrades it; :class:`CatalogService` is the one object
the rest of Ferry holds, its operations each from the module that owns their
concept: reservations and activations (:mod:`reservations`), deletes
(:mod:`deletes`), read-only look-ups (:mod:`queries`), a repair's key
transaction (:mod:`repair`), the relay's outbox (:mod:`outbox`). Every
operation is one transaction (:mod:`transactions`), and its audit entry and
outbox event are written in that same transaction (:mod:`steps`), so a
change and its announcement exist together or not at all. SQLAlchemy errors
are translated into :class:`CatalogError` and its kin; transient ones (a
lost connection, a locked SQLite file) are retried a few times before they
are reported.

Owners: on PostgreSQL the owner is the catalog login (``current_user``) and
row-level security keeps users to their own rows; on SQLite it is the
profile's user name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from desktop_app.core.catalog.database import (
    CatalogMode,
    bring_up_to_date,
    create_catalog_engine,
    describe_url,
    refuse_journal_file,
    translate_db_error,
)
from desktop_app.core.catalog.deletes import Deletes
from desktop_app.core.catalog.outbox import EventOutbox
from desktop_app.core.catalog.peek import OutboxBacklog
from desktop_app.core.catalog.queries import CatalogQueries
from desktop_app.core.catalog.records import utcnow
from desktop_app.core.catalog.repair import KeyRepair, repairing
from desktop_app.core.catalog.reservations import Reservations
from desktop_app.core.catalog.steps import ChangeSteps
from desktop_app.core.catalog.transactions import CatalogTransactions
from desktop_app.core.model.errors import CatalogError


def open_catalog(
    url: str,
    *,
    owner: str,
    password: str | None = None,
    mode: CatalogMode = CatalogMode.MAY_MIGRATE,
    journal_file: Path | None = None,
) -> CatalogService:
    """Connect, check the database is Ferry's catalog, bring it up to date, return the service.

    Another application's database and Ferry's journal (``journal_file``) are
    refused before anything is written; ``mode`` says whether an older catalog
    may be upgraded or is refused (see :func:`catalog_db.bring_up_to_date`). A
    login that may not change the schema can still use a catalog that is
    already current; an outdated one is refused with a clear message.
    """
    if journal_file is not None:
        refuse_journal_file(url, journal_file)
    engine = create_catalog_engine(url, password)
    where = describe_url(url)
    try:
        with engine.connect() as connection:
            bring_up_to_date(connection, where, mode)
            if connection.dialect.name == "postgresql":
                owner = str(connection.execute(text("SELECT current_user")).scalar_one())
    except CatalogError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        raise translate_db_error(exc, f"be opened at {where}") from exc
    return CatalogService(engine, owner=owner)


class CatalogService:
    """Typed operations over the catalog; each is one transaction.

    The operations are the bound methods of the parts that own them, so a
    caller holds one object and each concept stays in its module.
    """

    def __init__(self, engine: Engine, *, owner: str, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.owner = owner
        self.clock = clock
        self._transactions = transactions = CatalogTransactions(engine)
        self._steps = steps = ChangeSteps(engine.dialect.name, owner=owner, clock=clock)
        # The upload path (reservations.py).
        reservations = Reservations(transactions, steps)
        self.reserve = reservations.reserve
        self.activate = reservations.activate
        self.reservation_stands = reservations.reservation_stands
        self.release = reservations.release
        self.touch = reservations.touch
        # A person's delete, row first (deletes.py).
        deletes = Deletes(transactions, steps)
        self.mark_deleted = deletes.mark_deleted
        self.record_error = deletes.record_error
        self.delete = deletes.delete
        # Reading (queries.py).
        queries = CatalogQueries(transactions, steps)
        self.get = queries.get
        self.live = queries.live
        self.key_is_live = queries.key_is_live
        self.iter_others_keys = queries.iter_others_keys
        self.is_admin = queries.is_admin
        self.search = queries.search
        self.rows_of_versions = queries.rows_of_versions
        self.iter_in_key_order = queries.iter_in_key_order
        self.audit_entries = queries.audit_entries
        self.unpublished_events = queries.unpublished_events
        self.database_now = queries.database_now
        self.ping = queries.ping

    def close(self) -> None:
        self._transactions.close()

    def threads(self) -> list[threading.Thread]:
        """The threads this catalog runs: its writer's, which each upload's rows wait on."""
        return self._transactions.threads()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def repairing(self, bucket: str, key: str) -> AbstractContextManager[KeyRepair]:
        """A repair's own transaction on one key (see :func:`repair.repairing`)."""
        return repairing(self._transactions, self._steps, bucket, key)

    def outbox(self) -> EventOutbox:
        """The relay's view of the outbox (claim, mark, wait), on this catalog's engine."""
        return EventOutbox(self.engine)

    def outbox_backlog(self) -> OutboxBacklog:
        """How many events wait for a relay; any login may ask."""
        return EventOutbox(self.engine).backlog()
