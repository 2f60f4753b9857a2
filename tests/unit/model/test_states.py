"""The table of allowed moves, enforced by the journal for every state and target."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_app.core.journal.facts import NewAttempt, NewTransfer, TransferFacts
from desktop_app.core.journal.records import SourceIdentity, TransferError, TransferRecord
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import IllegalMoveError
from desktop_app.core.model.states import (
    ALLOWED_MOVES,
    FINISHED_STATES,
    INITIAL_STATES,
    ErrorKind,
    TransferState,
)

FAILURE = TransferError(ErrorKind.TRANSIENT, "Server busy", "The server said 503.")


def in_state(
    journal: Journal, state: TransferState, new: NewTransfer | None = None
) -> TransferRecord:
    """A transfer (``new``, or a plain one) brought to ``state`` the only way there is:
    born queued, then allowed moves."""
    paths = {TransferState.QUEUED: [TransferState.QUEUED]}
    frontier = [TransferState.QUEUED]
    while state not in paths:
        current = frontier.pop(0)
        for target in sorted(ALLOWED_MOVES[current], key=lambda s: s.value):
            if target not in paths:
                paths[target] = [*paths[current], target]
                frontier.append(target)
    record = journal.add(new or new_transfer(TransferState.QUEUED))
    for step in paths[state][1:]:
        error = FAILURE if step is TransferState.FAILED else None
        record = journal.move(record.id, step, error=error)
    return record


def new_transfer(state: TransferState) -> NewTransfer:
    return NewTransfer(
        source_path="/tmp/x",
        identity=SourceIdentity(1, 2, 3, 4),
        profile="p",
        bucket="b",
        key="x",
        content_type="text/plain",
        part_size=5 * 1024 * 1024,
        part_count=1,
        state=state,
        error=FAILURE if state is TransferState.FAILED else None,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(tmp_path / "journal.sqlite3")
    yield opened
    opened.close()


def test_every_move_outside_the_table_is_refused_and_every_move_inside_is_made(
    journal: Journal,
) -> None:
    for current, target in itertools.product(TransferState, TransferState):
        record = in_state(journal, current)
        error = FAILURE if target is TransferState.FAILED else None
        if target in ALLOWED_MOVES[current]:
            moved = journal.move(record.id, target, error=error)
            assert moved.state is target
        else:
            with pytest.raises(IllegalMoveError, match=f"from {current.value} to {target.value}"):
                journal.move(record.id, target, error=error)
            assert journal.get(record.id).state is current, "a refused move changed nothing"


def test_the_table_keeps_its_promises() -> None:
    for state in FINISHED_STATES:
        assert ALLOWED_MOVES[state] == frozenset(), f"{state} must be final"
    for state in TransferState:
        if not state.finished:
            assert TransferState.FAILED in ALLOWED_MOVES[state]
            assert TransferState.CANCELLED in ALLOWED_MOVES[state]
    # Registration can only follow bytes that were sent (and, but for a single
    # PUT whose answer proves them, verified): never a step before uploading.
    for state in (TransferState.QUEUED, TransferState.HASHING, TransferState.FAILED):
        assert TransferState.REGISTERING not in ALLOWED_MOVES[state]
        assert TransferState.DONE not in ALLOWED_MOVES[state]


def test_a_transfer_is_born_only_in_an_initial_state(journal: Journal) -> None:
    for state in TransferState:
        if state in INITIAL_STATES:
            continue
        with pytest.raises(ValueError, match="cannot be born"):
            journal.add(new_transfer(state))
    with pytest.raises(ValueError, match="known catalog row"):
        journal.add(new_transfer(TransferState.UPLOADING))
    assert journal.all() == []


def test_state_changes_only_through_move(journal: Journal) -> None:
    record = journal.add(new_transfer(TransferState.QUEUED))
    # A state is not a fact: there is no way to write one except Journal.move.
    assert "state" not in {f.name for f in dataclasses.fields(TransferFacts)}
    with pytest.raises(TypeError, match="state"):
        TransferFacts(state=TransferState.DONE.value)  # type: ignore[call-arg]
    journal.update(record.id, TransferFacts(paused=True))
    assert journal.get(record.id).state is TransferState.QUEUED
    with pytest.raises(ValueError, match="error goes with the failed state"):
        journal.move(record.id, TransferState.FAILED)


def test_two_threads_cannot_both_move_a_transfer_out_of_one_state(journal: Journal) -> None:
    """Check and write are one transaction: of two cancels, one wins, one is refused."""
    for _ in range(20):
        record = in_state(journal, TransferState.REGISTERING)
        outcomes: list[str] = []
        barrier = threading.Barrier(2)

        def move(
            target: TransferState,
            record_id: int = record.id,
            barrier: threading.Barrier = barrier,
            outcomes: list[str] = outcomes,
        ) -> None:
            barrier.wait()
            try:
                journal.move(record_id, target)
                outcomes.append(target.value)
            except IllegalMoveError:
                outcomes.append("refused")

        threads = [
            threading.Thread(target=move, args=(TransferState.DONE,)),
            threading.Thread(target=move, args=(TransferState.CANCELLED,)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes).count("refused") == 1, outcomes


def test_a_failed_move_keeps_its_attempt_in_the_history(journal: Journal) -> None:
    record = in_state(journal, TransferState.UPLOADING)
    now = record.created_at
    for sent in (100, 200):
        journal.move(
            record.id,
            TransferState.FAILED,
            error=FAILURE,
            retry_at=now,
            attempt=NewAttempt(now, now, FAILURE, sent),
        )
        journal.move(record.id, TransferState.UPLOADING)
    history = journal.attempts_of([record.id])[record.id]
    assert [(a.number, a.bytes_sent, a.error) for a in history] == [
        (1, 100, FAILURE),
        (2, 200, FAILURE),
    ]


def test_error_kinds_say_who_acts_next() -> None:
    assert ErrorKind.TRANSIENT.retries_on_its_own
    assert ErrorKind.TRANSIENT.retryable
    assert not ErrorKind.PERMANENT.retries_on_its_own
    assert ErrorKind.PERMANENT.retryable
    assert not ErrorKind.FINAL.retryable
    assert not ErrorKind.FINAL.retries_on_its_own
    assert ErrorKind.parse("something old") is ErrorKind.PERMANENT


def test_cleared_transfers_leave_the_window_and_stay_in_the_history(journal: Journal) -> None:
    done = [in_state(journal, TransferState.DONE).id for _ in range(5)]
    waiting = journal.add(new_transfer(TransferState.QUEUED)).id
    failed = journal.add(new_transfer(TransferState.FAILED)).id
    assert journal.clear_finished([done[0], done[1], waiting, failed]) == 2  # finished only
    shown = [r.id for r in journal.window_history(finished_kept=2)]
    assert shown == [done[3], done[4], waiting, failed]  # the newest two finished, not cleared
    assert len(journal.all()) == 7, "the history keeps every transfer"


def test_pause_counts_what_it_paused_and_leaves_what_waits_for_a_person(
    journal: Journal,
) -> None:
    queued = in_state(journal, TransferState.QUEUED)
    retrying = in_state(journal, TransferState.FAILED)  # transient: retries by itself
    bad_input = journal.add(
        dataclasses.replace(
            new_transfer(TransferState.FAILED),
            error=TransferError(ErrorKind.INPUT, "Not a regular file", "A FIFO."),
        )
    )
    in_state(journal, TransferState.DONE)
    assert journal.set_paused(None, True) == 2  # the queued one and the one retrying
    assert journal.set_paused(None, True) == 0  # nothing more to pause
    paused = {r.id: r.paused for r in journal.get_many([queued.id, retrying.id, bad_input.id])}
    assert paused == {queued.id: True, retrying.id: True, bad_input.id: False}
    assert journal.set_paused([queued.id], False) == 1
    assert journal.set_paused([queued.id], False) == 0
