"""Small widgets shared by the views."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
)

from desktop_app.gui.models import ProgressRole


def show_in_folder(source_path: str) -> None:
    """Open the folder that holds a transfer's local file in the file manager."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(source_path).parent)))


class ProgressDelegate(QStyledItemDelegate):
    """Paints a progress bar from the model's ProgressRole (a fraction 0..1)."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        fraction = index.data(ProgressRole)
        if not isinstance(fraction, float):
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum = 0
        bar.maximum = 1000
        bar.progress = int(fraction * 1000)
        bar.text = f"{fraction * 100:.0f} %"
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        # The item's state lacks State_Horizontal, without which styles draw
        # the bar filling from the bottom up.
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)
