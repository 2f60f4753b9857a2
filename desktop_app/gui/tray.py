"""Ferry's icon by the clock: its state, its menu, its words and its messages.

Promises: without a tray on the desktop when the window is built there is no
icon (``icon`` is None) and every method does nothing, so the window asks no
question about it; the icon changes only when the state does (error over
uploading over paused over idle); ``in_use`` asks the desktop again, since a
panel may come or go while Ferry runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from desktop_app.gui.models import Totals
from desktop_app.gui.notifier import Notification, NotificationKind
from desktop_app.resources import TrayState, tray_icon_svg


def system_tray_available() -> bool:
    """Whether the desktop shows tray icons now (a panel may come or go)."""
    return QSystemTrayIcon.isSystemTrayAvailable()


def tray_state(totals: Totals) -> TrayState:
    """What the icon shows: a failure first, then uploads running, then paused ones."""
    if totals.failed:
        return TrayState.ERROR
    if totals.active:
        return TrayState.UPLOADING
    return TrayState.PAUSED if totals.paused else TrayState.IDLE


class Tray:
    """The tray icon of the window ``parent``, if the desktop has a tray.

    Its menu is "Show Ferry" (``show``) and then ``items`` (None: a separator);
    a click on the icon calls ``show`` too.
    """

    def __init__(
        self, parent: QWidget, show: Callable[[], None], items: Sequence[QAction | None]
    ) -> None:
        self.icons = {state: QIcon(str(tray_icon_svg(state))) for state in TrayState}
        self.state = TrayState.IDLE
        self._show = show
        self.icon = self._build(parent, items) if system_tray_available() else None

    def _build(self, parent: QWidget, items: Sequence[QAction | None]) -> QSystemTrayIcon:
        icon = QSystemTrayIcon(self.icons[TrayState.IDLE], parent)
        menu = QMenu(parent)
        menu.addAction("&Show Ferry", self._show)
        for item in items:
            if item is None:
                menu.addSeparator()
            else:
                menu.addAction(item)
        icon.setContextMenu(menu)
        icon.setToolTip("Ferry")
        icon.activated.connect(self._activated)
        icon.show()
        return icon

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason is QSystemTrayIcon.ActivationReason.Trigger:
            self._show()

    def in_use(self) -> bool:
        """An icon that the desktop shows now: closing the window may leave Ferry in it."""
        return self.icon is not None and system_tray_available()

    def show_totals(self, totals: Totals, words: str) -> None:
        """The icon of this state and the totals (``words``) in its tooltip."""
        self._set_state(tray_state(totals))
        if self.icon is not None:
            self.icon.setToolTip("Ferry: " + words)

    def _set_state(self, state: TrayState) -> None:
        if state is self.state:
            return
        self.state = state
        if self.icon is not None:
            self.icon.setIcon(self.icons[state])

    def show_message(self, note: Notification) -> None:
        """A desktop notification (a warning for failures)."""
        if self.icon is None:
            return
        icon = (
            QSystemTrayIcon.MessageIcon.Warning
            if note.kind is NotificationKind.FAILED
            else QSystemTrayIcon.MessageIcon.Information
        )
        self.icon.showMessage(note.title, note.message, icon, 10_000)

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()
