"""The Transfers model: at most 1,000 finished rows, Clear finished, the batch."""

from __future__ import annotations

from datetime import UTC, datetime

from pytestqt.qtbot import QtBot

from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.host import FINISHED_KEPT
from desktop_app.gui.bridge import SnapshotBatch
from desktop_app.gui.models import TransferTableModel
from desktop_app.gui.notifier import QUIET_SECONDS
from tests.unit.runtime.test_throughput import Clock


def snap(transfer_id: int, state: TransferState) -> TransferSnapshot:
    return TransferSnapshot(
        id=transfer_id, source_path=f"/home/ann/f{transfer_id}.txt", bucket="b",
        key=f"f{transfer_id}.txt", size=1000, state=state, paused=False, attempts=0,
        sha256=None, duplicate_of=None, error=None, retry_at=None,
        updated_at=datetime(2026, 11, 23, tzinfo=UTC),
    )  # fmt: skip


def test_finished_rows_are_capped_and_cleared_while_unfinished_ones_stay(qtbot: QtBot) -> None:
    clock = Clock()
    model = TransferTableModel(clock)
    model.upsert(SnapshotBatch(tuple(snap(i, TransferState.QUEUED) for i in range(1, 11))))
    finished = tuple(snap(i, TransferState.DONE) for i in range(11, 11 + FINISHED_KEPT + 200))
    model.upsert(SnapshotBatch(finished))
    kept = [s for s in model.snapshots() if s.state.finished]
    assert len(kept) == FINISHED_KEPT, "the oldest finished leave"
    assert kept[0].id == 11 + 200, "the oldest finished leave"
    assert sum(1 for s in model.snapshots() if not s.state.finished) == 10
    batch = model.totals().batch
    assert (batch.files_settled, batch.files) == (0, 10)  # the queued ten are the batch
    model.upsert(SnapshotBatch(tuple(snap(i, TransferState.DONE) for i in range(1, 6))))
    batch = model.totals().batch
    assert (batch.files_settled, batch.files, batch.bytes_done) == (5, 10, 5000)
    cleared = model.remove_finished()
    assert len(cleared) == FINISHED_KEPT + 5
    assert model.rowCount() == 5
    assert model.totals().finished == 0
    model.upsert(SnapshotBatch(tuple(snap(i, TransferState.DONE) for i in range(6, 11))))
    clock.now += QUIET_SECONDS  # nothing in progress this long: the batch is over
    model.upsert(SnapshotBatch((snap(5000, TransferState.QUEUED),)))
    batch = model.totals().batch
    assert (batch.files_settled, batch.files) == (0, 1), "a new batch after the last settled"


def test_remove_from_list_removes_only_the_chosen_finished_rows(qtbot: QtBot) -> None:
    model = TransferTableModel()
    model.upsert(SnapshotBatch((snap(1, TransferState.DONE), snap(2, TransferState.DONE))))
    model.upsert(SnapshotBatch((snap(3, TransferState.QUEUED), snap(4, TransferState.CANCELLED))))
    assert model.remove_finished([1, 3, 4]) == [1, 4]  # 3 is not finished: it stays
    assert [s.id for s in model.snapshots()] == [2, 3]


def test_finished_transfers_sent_again_after_leaving_the_list_stay_out(qtbot: QtBot) -> None:
    """#34 item 4: Pause all re-sends every transfer in the journal, cleared ones too."""
    model = TransferTableModel()
    history = (snap(3, TransferState.DONE), snap(5, TransferState.QUEUED))  # 1, 2, 4 cleared
    model.upsert(SnapshotBatch(history))
    assert model.remove_finished() == [3]
    everything = tuple(snap(i, TransferState.DONE) for i in range(1, 5))
    model.upsert(SnapshotBatch((*everything, snap(5, TransferState.QUEUED))))
    assert [s.id for s in model.snapshots()] == [5]
    # a new transfer may be finished when first seen (tiny, or already stored)
    model.upsert(SnapshotBatch((snap(6, TransferState.DUPLICATE), snap(5, TransferState.DONE))))
    assert [s.id for s in model.snapshots()] == [5, 6]


def test_settled_once_every_transfer_is_seen_and_ended(qtbot: QtBot) -> None:
    model = TransferTableModel()
    model.upsert(SnapshotBatch((snap(1, TransferState.QUEUED),)))
    assert not model.settled([1, 2])  # 2 not seen yet
    model.upsert(SnapshotBatch((snap(1, TransferState.DONE), snap(2, TransferState.FAILED))))
    assert model.settled([1, 2])
    model.remove_finished()
    assert model.settled([1, 2])
