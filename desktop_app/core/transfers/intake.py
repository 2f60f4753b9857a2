"""Intake: every way a transfer enters the journal (paths, a watched folder's files, a repair).

Promises: each file found becomes one journal row, born queued; input that
cannot be uploaded (a socket, a folder loop, a name that cannot be a key)
becomes a row born failed with its reason, so it is listed and never stops
the others; a repair's re-upload is born uploading with its catalog row and
hash. Every new row is announced on the bus.
"""

from __future__ import annotations

import dataclasses
import logging
import mimetypes
from collections.abc import Callable, Iterable
from pathlib import Path

from desktop_app.core.journal.facts import NewTransfer
from desktop_app.core.journal.records import (
    KeyConflictPolicy,
    SourceIdentity,
    TransferError,
    TransferRecord,
)
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import SourceError
from desktop_app.core.model.events import EventBus, TransferQueued, TransferSnapshot
from desktop_app.core.model.sizes import choose_part_size
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.transfers.part_plan import part_plan
from desktop_app.core.transfers.sources import (
    SourceFile,
    SourceProblem,
    check_file,
    expand,
    printable,
)

log = logging.getLogger(__name__)


def input_error(problem: SourceProblem) -> TransferError:
    kind = ErrorKind.FINAL if problem.final else ErrorKind.INPUT
    message = printable(problem.message)
    if problem.final:
        message += " Retrying cannot help; fix or remove it, then add it again."
    return TransferError(kind, problem.title, message, problem.cause)


class TransferIntake:
    """Writes new transfers of one profile and bucket into the journal."""

    def __init__(
        self,
        journal: Journal,
        bus: EventBus,
        *,
        profile_name: str,
        bucket: str,
        part_size: Callable[[], int],
    ) -> None:
        self.journal = journal
        self.bus = bus
        self.profile_name = profile_name
        self.bucket = bucket
        self.part_size = part_size  # read at each intake: settings may change meanwhile

    def queue_paths(self, paths: Iterable[Path | str], prefix: str) -> list[TransferRecord]:
        """Queue every file under the paths; bad input becomes a failed transfer each."""
        return self._add([*expand(paths, prefix)])

    def queue_files(
        self, items: Iterable[tuple[Path, str]], on_conflict: KeyConflictPolicy
    ) -> list[TransferRecord]:
        """Queue files under keys chosen by the caller (a watched folder)."""
        return self._add([check_file(path, key) for path, key in items], on_conflict)

    def _add(
        self,
        found: list[SourceFile | SourceProblem],
        on_conflict: KeyConflictPolicy = KeyConflictPolicy.FAIL,
    ) -> list[TransferRecord]:
        news = []
        for item in found:
            if isinstance(item, SourceProblem):
                log.warning("Not queued: %s", printable(item.message))
                news.append(
                    NewTransfer(
                        source_path=printable(str(item.path)),
                        identity=SourceIdentity(0, 0, 0, 0),
                        profile=self.profile_name,
                        bucket=self.bucket,
                        key=item.key,
                        content_type="",
                        part_size=self.part_size(),
                        part_count=0,
                        state=TransferState.FAILED,
                        error=input_error(item),
                    )
                )
            else:
                news.append(dataclasses.replace(self.new_transfer(item), on_conflict=on_conflict))
        records = self.journal.add_many(news)
        for record in records:
            self.bus.publish(TransferQueued(TransferSnapshot.of(record)))
        return records

    def new_transfer(self, source: SourceFile) -> NewTransfer:
        size = source.stat.st_size
        part_size = choose_part_size(size, self.part_size())
        content_type = mimetypes.guess_type(source.path.name)[0] or "application/octet-stream"
        return NewTransfer(
            source_path=str(source.path),
            identity=SourceIdentity.of(source.stat),
            profile=self.profile_name,
            bucket=self.bucket,
            key=source.key,
            content_type=content_type,
            part_size=part_size,
            part_count=len(part_plan(size, part_size)),
        )

    def queue_reupload(
        self,
        source: Path,
        key: str,
        file_id: int,
        sha256: str,
        *,
        replaces_etag: str | None = None,
    ) -> TransferRecord:
        """A repair: send source to key again for an existing (missing) catalog row.

        The transfer is queued with the row and hash known, so the catalog
        reservation (which would call it a duplicate) is skipped; it is sent,
        verified and registered by the scheduler like any other upload. It
        writes over only the object with ``replaces_etag`` (the one the person
        saw), or, with None, only an empty key.
        """
        found = check_file(source, key)
        if isinstance(found, SourceProblem):
            raise SourceError(found.message, title=found.title)
        new = dataclasses.replace(
            self.new_transfer(found),
            state=TransferState.UPLOADING,
            sha256=sha256,
            catalog_file_id=file_id,
            replaces_etag=replaces_etag,
        )
        return self.journal.add(new)
