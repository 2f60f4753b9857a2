"""The progress delegate as a person sees it: a bar filling from left to right."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QImage, QPainter, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QStyleOptionViewItem, QTableView
from pytestqt.qtbot import QtBot

from desktop_app.gui.models import ProgressRole
from desktop_app.gui.widgets import ProgressDelegate


def paint_bar(qtbot: QtBot, fraction: float) -> QImage:
    model = QStandardItemModel(1, 1)
    item = QStandardItem()
    item.setData(fraction, ProgressRole)
    model.setItem(0, 0, item)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    palette = view.palette()
    image = QImage(QSize(200, 30), QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.white)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, 200, 30)
    option.widget = view
    option.palette = palette
    painter = QPainter(image)
    ProgressDelegate().paint(painter, option, model.index(0, 0, QModelIndex()))
    painter.end()
    return image


def is_fill(image: QImage, x: int, y: int) -> bool:
    color = image.pixelColor(x, y)  # the style's highlight: clearly blue, not grey or white
    return color.blue() > color.red() + 80


def test_a_half_done_bar_fills_the_left_half_at_full_height(qtbot: QtBot) -> None:
    image = paint_bar(qtbot, 0.5)
    row = 8  # above the centred "50 %" text
    filled = [x for x in range(image.width()) if is_fill(image, x, row)]
    assert filled, "no fill colour painted"
    assert max(filled) < 110 and min(filled) < 20, (min(filled), max(filled))
    column = 40  # in the filled part, away from the text
    rows = [y for y in range(image.height()) if is_fill(image, column, y)]
    assert len(rows) >= 15, f"the fill is {len(rows)} px high: a bar filling bottom-up"
