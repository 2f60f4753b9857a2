"""Which transfer changes become notifications, and how often."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pytestqt.qtbot import QtBot

from desktop_app.core.journal.records import TransferError
from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.gui.main_window import MainWindow
from desktop_app.gui.notifier import (
    FAILURE_PAUSE,
    QUIET_SECONDS,
    BatchNotifier,
    Notification,
    NotificationKind,
)
from desktop_app.gui.status_panel import ANSWER_HOLD_MS


def snap(transfer_id: int, state: TransferState, name: str = "a.txt") -> TransferSnapshot:
    return TransferSnapshot(
        id=transfer_id,
        source_path=f"/home/ann/{name}",
        bucket="b",
        key=name,
        size=2_000_000,
        state=state,
        paused=False,
        attempts=1,
        sha256=None,
        duplicate_of=None,
        error=TransferError(ErrorKind.TRANSIENT, "Server busy", "The server said 503.")
        if state is TransferState.FAILED
        else None,
        retry_at=None,
        updated_at=datetime(2026, 11, 23, tzinfo=UTC),
    )


def test_history_from_the_journal_is_not_news() -> None:
    notifier = BatchNotifier()
    notifier.history_loaded(5)
    notifier.observe([snap(4, TransferState.FAILED), snap(5, TransferState.DONE)])
    assert notifier.tick(0, 0.0) == []
    assert notifier.tick(0, 100.0) == []


def test_nothing_before_history_is_known() -> None:
    notifier = BatchNotifier()
    notifier.observe([snap(1, TransferState.FAILED)])  # the start-up load, drained early
    notifier.history_loaded(1)
    assert notifier.tick(0, 0.0) == []
    assert notifier.tick(0, 10.0) == []


def test_a_batch_finishes_once_after_a_quiet_moment() -> None:
    notifier = BatchNotifier()
    notifier.history_loaded(0)
    notifier.observe([snap(1, TransferState.QUEUED), snap(2, TransferState.DONE)])
    assert notifier.tick(1, 0.0) == []
    notifier.observe([snap(1, TransferState.DONE)])
    assert notifier.tick(0, 1.0) == []  # not yet quiet long enough
    notes = notifier.tick(0, 1.0 + QUIET_SECONDS)
    assert [n.kind for n in notes] == [NotificationKind.FINISHED]
    assert notes[0].message == "2 file(s) uploaded and verified (4.0 MB)."
    assert notifier.tick(0, 100.0) == []  # said once


def test_failures_are_summed_and_spaced() -> None:
    notifier = BatchNotifier()
    notifier.history_loaded(0)
    notifier.observe([snap(1, TransferState.FAILED, "report.pdf")])
    first = notifier.tick(1, 0.0)
    assert [n.title for n in first] == ["Upload failed: report.pdf"]
    assert "Server busy" in first[0].message
    assert "Failed tab" in first[0].message
    notifier.observe([snap(2, TransferState.FAILED), snap(3, TransferState.FAILED)])
    assert notifier.tick(1, 1.0) == []  # too soon after the first
    later = notifier.tick(1, FAILURE_PAUSE)
    assert [n.title for n in later] == ["2 uploads failed"]
    # a retry that fails again is news again
    notifier.observe([dataclasses.replace(snap(1, TransferState.UPLOADING))])
    notifier.observe([snap(1, TransferState.FAILED, "report.pdf")])
    assert notifier.tick(0, 2 * FAILURE_PAUSE)[0].title == "Upload failed: report.pdf"
    finished = notifier.tick(0, 3 * FAILURE_PAUSE)
    assert finished[0].title == "Uploads finished with failures"
    assert "3 failed" in finished[0].message


def test_files_already_stored_are_not_said_to_be_uploaded() -> None:
    notifier = BatchNotifier()
    notifier.history_loaded(0)
    notifier.observe([snap(i, TransferState.DUPLICATE) for i in (1, 2, 3)])
    notes = notifier.tick(0, 0.0) + notifier.tick(0, QUIET_SECONDS)
    assert [n.message for n in notes] == ["3 already stored, nothing sent for them."]


def test_the_finished_batch_counts_only_the_failures_that_remain() -> None:
    """#34 item 7: a failure retried, or removed from the Failed list, is not counted."""
    notifier = BatchNotifier()
    notifier.history_loaded(0)
    notifier.observe([snap(1, TransferState.FAILED), snap(2, TransferState.FAILED)])
    assert notifier.tick(0, 0.0)[0].failed == 2
    notifier.observe([snap(1, TransferState.QUEUED), snap(2, TransferState.CANCELLED)])
    notifier.observe([snap(1, TransferState.DONE)])
    notes = notifier.tick(0, FAILURE_PAUSE) + notifier.tick(0, FAILURE_PAUSE + QUIET_SECONDS)
    assert [(n.title, n.failed) for n in notes] == [("Uploads finished", 0)]
    assert notes[0].message == "1 file(s) uploaded and verified (2.0 MB)."


def test_a_batch_notice_waits_until_a_persons_answer_has_been_read(
    weed_profile: Callable[..., None], qtbot: QtBot, window_for: Callable[[], MainWindow]
) -> None:
    """Skip's answer and the batch's notice came within a second: the answer was
    replaced before anyone could read it. Now it holds the status bar first."""
    weed_profile()
    window = window_for()
    window.backend.notice.emit("Skipped draft.doc.")
    window.notify(Notification(NotificationKind.FINISHED, "Uploads finished", "1 file(s)"))
    started = time.monotonic()
    bar = window.statusBar()
    assert bar.currentMessage() == "Skipped draft.doc."
    qtbot.waitUntil(lambda: bar.currentMessage().startswith("Uploads finished"), timeout=10_000)
    assert time.monotonic() - started >= ANSWER_HOLD_MS / 1000 - 0.2
    assert window.notifications[-1].title == "Uploads finished"  # kept at once all the same
