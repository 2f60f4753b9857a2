"""The journal file read directly, read-only: which transfers there are, and what
attempts cut short sent.

Read as `ferry status` reads it, alone and beside a running Ferry alike (the
journal is that Ferry's to write), so a command says the same either way.
Promises: nothing here writes to the journal or starts the engine; IDs the
journal does not hold are refused (:class:`FerryError`, exit 2) before a
command does anything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from desktop_app.core.journal.records import JournalReader, TransferRecord, UnrecordedSending
from desktop_app.core.model.errors import FerryError
from desktop_app.core.settings.paths import FerryPaths


def require_transfers(ids: Sequence[int], done: str) -> None:
    """Refuse, before anything is done, IDs the journal does not hold.

    Read from the journal file (as `ferry status` reads it beside a running
    Ferry), so a mistyped ID is said alike alone and handed over, and in words
    a person can act on rather than as a journal problem.
    """
    if not ids:
        return
    found = {record.id for record in journal_records(ids)}
    missing = sorted(set(ids) - found)
    if missing:
        named = ", ".join(str(i) for i in missing)
        raise FerryError(
            f"There is no transfer {named} in the journal, so nothing was {done}. "
            "`ferry status --all` lists the transfers there are, with their IDs.",
            title="No such transfer",
        )


def unrecorded_sending(ids: Sequence[int]) -> dict[int, list[UnrecordedSending]]:
    """What attempts cut by a pause or a stop sent, from the journal file (alone and
    beside a running Ferry alike: the attempts it answers are only the recorded ones)."""
    if not ids:
        return {}
    with JournalReader(FerryPaths.from_environment(os.environ).journal_file) as journal:
        return journal.unrecorded_sending(ids)


def journal_records(ids: Sequence[int]) -> list[TransferRecord]:
    """The transfers as the journal file holds them (read-only, beside a running Ferry too)."""
    from desktop_app.core.journal.store import Journal

    journal = Journal(FerryPaths.from_environment(os.environ).journal_file, read_only=True)
    try:
        return journal.get_many(ids)
    finally:
        journal.close()
