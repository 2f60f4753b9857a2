"""A file sent in parts: how it is cut, and the digests the pre-pass gave each part.

Promises: at most ``MAX_PARTS`` parts of at most ``MAX_PART_SIZE`` bytes
each (the part size from ``model.sizes.choose_part_size``); the parts'
CRC64NVMEs count only for the upload that was created to carry them (the
journal names it), else the MD5 path is taken.
"""

from __future__ import annotations

import math

from desktop_app.core.journal.parts import PartDigests
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.storage.crc64 import crc64nvme_base64
from desktop_app.core.transfers.prepass import FileHashes


def digests_of(hashes: FileHashes, part_size: int) -> PartDigests:
    """What the journal keeps of a pre-pass over a file sent in parts."""
    return PartDigests(
        hashes.sha256,
        part_size,
        hashes.part_md5s,
        crc64nvme_base64(hashes.crc64nvme),
        hashes.part_crc64nvmes,
    )


def part_plan(size: int, part_size: int) -> list[tuple[int, int, int]]:
    count = max(1, math.ceil(size / part_size))
    return [(n + 1, n * part_size, min(part_size, size - n * part_size)) for n in range(count)]


def part_crcs(record: TransferRecord, digests: PartDigests) -> tuple[str, ...] | None:
    """Each part's CRC64NVME (base64) where this transfer's upload was created to
    carry them; None: the MD5 path (an upload created without, or before)."""
    if record.upload_id is None or digests.crc64nvme_upload_id != record.upload_id:
        return None
    return tuple(crc64nvme_base64(c) for c in digests.part_crc64nvmes)


def upload_crcs(
    record: TransferRecord, digests: PartDigests | None
) -> tuple[str | None, dict[int, str] | None]:
    """The full-object CRC64NVME and each part's, where this transfer's upload was
    created to carry them (``digests``: the journal's); (None, None) otherwise."""
    if digests is None or not digests.fits(record):
        return None, None
    crcs = part_crcs(record, digests)
    if crcs is None:
        return None, None
    return digests.crc64nvme, dict(enumerate(crcs, start=1))
