"""Sending one transfer's bytes and proving they arrived.

Below a part's size: one PUT with Content-MD5, its ETag compared with the MD5
of what was sent (HEAD only when the server's ETag is opaque):
:mod:`.single_put`. Above: the multipart protocol, each step in the journal
before the next depends on it: :mod:`.multipart`, resumed by :mod:`.resume`.
Content stored already under another key is copied on the server (here).
Every write lands only over what the transfer expects at its key
(:mod:`.guarded_write`), and the object is verified before the transfer may
register it in the catalog (:mod:`.verification`); a second verification
failure stops resending.

The engine (``engine.py``) decides when to send, retry or give up; these
modules only send, and raise Ferry's errors for the engine to judge.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable

from desktop_app.core.journal.facts import TransferFacts
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import StorageError, StorageErrorKind
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.storage.copies import copy_object
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.control import TransferControl, Transition
from desktop_app.core.transfers.etags import EtagMeaning
from desktop_app.core.transfers.guarded_write import GuardedWriter
from desktop_app.core.transfers.limits import BandwidthLimiter, ByteBudget
from desktop_app.core.transfers.multipart import MultipartSender
from desktop_app.core.transfers.prepass import PrePass
from desktop_app.core.transfers.progress import ProgressMeter
from desktop_app.core.transfers.protection import EndpointGuard, ProtectionMemory
from desktop_app.core.transfers.single_put import SinglePut
from desktop_app.core.transfers.verification import ObjectVerifier, ferry_metadata

log = logging.getLogger(__name__)


class ObjectSender:
    """Sends and verifies the object of one transfer at a time per call; thread-safe.

    The ways of writing are its parts: :attr:`single_put`, :attr:`multipart`
    (with the Complete) and :attr:`verifier` (the HEAD before registering),
    sharing what this endpoint's ETags were learnt to mean and its guard.
    """

    def __init__(
        self,
        *,
        journal: Journal,
        storage: S3Storage,
        limiter: BandwidthLimiter,
        budget: ByteBudget,
        part_pool: concurrent.futures.Executor,
        prepass: PrePass,
        single_put_threshold: int,
        transition: Transition,
        meter: Callable[[int, int, int], ProgressMeter],
        guard: EndpointGuard | None = None,
    ) -> None:
        self.journal = journal
        self.storage = storage
        self.single_put_threshold = single_put_threshold
        self._transition = transition
        self._meter = meter  # (transfer id, total bytes, bytes done) -> meter
        self.etags = EtagMeaning()  # what this endpoint's ETags say, learned as it answers
        # Whether the server refuses writes over an object the condition does not
        # name; where not, each write is looked at before and after (see guarded_write).
        self.guard = guard or EndpointGuard(storage, ProtectionMemory(None))
        self.writer = GuardedWriter(storage, self.guard)
        self.verifier = ObjectVerifier(
            journal=journal, storage=storage, etags=self.etags, transition=transition
        )
        self.single_put = SinglePut(
            storage=storage,
            limiter=limiter,
            budget=budget,
            guard=self.guard,
            etags=self.etags,
            writer=self.writer,
            verifier=self.verifier,
            meter=meter,
        )
        self.multipart = MultipartSender(
            journal=journal,
            storage=storage,
            limiter=limiter,
            budget=budget,
            part_pool=part_pool,
            prepass=prepass,
            guard=self.guard,
            etags=self.etags,
            writer=self.writer,
            transition=transition,
            meter=meter,
        )

    def upload(self, record: TransferRecord, control: TransferControl) -> TransferRecord:
        """Write the object by a server-side copy or the multipart protocol.

        Content stored already under another key is copied on the server,
        conditional on the ETag the source's row verified; if that object
        changed or went, the transfer is returned still uploading, without
        its copy source, for the bytes to be sent after all. A file sent in
        one request is returned as it is: :meth:`SinglePut.put` is its one path.
        """
        if record.copy_source_key is not None:
            copied = self._copy(record, control)
            if copied is not None:
                return copied
            record = self.journal.get(record.id)
        if self.sends_whole(record):
            return record
        return self.multipart.send(record, control)

    def _copy(self, record: TransferRecord, control: TransferControl) -> TransferRecord | None:
        assert record.copy_source_key is not None
        assert record.copy_source_etag is not None
        control.check()
        source_key, source_etag = record.copy_source_key, record.copy_source_etag
        try:
            written = self.writer.write(
                record,
                record.write_condition,
                lambda on: copy_object(
                    self.storage,
                    source_key,
                    record.key,
                    source_etag=source_etag,
                    size=record.size,
                    metadata=ferry_metadata(record),
                    content_type=record.content_type,
                    condition=on,
                ),
                multipart=record.size > self.storage.copy_limit,  # part copies, then Complete
            )
        except StorageError as exc:
            if exc.kind not in (StorageErrorKind.PRECONDITION_FAILED, StorageErrorKind.NOT_FOUND):
                raise
            log.info(
                "%s: the stored copy %s changed or went; sending the bytes instead",
                record.key,
                record.copy_source_key,
            )
            self.journal.update(
                record.id, TransferFacts(copy_source_key=None, copy_source_etag=None)
            )
            return None
        self._meter(record.id, record.size, 0).add(record.size)
        facts = TransferFacts(etag=written.etag, version_id=written.version_id)
        return self._transition(record.id, TransferState.VERIFYING, facts=facts)

    def sends_whole(self, record: TransferRecord) -> bool:
        """Is this transfer's next step one PUT of the whole file (no copy, no multipart)?"""
        return (
            record.copy_source_key is None
            and record.upload_id is None
            and record.size < self.single_put_threshold
        )
