"""The progress delegate as a person sees it, and the Qt binding it rests on."""

from __future__ import annotations

import sys
from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QColor,
    QImage,
    QPainter,
    QPalette,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem, QTableView
from pytestqt.qtbot import QtBot

from desktop_app.gui.main_window import MainWindow
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
    assert max(filled) < 110, (min(filled), max(filled))
    assert min(filled) < 20, (min(filled), max(filled))
    column = 40  # in the filled part, away from the text
    rows = [y for y in range(image.height()) if is_fill(image, column, y)]
    assert len(rows) >= 15, f"the fill is {len(rows)} px high: a bar filling bottom-up"


def test_the_qt_binding_keeps_its_references_across_signals(qtbot: QtBot) -> None:
    """PySide6 6.12.0 dropped a reference to None or True each time a timer or
    signal reached a Python slot; the window's timers fire about 17 times a
    second, so after minutes Python freed None ("none_dealloc") and crashed, or
    at exit ("bool_dealloc"). Ferry must never run on such a binding."""
    timer = QTimer()
    hits: list[int] = []
    timer.timeout.connect(lambda: hits.append(1))
    before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(500):
        timer.timeout.emit()
    timer.setInterval(1)
    timer.start()
    qtbot.waitUntil(lambda: len(hits) >= 700, timeout=10_000)
    timer.stop()
    after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    # Counts may grow (objects made meanwhile hold None); they must never fall.
    assert all(a >= b - 10 for a, b in zip(after, before, strict=True)), (before, after)


def glyph_lightness(action: QAction) -> float:
    """How light the drawn pixels of an action's 16 px icon are, 0 to 255."""
    image = action.icon().pixmap(16, 16).toImage()
    seen = [
        image.pixelColor(x, y)
        for x in range(image.width())
        for y in range(image.height())
        if image.pixelColor(x, y).alpha() > 128
    ]
    assert seen, action.text()
    return sum(color.lightness() for color in seen) / len(seen)


def test_pause_and_resume_glyphs_can_be_seen_on_a_dark_palette(
    weed_profile: Callable[[], None], qtbot: QtBot, window_for: Callable[[], MainWindow]
) -> None:
    # The README's dark screenshot under icewm: Pause all and Resume all were
    # black glyphs on the dark toolbar.
    weed_profile()
    window = window_for()
    glyphs = (window.window_actions.pause_all, window.window_actions.resume_all)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    light = app.palette()
    dark = QPalette(light)
    for role, color in (
        (QPalette.ColorRole.Window, "#2b2b2b"),
        (QPalette.ColorRole.Button, "#353535"),
        (QPalette.ColorRole.ButtonText, "#e6e6e6"),
        (QPalette.ColorRole.WindowText, "#e6e6e6"),
    ):
        dark.setColor(role, QColor(color))
    try:
        app.setPalette(dark)
        qtbot.waitUntil(lambda: all(glyph_lightness(a) > 160 for a in glyphs), timeout=5_000)
    finally:
        app.setPalette(light)
    qtbot.waitUntil(lambda: all(glyph_lightness(a) < 100 for a in glyphs), timeout=5_000)
