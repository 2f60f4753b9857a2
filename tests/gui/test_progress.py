"""What the window says of progress (#34 items 5, 6, 11).

The batch counts every file queued, small ones sent before the list saw them
included; a row, the batch and the totals count the same bytes; a server that
stops answering is said to, in the row and the status bar, instead of a speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pytestqt.qtbot import QtBot

from desktop_app.core.model.events import TransferProgress, TransferSnapshot
from desktop_app.core.model.states import TransferState
from desktop_app.gui.bridge import SnapshotBatch
from desktop_app.gui.models import Column, TransferTableModel
from tests.faults import Fault, FaultProxy, is_part_upload
from tests.gui.test_main_window import drop
from tests.unit.runtime.test_throughput import Clock

MIB = 1024 * 1024


def snap(transfer_id: int, state: TransferState, size: int) -> TransferSnapshot:
    return TransferSnapshot(
        id=transfer_id, source_path=f"/home/ann/f{transfer_id}", bucket="b",
        key=f"f{transfer_id}", size=size, state=state, paused=False, attempts=0, sha256=None,
        duplicate_of=None, error=None, retry_at=None, updated_at=datetime.now(UTC),
    )  # fmt: skip


def test_small_files_sent_before_the_list_saw_them_count_in_the_batch(qtbot: QtBot) -> None:
    """Item 5: '12/13 files … of 315.2 MB' for 21 files of 315.6 MB."""
    clock = Clock()
    model = TransferTableModel(clock)
    model.history_loaded(3)
    history = (snap(2, TransferState.DONE, 5 * MIB), snap(3, TransferState.QUEUED, 1000))
    model.upsert(SnapshotBatch(history))  # at start: only the unfinished one is news
    assert (model.totals().batch.files, model.totals().batch.bytes_total) == (1, 1000)
    model.upsert(SnapshotBatch((snap(3, TransferState.DONE, 1000),)))
    clock.now += 60  # idle: that batch is over
    small = tuple(snap(n, TransferState.DONE, 50_000) for n in range(4, 12))
    model.upsert(SnapshotBatch(small))  # sent between two updates of the list
    clock.now += 0.5
    rest = tuple(snap(n, TransferState.QUEUED, 25_000_000) for n in range(12, 25))
    model.upsert(SnapshotBatch(rest))
    batch = model.totals().batch
    assert (batch.files_settled, batch.files) == (8, 21)
    assert (batch.bytes_done, batch.bytes_total) == (8 * 50_000, 8 * 50_000 + 13 * 25_000_000)


def test_a_row_the_batch_and_the_totals_count_the_same_bytes(qtbot: QtBot) -> None:
    """Item 11: one count, the bytes the connection took, for all three."""
    clock = Clock()
    model = TransferTableModel(clock)
    model.history_loaded(0)
    model.upsert(SnapshotBatch((snap(1, TransferState.UPLOADING, 100 * MIB),)))
    for second in range(12):
        clock.now += 1.0
        done = (second + 1) * 4 * MIB
        model.set_progress(TransferProgress(1, done, 100 * MIB, 0, sending=True))
    [row] = model.snapshots()
    totals = model.totals()
    assert model.fraction_done(row) == totals.batch.fraction == 48 / 100
    assert totals.remaining_bytes == 52 * MIB
    assert model.index(0, Column.PROGRESS).data() == "48 %"
    assert totals.rate == model.rate(row)
    assert totals.rate.seconds_left == 13.0


def test_a_silent_server_is_said_in_the_row_and_the_totals_instead_of_a_speed(
    qtbot: QtBot,
) -> None:
    """Item 6: 15 s without a byte taken or an answer, while a request is out."""
    clock = Clock()
    model = TransferTableModel(clock)
    model.upsert(SnapshotBatch((snap(1, TransferState.UPLOADING, 100 * MIB),)))
    for second in range(5):
        clock.now += 1.0
        model.set_progress(TransferProgress(1, second * 8 * MIB, 100 * MIB, 0, sending=True))
    cells = [Column.SPEED, Column.ETA, Column.STATE]
    shown = [model.index(0, c).data() for c in cells]
    assert shown == ["8.4 MB/s", "9 s", "Uploading"]  # 68 MiB left at 8 MiB/s: 8.5 s
    changed: list[int] = []
    model.dataChanged.connect(lambda first, _last: changed.append(first.row()))
    clock.now += 14.0
    model.refresh_running()
    assert changed == [0], "a sending row is repainted each tick: its speed falls"
    assert model.index(0, Column.SPEED).data() == "599.2 KB/s", "8.4 MB/s, falling"
    assert model.totals().silent is None
    clock.now += 1.0
    model.refresh_running()
    assert [model.index(0, c).data() for c in cells] == [
        "no answer for 15 s",
        "",
        "Waiting for the server",
    ]
    assert model.totals().silent == 15.0
    assert model.totals().rate.bytes_per_second is None
    clock.now += 5.5
    model.refresh_running()
    assert model.index(0, Column.SPEED).data() == "no answer for 20 s"
    assert "Waiting for the server (no answer for 20 s)" in model.index(0, 0).data(
        3  # Qt.ItemDataRole.ToolTipRole
    )
    model.set_progress(TransferProgress(1, 33 * MIB, 100 * MIB, 0, sending=True))
    assert model.index(0, Column.STATE).data() == "Uploading"


def test_the_window_says_waiting_for_the_server_when_every_answer_is_held(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    qtbot: QtBot,
    window_for: object,
    tmp_path: Path,
) -> None:
    """Done when: the fault proxy holds every answer for 30 s; the row says
    'Waiting for the server' within 20 s, and the status bar with it."""
    proxy_profile(part_size=5 * MIB, concurrency=2)
    big = tmp_path / "video.bin"
    big.write_bytes(bytes(range(256)) * (4 * 1024 * 24))  # 24 MiB: five parts
    proxy.faults.append(Fault(is_part_upload, "delay", times=100, delay=30.0))
    window = window_for()  # type: ignore[operator]
    drop(window, [big])
    dropped = time.monotonic()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    state = window.transfers_view.proxy.index(0, Column.STATE)
    qtbot.waitUntil(lambda: state.data() == "Waiting for the server", timeout=20_000)
    waited = time.monotonic() - dropped
    print(f"'Waiting for the server' {waited:.1f} s after the drop")
    assert 15.0 <= waited <= 20.0, waited
    speed = window.transfers_view.proxy.index(0, Column.SPEED).data()
    assert speed.startswith("no answer for 1"), speed
    assert speed.endswith(" s"), speed
    qtbot.waitUntil(
        lambda: "Waiting for the server (no answer for" in window.status_panel.totals_label.text(),
        timeout=2_000,
    )
    window.grab().save(str(tmp_path / "waiting.png"))
    proxy.go_down()  # the held requests fail at once: the window closes without waiting
