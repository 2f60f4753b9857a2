"""The Watched folders view: what a person reads about each folder."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pytestqt.qtbot import QtBot

from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.watcher import FolderStatus, WatchedFolder
from desktop_app.gui.backend import Backend
from desktop_app.gui.bridge import EngineBridge, SnapshotBatch
from desktop_app.gui.main_window import MainWindow
from desktop_app.gui.models import TransferTableModel
from desktop_app.gui.views.folders_view import FoldersView
from tests.gui.conftest import live_row


def transfer(transfer_id: int, source: Path, state: TransferState) -> TransferSnapshot:
    return TransferSnapshot(
        id=transfer_id, source_path=str(source), bucket="b", key=source.name, size=1000,
        state=state, paused=False, attempts=0, sha256=None, duplicate_of=None, error=None,
        retry_at=None, updated_at=datetime(2026, 12, 2, tzinfo=UTC),
    )  # fmt: skip


def test_files_queued_counts_what_is_not_uploaded_yet(
    qtbot: QtBot, ferry_env: Environment, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    folder = WatchedFolder(inbox)
    backend = Backend(ferry_env, None, EngineBridge())  # not started: statuses given below
    transfers = TransferTableModel()
    view = FoldersView(backend, transfers)
    qtbot.addWidget(view)
    view.show()
    # The watcher has handed over four files since it started.
    backend._folder_statuses = (FolderStatus(folder, mode="native events", queued=4),)
    backend.foldersChanged.emit()
    transfers.upsert(
        SnapshotBatch(
            (
                transfer(1, inbox / "a.pdf", TransferState.UPLOADING),
                transfer(2, inbox / "sub" / "b.pdf", TransferState.QUEUED),
                transfer(3, inbox / "c.pdf", TransferState.FAILED),
                transfer(4, inbox / "d.pdf", TransferState.DONE),
                transfer(5, tmp_path / "dropped.pdf", TransferState.QUEUED),  # not the folder's
            )
        )
    )

    def cell() -> str:
        view.refresh()  # as its one-second timer does
        column = view.HEADERS.index("Not yet uploaded")
        header = view.table.horizontalHeaderItem(column)
        assert header is not None
        assert header.text() == "Not yet uploaded"
        item = view.table.item(0, column)
        assert item is not None
        return item.text()

    assert cell() == "2 (1 failed)"
    # The two are sent (one found already stored): they leave the count.
    transfers.upsert(
        SnapshotBatch(
            (
                transfer(1, inbox / "a.pdf", TransferState.DONE),
                transfer(2, inbox / "sub" / "b.pdf", TransferState.DUPLICATE),
            )
        )
    )
    assert cell() == "0 (1 failed)"
    # The failed one is retried and sent: nothing from the folder is left to upload.
    transfers.upsert(SnapshotBatch((transfer(3, inbox / "c.pdf", TransferState.DONE),)))
    assert cell() == "0"
    column = view.HEADERS.index("Not yet uploaded")
    item = view.table.item(0, column)
    assert item is not None
    assert "4 file(s) were queued from it" in item.toolTip()


def test_a_watched_folders_files_leave_the_count_once_uploaded(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: Callable[[], MainWindow],
    ferry_env: Environment,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("a.txt", "b.txt"):
        (inbox / name).write_text(f"the file {name}\n")
    window = window_for()
    view = window.folders_view
    window.backend.call(Ferry.set_watched_folders, [WatchedFolder(inbox, prefix="in")])
    column = view.HEADERS.index("Not yet uploaded")

    def shown() -> str:
        item = view.table.item(0, column) if view.table.rowCount() else None
        return item.text() if item else ""

    qtbot.waitUntil(lambda: live_row(ferry_env, bucket, "in/b.txt") is not None, timeout=60_000)
    qtbot.waitUntil(lambda: live_row(ferry_env, bucket, "in/a.txt") is not None, timeout=60_000)
    qtbot.waitUntil(lambda: window.model.settled({s.id for s in window.model.snapshots()}))
    qtbot.waitUntil(lambda: shown() == "0", timeout=5_000)  # both uploaded: none left
