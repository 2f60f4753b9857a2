"""Undoing a transfer that will not finish, last step first.

Permanent failures, a changed source and cancel run compensation: delete an
object this transfer wrote but did not register, abort the multipart upload,
release the catalog intent row. Promises: only what this transfer wrote is
deleted (its size and SHA-256, while it keeps the ETag just seen; the version
it wrote, in a bucket that keeps versions), and only while the catalog row is
still its own pending reservation; what could not be undone is logged for the
consistency check, never raised.
"""

from __future__ import annotations

import logging

from desktop_app.core.catalog.records import NOT_LOOKED, ObjectAtKey
from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.journal.facts import TransferFacts
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import CatalogError, StorageError
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import KeyConflictPolicy, TransferRecord
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.versions import delete_version
from desktop_app.core.transfers.verification import written_by

log = logging.getLogger(__name__)


def object_at_key(storage: S3Storage, record: TransferRecord) -> ObjectAtKey:
    """What the bucket holds at an overwrite's key now: the key goes back only to bytes there.

    Only an overwrite has a row to give back, so only it looks. A look
    that fails (the server did not answer) counts as none made: the
    replaced row is given back, since deleting its record while its bytes
    may be there would let a check delete them.
    """
    if record.on_conflict is not KeyConflictPolicy.OVERWRITE:
        return NOT_LOOKED
    try:
        found = storage.head_object(record.key)
    except StorageError:
        return NOT_LOOKED
    return ObjectAtKey(looked=True, etag=found.etag if found is not None else None)


class Compensation:
    """Undoes what one profile's transfers did; thread-safe."""

    def __init__(self, journal: Journal, storage: S3Storage, catalog: CatalogService) -> None:
        self.journal = journal
        self.storage = storage
        self.catalog = catalog

    def compensate(self, record: TransferRecord) -> None:
        """Undo a transfer that will not finish, last step first; log what could not be."""
        leftovers = [
            *self._delete_unregistered(record),
            *self._abort_upload(record),
            *self._release(record),
        ]
        if leftovers:
            log.error(
                "Could not clean up after %s: %s. The consistency check will show it.",
                record.source_path,
                "; ".join(leftovers),
            )

    def _delete_unregistered(self, record: TransferRecord) -> list[str]:
        wrote_object = record.state in (TransferState.VERIFYING, TransferState.REGISTERING)
        if not wrote_object or record.catalog_file_id is None:
            return []
        # Only while the row is still our own pending reservation: then no
        # live row (ours or anyone's) can point at this key's object.
        try:
            if self.catalog.reservation_stands(record.catalog_file_id, record.reservation_token):
                self._delete_own_object(record)
            else:
                log.warning(
                    "%s: the object was left in place, its catalog row is live or another upload's",
                    record.key,
                )
        except (StorageError, CatalogError) as exc:
            return [f"object {record.key!r} ({exc.message})"]
        return []

    def _abort_upload(self, record: TransferRecord) -> list[str]:
        if record.upload_id is None:
            return []
        try:
            self.storage.abort_multipart_upload(record.key, record.upload_id)
            self.journal.forget_upload(record.id)
        except StorageError as exc:
            return [f"multipart upload of {record.key!r} ({exc.message})"]
        return []

    def _release(self, record: TransferRecord) -> list[str]:
        if record.catalog_file_id is None:
            return []
        try:
            self.catalog.release(
                record.catalog_file_id,
                reason="upload failed or cancelled",
                token=record.reservation_token,
                at_key=object_at_key(self.storage, record),
            )
            # What the reservation allowed to be replaced goes with it.
            self.journal.update(record.id, TransferFacts(catalog_file_id=None, replaces_etag=None))
        except CatalogError as exc:
            return [f"catalog intent row {record.catalog_file_id} ({exc.message})"]
        return []

    def _delete_own_object(self, record: TransferRecord) -> None:
        """Delete what this transfer wrote at its key and nothing else: the object
        there only if it has this transfer's size and SHA-256, and only while it
        keeps the ETag just seen (another program may write the key meanwhile).
        In a bucket that keeps versions, the version this transfer wrote is
        removed itself: a plain delete would leave its bytes behind a marker."""
        found = self.storage.head_object(record.key)
        if found is None:
            return
        if not written_by(found, record):
            log.warning(
                "%s: the object at the key is not the one Ferry wrote (another program's?); "
                "left in place",
                record.key,
            )
            return
        if record.version_id is not None and found.version_id == record.version_id:
            delete_version(self.storage, record.key, record.version_id, etag=found.etag)
            return
        self.storage.delete_object(
            record.key, if_match=found.etag, size=found.size, sha256=found.sha256
        )
