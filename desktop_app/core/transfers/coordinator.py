"""The coordinator: a person's actions on transfers, each under the transfer's hold.

Cancel, pause, unpause and retry come from the window, the CLI and the
control socket through the facade; they act here and nowhere else. Each
takes the hold of the transfers it names (:mod:`.holds`): a transfer a
worker runs has its attempt flagged and carries the action out itself (a
pause within one part, keeping what was sent; a cancel compensating);
any other is changed under the hold, so no worker can start it meanwhile.
Cancel and pause return once the flagged attempts have stopped (at most
``patience`` seconds), so what they return is what happened; so does a
Retry of a transfer whose failed attempt has not let go of it yet. When an
action ends the scheduler is woken (the hold registry's ``on_released``).

A conflict is resolved here too (:meth:`TransferCoordinator.resolve`): a
transfer that failed because another program's object (or another file's
catalog row) holds its key goes on under the next free name, or replaces
exactly the object a person saw (If-Match on its ETag: a third program's
object written since is still never overwritten), or is set aside; in no
case is anything at the key deleted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

from desktop_app.core.journal.facts import UNCHANGED, TransferFacts
from desktop_app.core.journal.records import TransferRecord
from desktop_app.core.model.errors import FerryError
from desktop_app.core.model.events import TransferChanged, TransferSnapshot
from desktop_app.core.model.failures import (
    ConflictChoice,
    choice_label,
    conflict_choices,
    suffixed_name,
)
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.transfers.engine import TransferEngine
from desktop_app.core.transfers.intake import input_error
from desktop_app.core.transfers.sources import SourceProblem, check_file

log = logging.getLogger(__name__)
# Seconds a person's cancel or pause waits for a running attempt to stop.
ACTION_PATIENCE = 10.0
# Seconds between a Retry's looks at a failed transfer whose worker is still ending.
_RETRY_LOOK = 0.1


class TransferCoordinator:
    """A person's actions on one profile's transfers; thread-safe."""

    def __init__(self, engine: TransferEngine) -> None:
        self.engine = engine
        self.journal = engine.journal
        self.holds = engine.holds
        self.bus = engine.bus
        self.intake = engine.intake

    # A person's actions take the transfer's hold (see transfers.holds): a
    # running attempt is flagged and carries the action out itself; any other
    # transfer is changed under the hold, so no worker starts it meanwhile.

    def pause(
        self, transfer_ids: Iterable[int] | None = None, *, patience: float = ACTION_PATIENCE
    ) -> int:
        """Pause: a running attempt stops within one part, keeping what it sent.

        Returns once the running attempts have stopped (waiting at most
        ``patience`` seconds for them): from then on no part of a paused
        transfer is sent. With no ids, every transfer.
        """
        ids = None if transfer_ids is None else list(transfer_ids)
        with self.holds.for_person(self._named_or_unfinished(ids)) as turn:
            count = self.journal.set_paused(ids, True)
            # A transfer queued after the list was read may be running already
            # (a worker read it before this flag): pausing all tells every one.
            running = turn.running if ids is not None else self.holds.worker_controls()
            for control in running.values():
                control.pause.set()
        self._publish_all(ids)
        self._wait_stopped(list(running), patience)
        return count

    def unpause(self, transfer_ids: Iterable[int] | None = None) -> int:
        ids = None if transfer_ids is None else list(transfer_ids)
        with self.holds.for_person(self._named_or_unfinished(ids)):
            count = self.journal.set_paused(ids, False)
        self._publish_all(ids)
        return count

    def _named_or_unfinished(self, ids: list[int] | None) -> list[int]:
        if ids is not None:
            return ids
        return [record.id for record in self.journal.all() if not record.state.finished]

    def _publish_all(self, ids: list[int] | None) -> None:
        # All unfinished ones when none were named: one queued since the list was
        # read is paused too. A finished one is untouched (and a window that
        # cleared it from its list must not see it again).
        if ids is None:
            records = [r for r in self.journal.all() if not r.state.finished]
        else:
            records = self.journal.get_many(ids)
        for record in records:
            self.bus.publish(TransferChanged(TransferSnapshot.of(record)))

    def _wait_stopped(self, transfer_ids: list[int], patience: float) -> None:
        if transfer_ids and not self.holds.wait_released(transfer_ids, patience):
            log.warning(
                "%d upload(s) asked to stop are still stopping; they stop as soon as they can",
                len(transfer_ids),
            )

    def cancel(
        self, transfer_ids: Iterable[int], *, patience: float = ACTION_PATIENCE
    ) -> list[TransferRecord]:
        """Cancel: a running attempt stops at its next check and compensates; others now.

        Returns each transfer as it is once its running attempt has ended
        (waiting at most ``patience`` seconds for those): a transfer that
        finished before the cancel reached it stays done.
        """
        ids = list(transfer_ids)
        for record in self._existing(ids):
            if not record.state.finished:
                self.engine.require_own(record)
        running = self._cancel_or_flag(ids)
        deadline = self.engine.monotonic() + patience
        for _round in range(10):  # a few rounds at most, whatever the clock does
            if not running:
                break
            self._wait_stopped(running, max(0.0, deadline - self.engine.monotonic()))
            # An attempt that had made its last check when the flag was raised
            # ended without seeing it (failed and due to retry, say), and may
            # have been picked again since: cancelled under the hold, again.
            missed = [r.id for r in self.journal.get_many(running) if not r.state.finished]
            if not missed or self.engine.monotonic() >= deadline:
                break
            running = self._cancel_or_flag(missed)
        return self.journal.get_many(ids)

    def _cancel_or_flag(self, transfer_ids: list[int]) -> list[int]:
        """Cancel each transfer under its hold, or flag its running attempt; those flagged."""
        with self.holds.for_person(transfer_ids) as turn:
            for control in turn.running.values():
                control.cancel.set()
            for transfer_id in turn.mine:
                self.engine.cancel_held(transfer_id)
        return list(turn.running)

    def retry(
        self, transfer_ids: Iterable[int] | None = None, *, patience: float = ACTION_PATIENCE
    ) -> list[TransferRecord]:
        """A person's Retry: failed transfers go back to the step they can resume from.

        Bad input is looked at again in the same row (the person may have
        fixed it); a failure that retrying cannot cure is left as it is. With
        no ids, every retryable failed transfer of this profile. Each is
        judged as it is under its hold. A worker may hold one the journal
        shows failed: it is ending that failed attempt (the person saw it
        fail a moment before its hold went), and the Retry is carried out
        once the hold goes (waiting about ``patience`` seconds at most); or
        it is starting the next try by itself, and once that try has moved
        the transfer on from failed it is left to it. A try that fails
        again within the wait is retried as the person asked (its attempt
        count and next try time start again); a pause asked for during the
        wait stands.
        """
        if transfer_ids is None:
            ids = [
                record.id
                for record in self.journal.all([TransferState.FAILED])
                if record.profile == self.engine.profile_name
                and record.bucket == self.engine.storage.bucket
            ]
        else:
            ids = list(transfer_ids)
        records: dict[int, TransferRecord] = {}
        running = self._retry_or_pass(ids, records)
        paused_before = {r.id for r in self.journal.get_many(running) if r.paused}
        deadline = self.engine.monotonic() + patience
        for _round in range(int(patience / _RETRY_LOOK) + 1):  # a bound whatever the clock does
            if not running or self.engine.monotonic() >= deadline:
                break
            # Still failed: the worker is letting go (or a try it took is not under way yet).
            running = [
                r.id for r in self.journal.get_many(running) if r.state is TransferState.FAILED
            ]
            if running:
                self.holds.wait_released(running, _RETRY_LOOK)
                running = self._retry_or_pass(running, records, paused_before)
        return [records[i] for i in ids if i in records]

    def _retry_or_pass(
        self,
        transfer_ids: list[int],
        records: dict[int, TransferRecord],
        paused_before: set[int] | None = None,
    ) -> list[int]:
        """Retry each failed transfer under its hold, into ``records``; those a worker holds.

        With ``paused_before`` (the Retry waited for a worker): one paused since,
        not among those, stays paused, the later word.
        """
        with self.holds.for_person(transfer_ids) as turn:
            for record in self._existing(turn.mine):
                if record.state is not TransferState.FAILED:
                    continue
                if paused_before is not None and record.paused and record.id not in paused_before:
                    continue
                self.engine.require_own(record)
                records[record.id] = self._retried(record)
        return list(turn.running)

    def _retried(self, record: TransferRecord) -> TransferRecord:
        if not record.failure_kind.retryable:
            return record
        if record.failure_kind is ErrorKind.INPUT and record.sha256 is None:
            return self._reexamine(record)
        # Back to the start, no reservation is held: an object to replace left from
        # an earlier run's (see reserve_step.HashAndReserve.run) is not a person's choice.
        start = record.resume_point is TransferState.QUEUED
        return self.engine.move(
            record.id,
            record.resume_point,
            facts=TransferFacts(
                attempts=0, paused=False, replaces_etag=None if start else UNCHANGED
            ),
        )

    def resolve(
        self, transfer_id: int, choice: ConflictChoice, seen_etag: str | None = None
    ) -> TransferRecord:
        """A person's answer to a conflict, carried out under the transfer's hold.

        RENAME: the transfer goes on at the next free name ("name (2).ext": no
        object, no live catalog row, no other transfer on its way there).
        REPLACE: it goes on writing over the object at the key with
        ``seen_etag`` (the one the person was shown; None: the one there now),
        and only over that one. SKIP: it is cancelled, nothing uploaded. Its
        earlier reservation is given back first, so it starts afresh.
        """
        with self.holds.for_person([transfer_id]) as turn:
            if transfer_id in turn.running:
                raise FerryError(
                    f"Transfer {transfer_id} is being tried right now; choose again once it "
                    "has ended.",
                    title="Transfer busy",
                )
            [record] = self._existing([transfer_id])
            self.engine.require_own(record)
            offered = conflict_choices(record.error) if record.state is TransferState.FAILED else ()
            if choice not in offered:
                raise FerryError(self._not_offered(record, choice, offered), title="Not a choice")
            if choice is ConflictChoice.SKIP:
                self.engine.cancel_held(transfer_id)
                log.info("%s: skipped; the object at %s was left as it is", record.source_path,
                         record.key)  # fmt: skip
                return self.journal.get(transfer_id)
            self.engine.compensation.compensate(record)  # whatever of its reservation is left goes
            record = self.journal.get(transfer_id)
            if choice is ConflictChoice.RENAME:
                facts = TransferFacts(key=self._free_key(record), replaces_etag=None)
            else:
                if seen_etag is None:
                    found = self.engine.storage.head_object(record.key)
                    seen_etag = found.etag if found is not None else None
                facts = TransferFacts(replaces_etag=seen_etag)
            moved = self.engine.move(
                transfer_id,
                record.resume_point,
                facts=dataclasses.replace(facts, attempts=0, paused=False),
            )
        log.info("%s: %s, as %s", record.source_path, choice.value, moved.key)
        return moved

    @staticmethod
    def _not_offered(
        record: TransferRecord, choice: ConflictChoice, offered: tuple[ConflictChoice, ...]
    ) -> str:
        said = f"“{choice_label(choice, record.key)}” is not a choice for transfer {record.id}"
        if not offered:
            state = "failed" if record.state is TransferState.FAILED else record.state.value
            return f"{said}: it is {state}, not a conflict waiting for a person. Nothing changed."
        named = ", ".join(f"“{choice_label(c, record.key)}”" for c in offered)
        return f"{said} (the key holds Ferry's own record of another file). Its choices: {named}."

    def _free_key(self, record: TransferRecord) -> str:
        """The first "name (N).ext" from 2 up where nothing is: no object, no live row,
        no other transfer of this journal on its way."""
        taken = self.journal.in_flight_keys(record.bucket)
        for number in range(2, 1000):
            key = suffixed_name(record.key, number)
            if (
                key not in taken
                and self.engine.catalog.live(record.bucket, key) is None
                and self.engine.storage.head_object(key) is None
            ):
                return key
        raise FerryError(
            f"No free name like {suffixed_name(record.key)!r} was found up to 999; nothing "
            "changed. Move some of those objects away, or skip the file.",
            title="No free name",
        )

    def _existing(self, transfer_ids: list[int]) -> list[TransferRecord]:
        """The transfers asked for; a person naming one that does not exist is told."""
        found = self.journal.get_many(transfer_ids)
        if len(found) < len(set(transfer_ids)):
            missing = sorted(set(transfer_ids) - {r.id for r in found})
            self.journal.get(missing[0])  # raises: there is no such transfer
        return found

    def _reexamine(self, record: TransferRecord) -> TransferRecord:
        found = check_file(Path(record.source_path), record.key)
        if isinstance(found, SourceProblem):
            return self.engine.move(record.id, TransferState.FAILED, error=input_error(found))
        fresh = self.intake.new_transfer(found)
        return self.engine.move(
            record.id,
            TransferState.QUEUED,
            facts=TransferFacts(
                attempts=0,
                identity=fresh.identity,
                content_type=fresh.content_type,
                part_size=fresh.part_size,
                part_count=fresh.part_count,
            ),
        )
