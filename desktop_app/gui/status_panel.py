"""What the main window's status bar says, tick by tick.

Left, a message (a notice, a notification, a person's answer) over the lasting
line; right, why uploads wait for the system, the batch bar and the totals in
words. Promises: a message that went stale (a notice of queued files once they
are sent, of failures once none remain) is withdrawn at the next tick; a
person's answer (what Skip, Replace, Retry did) stays ``ANSWER_HOLD_MS`` before
a notification takes its place; the batch bar and the totals keep their place
while their text changes every tick. Reads only the totals it is given: no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QProgressBar

from desktop_app.gui.models import Totals, waiting_text
from desktop_app.gui.notifier import Notification
from desktop_app.gui.status_bar import ElidedLabel, StatusBar
from desktop_app.gui.units import human_duration, human_size
from desktop_app.gui.widgets import accessible

HELD_LABEL_MAX_WIDTH = 360  # "Uploads paused: …" leaves the messages their room
# A person's answer (what Skip, Replace, Retry did) stays this long before a
# batch's notice may take its place: both came within a second, and the
# answer was gone before anyone could read it.
ANSWER_HOLD_MS = 5000
BATCH_DESCRIPTION = "Files settled and bytes stored since the list was last idle"


def totals_words(totals: Totals) -> list[str]:
    """The totals in words, one part each: "2 active", "1.2 GB to go at …", "1 failed"."""
    active, failed = totals.active, totals.failed
    parts = [f"{active} active"] if active else []
    if totals.paused:
        parts.append(f"{totals.paused} paused")
    speed, left = totals.rate.bytes_per_second, totals.rate.seconds_left
    if active:
        going = f"{human_size(totals.remaining_bytes)} to go"
        if speed:
            going += f" at {human_size(speed)}/s"
        if left is not None:
            going += f", about {human_duration(left)} left"
        parts.append(going)
    if totals.silent is not None:
        parts.append(waiting_text(totals.silent))
    if failed:
        parts.append(f"{failed} failed")
    return parts


class StatusPanel:
    """The status bar (``bar``) and the widgets it carries on the right."""

    def __init__(self) -> None:
        self.bar = StatusBar()
        self.bar.set_lasting("Connecting…")
        # The status bar's message and when it is stale (a notice of queued files
        # once they are sent, of failures once none remain), checked each tick.
        self._stale_when: tuple[str, Callable[[Totals], bool]] | None = None
        self._answer_until = 0.0  # monotonic: a person's answer holds the status bar till then
        self.held_label = ElidedLabel("")
        self.held_label.setStyleSheet("font-weight: bold")
        self.held_label.setMaximumWidth(HELD_LABEL_MAX_WIDTH)
        self.held_label.hide()
        self.totals_label = QLabel("")
        self.totals_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.batch_bar = QProgressBar()
        self.batch_bar.setRange(0, 1000)
        self.batch_bar.setTextVisible(True)
        self.batch_bar.hide()
        self.bar.addPermanentWidget(self.held_label)
        self.bar.addPermanentWidget(self.batch_bar)
        self.bar.addPermanentWidget(self.totals_label)
        # Progress and state are text for screen readers: the labels' words and
        # the batch bar's description (see show_totals).
        accessible(self.batch_bar, "Batch progress", BATCH_DESCRIPTION)
        self.totals_label.setAccessibleDescription("Uploads running, paused and failed, in words")
        self.held_label.setAccessibleDescription("Why uploads wait for the system")

    # -- messages -------------------------------------------------------------------

    def show_answer(self, text: str) -> None:
        """A person's answer (the backend's notice): held for ``ANSWER_HOLD_MS``."""
        self.bar.showMessage(text, 8000)
        self._answer_until = time.monotonic() + ANSWER_HOLD_MS / 1000

    def show_held_back(self, why: str) -> None:
        # Stays in view (a notice fades): the uploads wait for the system, not for Ferry.
        self.held_label.setText(f"Uploads paused: {why}" if why else "")
        self.held_label.setVisible(bool(why))

    def show_note(self, note: Notification) -> None:
        """The notice in the status bar, once no person's answer holds it."""
        wait = self._answer_until - time.monotonic()
        if wait > 0:
            QTimer.singleShot(int(wait * 1000) + 1, self.bar, lambda: self.show_note(note))
            return
        self.show_message(
            f"{note.title}: {note.message}",
            15_000,
            (lambda totals: not totals.failed) if note.failed else None,
        )

    def show_message(
        self, text: str, timeout_ms: int, stale_when: Callable[[Totals], bool] | None = None
    ) -> None:
        """A message in the status bar for a while, withdrawn sooner once ``stale_when``."""
        self.bar.showMessage(text, timeout_ms)
        self._stale_when = None if stale_when is None else (text, stale_when)

    def _withdraw_stale_message(self, totals: Totals) -> None:
        if self._stale_when is None:
            return
        text, stale = self._stale_when
        if self.bar.currentMessage() != text:
            self._stale_when = None  # another message took its place, or it timed out
        elif stale(totals):
            self.bar.clearMessage()
            self._stale_when = None

    # -- the totals, each tick ----------------------------------------------------------

    def show_totals(self, totals: Totals, words: str) -> None:
        """The batch bar and the totals (``words``) of this tick; a stale message goes."""
        self._show_batch(totals)
        self._withdraw_stale_message(totals)
        self._set_totals(words)
        self._say_batch()

    def _set_totals(self, text: str) -> None:
        """The totals keep the widest width they needed while busy (their text changes
        every tick; the widgets beside them stay put) and let it go when idle."""
        self.totals_label.setText(text)
        needed = self.totals_label.fontMetrics().horizontalAdvance(text) + 8
        if text == "Idle" or needed > self.totals_label.minimumWidth():
            self.totals_label.setMinimumWidth(needed)

    def _show_batch(self, totals: Totals) -> None:
        """The batch bar: files and bytes of what was queued since the list was idle."""
        batch = totals.batch
        if not batch.files or (batch.files_settled == batch.files and not totals.active):
            self.batch_bar.hide()
            return
        self.batch_bar.setValue(round(batch.fraction * 1000))
        text = (
            f"{batch.files_settled}/{batch.files} files · "
            f"{human_size(batch.bytes_done)} of {human_size(batch.bytes_total)}"
        )
        self.batch_bar.setFormat(text)
        # As wide as the longest text of this batch, not this text: the bar stays put.
        nines = "9" * len(str(batch.files))
        widest = f"{nines}/{nines} files · 999.9 MB of 999.9 MB"
        self.batch_bar.setFixedWidth(self.bar.fontMetrics().horizontalAdvance(widest) + 24)
        self.batch_bar.show()

    def _say_batch(self) -> None:
        # A progress bar's value reaches a screen reader as a number (per mille
        # here); its words ("3/4 files · 1.1 GB of 1.3 GB") go in its description,
        # after each tick has set them.
        words = self.batch_bar.text() if self.batch_bar.isVisible() else ""
        description = words or BATCH_DESCRIPTION
        if self.batch_bar.accessibleDescription() != description:
            self.batch_bar.setAccessibleDescription(description)
