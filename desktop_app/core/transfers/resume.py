"""What a new attempt keeps of an earlier one's multipart upload.

On resume the journal's parts are reconciled with ListParts: a part the
server has and the journal lacks is accepted only if its ETag is the
pre-pass MD5 of that range (and, for an upload created for CRC64NVMEs, only
with the CRC64NVME planned for it, where the server lists one). Uploads lost
in a crash before their id was committed are aborted; an upload that cannot
be trusted is abandoned (aborted and forgotten), and the next attempt sends
the bytes afresh.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from desktop_app.core.journal.parts import PartDigests
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import StorageError, StorageErrorKind
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.storage.listing import iter_multipart_uploads, list_parts
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.part_plan import part_crcs

log = logging.getLogger(__name__)


def abandon_upload(journal: Journal, storage: S3Storage, record: TransferRecord) -> None:
    """Abort the upload and forget it and its ETag: the next attempt sends the
    bytes afresh. The state is left to the caller (the engine fails the
    attempt; the next one resumes at sending, see ``resume_point``).
    """
    if record.upload_id is not None:
        try:
            storage.abort_multipart_upload(record.key, record.upload_id)
        except StorageError as exc:
            # Left for the consistency check, which lists unfinished uploads.
            log.warning("Upload %s of %s could not be aborted: %s",
                        record.upload_id, record.key, exc.message)  # fmt: skip
    journal.forget_upload(record.id)


def abort_lost_uploads(storage: S3Storage, record: TransferRecord, since: datetime) -> None:
    """Abort this key's uploads created since the intent (ours: we hold its reservation).

    A few minutes of slack allow for the server's clock being behind ours.
    """
    earliest = since - timedelta(minutes=5)
    try:
        for upload in iter_multipart_uploads(storage, record.key):
            if upload.key == record.key and upload.initiated >= earliest:
                log.info("Aborting upload %s of %s, lost in a crash", upload.upload_id,
                         record.key)  # fmt: skip
                storage.abort_multipart_upload(record.key, upload.upload_id)
    except StorageError as exc:
        log.warning(
            "Uploads of %s lost in a crash could not be looked for (%s); the consistency "
            "check lists them.",
            record.key,
            exc.message,
        )


def reconcile_parts(
    journal: Journal, storage: S3Storage, record: TransferRecord, digests: PartDigests
) -> bool:
    """Make the journal's parts agree with what the server really holds.

    A part the server holds and the journal lacks (a crash after the
    server answered) counts only with the ETag of its pre-pass MD5; any
    listed part of an upload created for CRC64NVMEs counts only with the
    CRC64NVME planned for it, where the server lists one. False
    when the server cannot list parts (ListParts refused): then what it
    holds is unknown, the upload is given up (aborted where the server
    allows) and the caller starts a new one.
    """
    assert record.upload_id is not None
    try:
        server = {p.number: p for p in list_parts(storage, record.key, record.upload_id)}
    except StorageError as exc:
        if exc.kind is not StorageErrorKind.NOT_SUPPORTED:
            raise
        log.warning(
            "%s cannot list the parts of an upload (%s); %s is sent afresh",
            storage.endpoint_label,
            exc.code,
            record.key,
        )
        abandon_upload(journal, storage, record)
        return False
    crcs = part_crcs(record, digests)
    for part in journal.parts(record.id):
        held = server.get(part.number)
        md5_hex = digests.md5s[part.number - 1].hex()
        other_crc = (
            held is not None
            and crcs is not None
            and held.crc64nvme is not None
            and held.crc64nvme != crcs[part.number - 1]
        )
        if part.done and (held is None or held.etag != part.etag or other_crc):
            journal.unconfirm_part(record.id, part.number)
        elif not part.done and held is not None and held.size == part.size:
            if held.etag != md5_hex or other_crc:
                continue  # not what the pre-pass read there: sent again
            journal.confirm_part(record.id, part.number, md5_hex, held.etag)
    parts = journal.parts(record.id)
    on_server = sum(1 for p in parts if p.done)
    log.info(
        "Resuming %s: %d of %d parts are on the server; sending %d",
        record.key,
        on_server,
        len(parts),
        len(parts) - on_server,
    )
    return True
