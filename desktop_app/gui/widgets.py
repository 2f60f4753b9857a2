"""Small widgets shared by the views."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QRect, QSize, Qt, QUrl
from PySide6.QtGui import QColor, QDesktopServices, QIcon, QPainter, QResizeEvent, QTextLayout
from PySide6.QtWidgets import (
    QApplication,
    QLineEdit,
    QPlainTextEdit,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QWidget,
)

from desktop_app.gui.models import ProgressRole

W = TypeVar("W", bound=QWidget)
MAX_DIALOG_HEIGHT = 740  # a 1366×768 screen, less a panel and a title bar
TITLE_BAR = 40  # room left above a window for the window manager's frame


def accessible(widget: W, name: str, description: str) -> W:
    """What assistive technology says of a control: its name (for a control with no
    words of its own, as a table or a field) and what it is for."""
    widget.setAccessibleName(name)
    widget.setAccessibleDescription(description)
    return widget


class OutputBox(QPlainTextEdit):
    """Read-only text that wraps and scrolls: every line of a result stays readable,
    however long, and can be selected and copied.

    ``whole``: the box grows and shrinks with its text as wrapped at its width, so
    every line is in sight without scrolling (a few lines to copy, as the sandbox's).
    """

    def __init__(self, lines: int, placeholder: str = "", *, whole: bool = False) -> None:
        super().__init__()
        self.lines = lines
        self.whole = whole
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setPlaceholderText(placeholder)
        self.setMinimumHeight(self._height_of(min(lines, 3)))
        if whole:
            # Never needed, and one that comes and goes changes the width, so the wrapping.
            self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.document().documentLayout().documentSizeChanged.connect(self._fit_text)

    def wrapped_lines(self) -> int:
        """How many lines the text takes at the box's width, once wrapped (laid out
        here: the box's own layout of a line out of sight may be of another width)."""
        width = self.viewport().width() - 2 * self.document().documentMargin()
        option = self.document().defaultTextOption()
        count = 0
        for text in self.toPlainText().split("\n"):
            layout = QTextLayout(text, self.font())
            layout.setTextOption(option)
            layout.beginLayout()
            while (line := layout.createLine()).isValid():
                line.setLineWidth(width)
                count += 1
            layout.endLayout()
            count += not text  # an empty line is a line
        return count

    def _fit_text(self) -> None:
        lines = self.wrapped_lines()
        if lines != self.lines:
            self.lines = lines
            self.setMinimumHeight(self._height_of(lines))
            self.updateGeometry()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.whole:
            self._fit_text()  # a new width wraps the text anew

    def _height_of(self, lines: int) -> int:
        margins = self.contentsMargins()
        document = round(2 * self.document().documentMargin())
        return (
            self.fontMetrics().lineSpacing() * lines + document + margins.top() + margins.bottom()
        )

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self._height_of(self.lines))


def fit_to_screen(window: QWidget, *, min_width: int) -> None:
    """Size a dialog to its contents when it is first shown: at least ``min_width``
    wide, at most MAX_DIALOG_HEIGHT tall and never past the screen's free area.
    (Qt's own first size stops at two thirds of the screen, squeezing the content.)"""
    free = window.screen().availableGeometry()
    width = min(max(window.sizeHint().width(), min_width), free.width())
    wanted = window.heightForWidth(width)
    if wanted <= 0:
        wanted = window.sizeHint().height()
    window.resize(width, min(wanted, MAX_DIALOG_HEIGHT, free.height() - TITLE_BAR))
    parent = window.parentWidget()
    if parent is not None and not window.testAttribute(Qt.WidgetAttribute.WA_Moved):
        # Qt's own placement (QDialog.adjustPosition) under icewm at 1366×768 put
        # the title bar of a dialog as tall as its parent above the screen's top,
        # where it could be neither read nor dragged: placed here instead, before
        # the window is shown (a move after that is taken as the inside's place).
        window.move(dialog_position(parent.window().frameGeometry(), window.size(), free))


FIRST_WINDOW_SHARE = 0.75  # of the screen's free area, for a window with no saved size
FIRST_WINDOW_MIN = QSize(1200, 600)


def first_window_geometry(free: QRect) -> QRect:
    """Where the main window goes the first time: three quarters of the screen's free
    area, never below 1200×600 unless the screen is smaller, centred. (A fixed
    1000×600 sat small in a corner of a 1920×1080 screen, and at 1366×768 the Failed
    list scrolled sideways.)"""
    width = min(
        free.width(), max(FIRST_WINDOW_MIN.width(), round(free.width() * FIRST_WINDOW_SHARE))
    )
    height = min(
        free.height() - TITLE_BAR,
        max(FIRST_WINDOW_MIN.height(), round(free.height() * FIRST_WINDOW_SHARE)),
    )
    left = free.left() + (free.width() - width) // 2
    top = free.top() + TITLE_BAR + (free.height() - TITLE_BAR - height) // 2
    return QRect(left, top, width, height)


def dialog_position(parent: QRect, size: QSize, free: QRect) -> QPoint:
    """Where a dialog of SIZE goes (its frame's top left): centred on its PARENT
    window, inside the screen's FREE area with TITLE_BAR of room above it."""
    height = size.height() + TITLE_BAR
    x = parent.center().x() - size.width() // 2
    y = parent.center().y() - height // 2
    x = max(free.left(), min(x, free.right() + 1 - size.width()))
    y = max(free.top(), min(y, free.bottom() + 1 - height))
    return QPoint(x, y)


def tinted(icon: QIcon, color: QColor) -> QIcon:
    """A one-colour icon drawn in COLOR (its shape kept, every pixel's colour replaced)."""
    made = QIcon()
    for size in icon.availableSizes() or [QSize(16, 16), QSize(32, 32)]:
        pixmap = icon.pixmap(size)
        painter = QPainter(pixmap)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
        painter.fillRect(pixmap.rect(), color)
        painter.end()
        made.addPixmap(pixmap)
    return made


def fit_placeholder(edit: QLineEdit) -> None:
    """Make a line edit at least wide enough to show its placeholder in full."""
    text = edit.placeholderText()
    if text:
        padding = 4 * edit.fontMetrics().averageCharWidth()  # frame and text margins
        edit.setMinimumWidth(edit.fontMetrics().horizontalAdvance(text) + padding)


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
