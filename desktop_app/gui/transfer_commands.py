"""What a person does to transfers: queue, pause, resume, retry, cancel, clear.

The same commands serve the menus, the toolbar, the tray, the Transfers tab's
context menu and a drop on the window. Each posts one call to the engine
(:meth:`Backend.call`; the GUI thread waits for nothing) and says what it did
in the status bar when the answer comes: "3 transfer(s) paused.". The message
of a queueing goes as soon as what it queued has settled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.backend import Backend
from desktop_app.gui.models import TransferTableModel
from desktop_app.gui.status_panel import StatusPanel


class TransferCommands:
    """The person's commands on the transfers of ``model``, sent through ``backend``.

    ``ids`` None means every transfer the command applies to (Pause all, ...).
    """

    def __init__(self, backend: Backend, model: TransferTableModel, status: StatusPanel) -> None:
        self.backend = backend
        self.model = model
        self.status = status

    def queue_paths(self, paths: list[Path]) -> None:
        if paths:
            self.backend.call(Ferry.queue, paths).then(self._queued)
            self.status.bar.showMessage(f"Queuing {len(paths)} item(s)…", 4000)

    def _queued(self, records: list[TransferRecord]) -> None:
        ids = [record.id for record in records]
        self.status.show_message(
            f"Queued {len(ids)} file(s).",
            8000,
            (lambda _totals: self.model.settled(ids)) if ids else None,
        )

    def pause(self, ids: list[int] | None) -> None:
        self.backend.call(Ferry.pause, ids).then(self._counted("paused"))

    def unpause(self, ids: list[int] | None) -> None:
        self.backend.call(Ferry.unpause, ids).then(self._counted("resumed"))

    def retry(self, ids: list[int] | None) -> None:
        self.backend.call(Ferry.retry, ids).then(lambda done: self._counted("retrying")(len(done)))

    def cancel(self, ids: list[int]) -> None:
        self.backend.call(Ferry.cancel, ids).then(
            lambda done: self._counted("cancelled")(len(done))
        )

    def _counted(self, verb: str) -> Callable[[int], None]:
        return lambda count: self.backend.notice.emit(f"{count} transfer(s) {verb}.")

    def clear_finished(self) -> None:
        """Clear finished: the done, already-stored and cancelled rows leave the list."""
        ids = self.model.remove_finished()
        if ids:
            self.backend.call(Ferry.clear_finished, ids)

    def remove_from_list(self, ids: list[int]) -> None:
        """Hide these finished transfers (Ferry's history keeps them)."""
        self.backend.call(Ferry.clear_finished, self.model.remove_finished(ids))
