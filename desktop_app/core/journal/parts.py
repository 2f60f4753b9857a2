"""The part ledger: a multipart upload's plan, each part's confirmation, the pre-pass digests.

A fact is committed before anything depends on it: the upload id and the
part plan together, before the first part is sent; a part is marked done
only after the server answered for it. The pre-pass's digests (the file's
SHA-256, each planned part's MD5 and CRC64NVME) are kept with the SHA-256
and part size they were computed for, so a stale set is recognised
(:meth:`PartDigests.fits`). :class:`PartLedger` writes through the journal's
one writer (:class:`~desktop_app.core.journal.database.JournalDatabase`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from desktop_app.core.journal.database import JournalDatabase
from desktop_app.core.journal.records import TransferRecord, aware
from desktop_app.core.journal.schema import part_digests, parts, transfers


@dataclass(frozen=True)
class PartRecord:
    number: int
    offset: int
    size: int
    md5: str | None
    etag: str | None
    confirmed_at: datetime | None

    @property
    def done(self) -> bool:
        return self.confirmed_at is not None


@dataclass(frozen=True)
class PartDigests:
    """What the pre-pass read: the file's SHA-256 and the MD5 of each planned part;
    its CRC64NVME (base64) and each part's (None, (): read before they were kept),
    the upload created to carry them (``crc64nvme_upload_id``), and whether the
    server's checksum of that upload's object was read back equal to it."""

    sha256: str
    part_size: int
    md5s: tuple[bytes, ...]
    crc64nvme: str | None = None
    part_crc64nvmes: tuple[int, ...] = ()
    crc64nvme_upload_id: str | None = None
    crc64nvme_verified: bool = False

    def fits(self, record: TransferRecord) -> bool:
        """Computed for this transfer's content and part plan (not an older one's)?"""
        return (
            self.sha256 == record.sha256
            and self.part_size == record.part_size
            and len(self.md5s) == record.part_count
        )


class PartLedger:
    """The parts and part digests of the journal's transfers."""

    def __init__(self, database: JournalDatabase, clock: Callable[[], datetime]) -> None:
        self._database = database
        self.clock = clock

    def plan_parts(
        self, transfer_id: int, upload_id: str, plan: list[tuple[int, int, int]]
    ) -> None:
        """Commit the upload id and the part plan (number, offset, size) together."""
        now = self.clock()

        def op(connection: Connection) -> Any:
            connection.execute(delete(parts).where(parts.c.transfer_id == transfer_id))
            connection.execute(
                insert(parts),
                [
                    {"transfer_id": transfer_id, "number": n, "offset": o, "size": s}
                    for n, o, s in plan
                ],
            )
            connection.execute(
                update(transfers)
                .where(transfers.c.id == transfer_id)
                .values(
                    upload_id=upload_id, part_count=len(plan), upload_intent_at=None, updated_at=now
                )
            )

        self._database.write(op)

    def parts(self, transfer_id: int) -> list[PartRecord]:
        rows = self._database.read(
            select(parts).where(parts.c.transfer_id == transfer_id).order_by(parts.c.number)
        )
        return [
            PartRecord(r.number, r.offset, r.size, r.md5, r.etag, aware(r.confirmed_at))
            for r in rows
        ]

    def confirm_part(self, transfer_id: int, number: int, md5: str, etag: str) -> None:
        def op(connection: Connection) -> Any:
            connection.execute(
                update(parts)
                .where(parts.c.transfer_id == transfer_id, parts.c.number == number)
                .values(md5=md5, etag=etag, confirmed_at=self.clock())
            )

        self._database.write(op)

    def unconfirm_part(self, transfer_id: int, number: int) -> None:
        def op(connection: Connection) -> Any:
            connection.execute(
                update(parts)
                .where(parts.c.transfer_id == transfer_id, parts.c.number == number)
                .values(etag=None, confirmed_at=None)
            )

        self._database.write(op)

    def save_part_digests(self, transfer_id: int, digests: PartDigests) -> None:
        row = {
            "transfer_id": transfer_id,
            "sha256": digests.sha256,
            "part_size": digests.part_size,
            "md5s": b"".join(digests.md5s),
            "crc64nvme": digests.crc64nvme,
            "part_crc64nvmes": b"".join(c.to_bytes(8, "big") for c in digests.part_crc64nvmes)
            if digests.crc64nvme is not None
            else None,
            "crc64nvme_upload_id": digests.crc64nvme_upload_id,
            "crc64nvme_verified": digests.crc64nvme_verified,
        }

        def op(connection: Connection) -> Any:
            stale = delete(part_digests).where(part_digests.c.transfer_id == transfer_id)
            connection.execute(stale)
            connection.execute(insert(part_digests), [row])

        self._database.write(op)

    def part_digests(self, transfer_id: int) -> PartDigests | None:
        rows = self._database.read(
            select(part_digests).where(part_digests.c.transfer_id == transfer_id)
        )
        if not rows:
            return None
        row = rows[0]
        blob = bytes(row.md5s)
        md5s = tuple(blob[i : i + 16] for i in range(0, len(blob), 16))
        crcs = bytes(row.part_crc64nvmes or b"")
        part_crcs = tuple(int.from_bytes(crcs[i : i + 8], "big") for i in range(0, len(crcs), 8))
        return PartDigests(
            row.sha256,
            row.part_size,
            md5s,
            row.crc64nvme,
            part_crcs,
            row.crc64nvme_upload_id,
            bool(row.crc64nvme_verified),
        )

    def forget_upload(self, transfer_id: int) -> None:
        """Drop the upload, its parts and the object's ETag and version in one commit:
        the next attempt sends the bytes afresh (its resume point goes back to sending)."""
        now = self.clock()

        def op(connection: Connection) -> Any:
            connection.execute(delete(parts).where(parts.c.transfer_id == transfer_id))
            connection.execute(
                update(transfers)
                .where(transfers.c.id == transfer_id)
                .values(upload_id=None, etag=None, version_id=None, updated_at=now)
            )

        self._database.write(op)
