"""Bucket vs catalog vs journal: every disagreement, with its evidence and a safe repair.

The check streams the bucket listing and the catalog rows in key byte order
and merge-joins them, holding one key's rows at a time. Servers do not all
list in byte order (SeaweedFS lists a "directory" before keys that sort
between it and its contents, e.g. ``a/B`` before ``a-b``). The listing is
first taken as it comes, its order verified key by key; at the first key out
of byte order the pass is dropped (it has judged nothing it acted on) and the
check starts again with the listing spooled into a temporary SQLite file
ordered by the key's bytes. Either way memory stays flat whatever the
bucket's size. The catalog side is ours and must come
in byte order: a violation fails the check loudly instead of inventing
findings.

In a bucket that keeps versions a second pass lists the versions and
judges Ferry's older ones; the unfinished multipart uploads are listed too
(:mod:`desktop_app.core.check.other_listings`).

Nothing younger than the grace period is reported or touched (it may be in
flight), nor anything the journal is still uploading. Repairs are planned
first (a dry run shows the plan); carrying them out is a separate call, each
step audited in the catalog and announced in its outbox.

The parts: what a check reports (:mod:`desktop_app.core.check.findings`),
the streams it joins (:mod:`desktop_app.core.check.streams`), the pure judge
of one key (:mod:`desktop_app.core.check.judge`), the I/O that confirms a
finding (a fresh HEAD, a local copy's hash) on a few threads beside the walk
(:mod:`desktop_app.core.check.confirmations`), the other listings
(:mod:`desktop_app.core.check.other_listings`) and the repairs
(:mod:`desktop_app.core.check.repairs`). This module walks the streams and
keeps the order of the findings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from desktop_app.core.catalog.records import FileRecord
from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.check.confirmations import Confirmations, Unconfirmed, unchanged
from desktop_app.core.check.findings import (
    CheckOptions,
    CheckReport,
    ConsistencyError,
    Finding,
    RepairResult,
    Scanned,
)
from desktop_app.core.check.judge import (
    Cutoffs,
    Disagreement,
    Judged,
    Verdict,
    classify,
)
from desktop_app.core.check.other_listings import OtherListings, UploadsSeen
from desktop_app.core.check.repairs import CheckRepairs
from desktop_app.core.check.streams import (
    OutOfOrder,
    PagesAhead,
    SortedListing,
    StreamedListing,
    in_byte_order,
    merge_by_key,
)
from desktop_app.core.journal.store import Journal
from desktop_app.core.storage.listing import iter_object_pages
from desktop_app.core.storage.s3 import S3Storage

log = logging.getLogger(__name__)

# Threads that confirm findings beside the walk (fresh HEADs, local copies'
# hashes): at most this many, and never more than the S3 client's connections.
CONFIRMING_THREADS = 16


def _rows_out_of_order(_before: str, after: str) -> ConsistencyError:
    return ConsistencyError(
        f"The catalog returned {after!r} after a greater key: it does not sort keys "
        'in byte order (a PostgreSQL column without COLLATE "C"?). The check stopped '
        "rather than report false findings; run `ferry catalog upgrade`."
    )


class _OtherServersRows:
    """Leaves out rows registered at another server than the one checked.

    A bucket name is unique per server only: another server's rows would all
    look missing here, and their repair would mark good files lost.
    """

    def __init__(self, endpoint_id: str) -> None:
        self.endpoint_id = endpoint_id
        self.skipped: dict[str, int] = {}

    def drop(self, rows: Iterator[FileRecord]) -> Iterator[FileRecord]:
        for row in rows:
            if row.endpoint is not None and row.endpoint != self.endpoint_id:
                self.skipped[row.endpoint] = self.skipped.get(row.endpoint, 0) + 1
                continue
            yield row

    def notes(self) -> tuple[str, ...]:
        return tuple(
            f"{count} catalog row(s) of files stored at another server ({endpoint}) were not "
            "checked; check them with a profile for that server."
            for endpoint, count in sorted(self.skipped.items())
        )


@dataclass
class _Walked:
    """What the walk over the merged streams found, findings in key order."""

    findings: list[Finding | Unconfirmed] = field(default_factory=list)
    young: int = 0
    others: int = 0
    rows: int = 0

    def add(self, judged: Judged, confirmations: Confirmations) -> None:
        if isinstance(judged, Finding):
            self.findings.append(judged)
        elif isinstance(judged, Disagreement):
            self.findings.append(confirmations.submit(judged))
        elif judged is Verdict.YOUNG:
            self.young += 1
        elif judged is Verdict.OTHERS:
            self.others += 1


@dataclass(frozen=True)
class _FirstPass:
    findings: list[Finding]
    walked: _Walked
    uploads: int
    unlisted: UploadsSeen
    elsewhere: tuple[str, ...]  # notes on rows of other servers, left out


class ConsistencyChecker:
    """Finds and repairs disagreements between one bucket prefix, its catalog and the journal.

    Promises (invariant 9): a repair re-checks its finding in its own
    transaction on the key (rows read and locked, a fresh HEAD) and drops it
    if anything changed; it never deletes an object a live row points at,
    whoever owns that row, nor one Ferry did not put there unless a person
    chose deletion for that finding; an object nobody registered is adopted
    only under the SHA-256 of its bytes, read back; a normal user's check
    never acts on another user's file (:class:`CheckRepairs`).
    """

    def __init__(
        self,
        *,
        storage: S3Storage,
        catalog: CatalogService,
        journal: Journal,
        prefix: str,
        reupload: Callable[[Path, str, int, str, str | None], bool],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        spool_dir: Path | None = None,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.journal = journal
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.reupload = reupload
        self.now = now
        self.spool_dir = spool_dir
        # The versions and the unfinished uploads, read beside the objects.
        self._other = OtherListings(storage, catalog, self.prefix)

    # -- the check --------------------------------------------------------------

    def check(self, options: CheckOptions) -> CheckReport:
        try:
            return self._check(options, spool=False)
        except OutOfOrder as disorder:
            log.info(
                "%s does not list in byte order (%s): the check starts again with the "
                "listing sorted on disk",
                self.storage.endpoint_label,
                disorder,
            )
            return self._check(options, spool=True)

    def _check(self, options: CheckOptions, *, spool: bool) -> CheckReport:
        started, clock = self.now(), time.monotonic()
        # Its first pages come while the catalog and the journal are asked.
        objects = PagesAhead(iter_object_pages(self.storage, self.prefix), name="ferry-listing")
        try:
            cutoffs = Cutoffs.of(self.catalog.database_now(), self.storage.server_now(), options)
            in_flight = self.journal.in_flight_keys(self.storage.bucket)
            admin = self.catalog.is_admin()
            listing = SortedListing(objects, self.spool_dir) if spool else StreamedListing(objects)
            try:
                first = self._first_pass(listing, cutoffs, in_flight, admin, options)
            finally:
                listing.close()
        finally:
            objects.close()
        findings = first.findings
        versions = self._other.older_versions(cutoffs, in_flight, findings)
        if options.only is not None:
            findings = [f for f in findings if f.kind in options.only]
        walked = first.walked
        return CheckReport(
            findings=findings,
            scanned=Scanned(
                listing.count,
                walked.rows,
                first.uploads,
                walked.young + first.unlisted.young + versions.young,
                walked.others,
                versions.listed,
                versions.kept,
            ),
            started_at=started,
            duration_s=time.monotonic() - clock,
            grace_seconds=options.grace_seconds,
            notes=first.unlisted.notes + versions.notes + first.elsewhere + self._clock_notes(),
        )

    def _first_pass(
        self,
        listing: StreamedListing | SortedListing,
        cutoffs: Cutoffs,
        in_flight: set[str],
        admin: bool,
        options: CheckOptions,
    ) -> _FirstPass:
        """The listing joined with the rows, then the unfinished uploads; the findings
        in that order, each disagreement's confirmed in its place."""
        confirmations = Confirmations(
            self.storage.head_object, self._last_sources, unchanged, self._confirming_threads()
        )
        try:
            elsewhere = _OtherServersRows(self.storage.endpoint_id)
            rows = elsewhere.drop(
                in_byte_order(
                    self.catalog.iter_in_key_order(self.storage.bucket, self.prefix),
                    _rows_out_of_order,
                )
            )
            # An admin sees every row; a user learns of others' keys, and nothing more.
            others_keys: Iterator[str] = (
                iter(())
                if admin
                else self.catalog.iter_others_keys(self.storage.bucket, self.prefix)
            )
            walked = self._walk(
                listing, rows, others_keys, in_flight, cutoffs, options, confirmations
            )
            # Listed while the last disagreements are being confirmed.
            uploads_found: list[Finding] = []
            owned = self.journal.upload_ids()
            uploads, unlisted = self._other.stale_uploads(
                cutoffs.objects_before, admin, owned, uploads_found
            )
            findings = confirmations.resolve(walked.findings) + uploads_found
        finally:
            confirmations.close()
        return _FirstPass(findings, walked, uploads, unlisted, elsewhere.notes())

    def _walk(
        self,
        listing: StreamedListing | SortedListing,
        rows: Iterator[FileRecord],
        others_keys: Iterator[str],
        in_flight: set[str],
        cutoffs: Cutoffs,
        options: CheckOptions,
        confirmations: Confirmations,
    ) -> _Walked:
        """Each key of the merged streams judged (:func:`classify`); what needs I/O to
        confirm it goes to ``confirmations`` and keeps its place."""
        walked = _Walked()
        cancel, progress, delete_orphans = options.cancel, options.progress, options.delete_orphans
        rows_seen = 0
        for seen in merge_by_key(iter(listing), rows, others_keys):
            if cancel.is_set():
                raise ConsistencyError("The check was cancelled.", title="Cancelled")
            rows_seen += len(seen.rows)
            if progress is not None and rows_seen % 1000 == 0:
                progress(listing.count, rows_seen)
            if seen.key in in_flight:
                continue
            judged = classify(seen, cutoffs, delete_orphans=delete_orphans)
            if judged is not None:
                walked.add(judged, confirmations)
        walked.rows = rows_seen
        return walked

    def _confirming_threads(self) -> int:
        connections = getattr(self.storage.client.meta.config, "max_pool_connections", None)
        return max(1, min(CONFIRMING_THREADS, connections or CONFIRMING_THREADS))

    def _last_sources(self, keys: list[str]) -> dict[str, Path]:
        """Where each key's last finished upload read its file, where the journal knows."""
        found = self.journal.sources_of_done(self.storage.bucket, keys)
        return {key: Path(source) for key, source in found.items()}

    def _clock_notes(self) -> tuple[str, ...]:
        skew = self.storage.server_clock.notable_offset()
        if skew is None:
            return ()
        return (f"{skew} Object and upload ages were judged on the server's clock.",)

    # -- repairs --------------------------------------------------------------------

    def repair(
        self, findings: list[Finding], *, adopt_owner: str | None = None
    ) -> list[RepairResult]:
        """Carry out the planned repair of each finding; each one stands alone.

        ``adopt_owner``: an admin adopts orphans for this user (default: the
        login running the repair).
        """
        repairs = CheckRepairs(storage=self.storage, catalog=self.catalog, reupload=self.reupload)
        return repairs.repair(findings, adopt_owner=adopt_owner)
