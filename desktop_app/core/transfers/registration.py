"""The catalog's side of sending: the reservation confirmed before a write, the row
activated after the proof.

Promises: an object is written only while the catalog still holds its key
for this transfer (a check removes only intents not kept alive for
ALIVE_SECONDS on the catalog's clock); a catalog row becomes active only for
an object proven to be the one sent, and the transfer is done only then. A
reservation found gone is a :class:`ReservationLostError` that says what was
and was not written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from desktop_app.core.catalog.records import ALIVE_SECONDS
from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.journal.facts import NewAttempt, TransferFacts
from desktop_app.core.model.errors import NotInCatalogError, ReservationLostError
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.storage.wire import CRC64NVME
from desktop_app.core.transfers.control import TransferControl, Transition

# A reservation the catalog confirmed alive this recently cannot have been
# removed by a check (it waits ALIVE_SECONDS on the catalog's own clock).
RESERVATION_TRUSTED_SECONDS = ALIVE_SECONDS / 2


def reservation_lost(record: TransferRecord, *, written: bool = False) -> ReservationLostError:
    outcome = (
        "the object it wrote is not registered, and is left for `ferry check` (never deleted "
        "while another row may name it)"
        if written
        else "Ferry stopped before writing the object, so nothing at that key was replaced"
    )
    return ReservationLostError(
        f"The catalog no longer holds {record.key!r} for this upload of {record.source_path}: "
        "its reservation was removed (by a consistency check's repair, or an admin) while the "
        f"bytes were on their way; {outcome}. Retry to upload the file again."
    )


class Registration:
    """Confirms reservations and activates rows for one profile's transfers; thread-safe."""

    def __init__(
        self, catalog: CatalogService, move: Transition, now: Callable[[], datetime]
    ) -> None:
        self.catalog = catalog
        self._move = move
        self._now = now

    def confirm_reservation(
        self, record: TransferRecord, control: TransferControl, *, always: bool = False
    ) -> None:
        """Before the object is written: the catalog still holds the key for this transfer.

        A check removes only intents not kept alive for ALIVE_SECONDS on the
        catalog's clock; one reserved or kept alive within half that needs no
        look (a single small PUT). ``always``: a multipart Complete, after
        what may have been a long send, looks every time.
        """
        if record.catalog_file_id is None:
            return
        if not always and control.reservation_confirmed_within(RESERVATION_TRUSTED_SECONDS):
            return
        # A keep-alive's update, not a read: it waits for a repair acting on the
        # row, and a check counts it as alive from here on.
        reservation = (record.catalog_file_id, record.reservation_token or "")
        if self.catalog.touch([reservation]):
            raise reservation_lost(record)
        control.reservation_confirmed()

    def register(
        self,
        record: TransferRecord,
        etag: str,
        control: TransferControl,
        started: datetime,
        *,
        recorded: bool,
        version_id: str | None = None,
        checksum: str | None = None,
    ) -> None:
        """Activate the catalog row of a proven object (and the version its write
        made, where the bucket keeps versions, and the CRC64NVME the server verified
        and the verification read back, where it did), then done.

        ``recorded`` False: the journal does not know yet that the object was
        written (a single PUT goes from uploading to done in one commit). A
        crash before that commit puts the same bytes again and activates
        again (activation is idempotent for its own token and ETag); a failed
        activation first records the object, so that compensation deletes it
        and a retry resumes at verifying instead of sending again.
        """
        assert record.catalog_file_id is not None
        try:
            self.catalog.activate(
                record.catalog_file_id,
                etag=etag,
                token=record.reservation_token,
                copied_from=record.copy_source_key,
                version_id=version_id,
                checksum=checksum,
                checksum_type=CRC64NVME if checksum is not None else None,
                key=(record.bucket, record.key),
            )
        except BaseException as exc:
            if not recorded:
                facts = TransferFacts(etag=etag, version_id=version_id)
                self._move(record.id, TransferState.REGISTERING, facts=facts)
            if isinstance(exc, NotInCatalogError):
                raise reservation_lost(record, written=True) from exc
            raise
        succeeded = NewAttempt(started, self._now(), None, control.bytes_sent)
        facts = TransferFacts(etag=etag, version_id=version_id)
        self._move(record.id, TransferState.DONE, attempt=succeeded, facts=facts)
