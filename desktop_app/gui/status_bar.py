"""The main window's status bar: messages that elide, widgets that keep their place.

Qt's own status bar cuts a message that does not fit in the middle of a word
("… Open Ferry's Failed t") and lays its permanent widgets out at the width
of their text of the moment, so a bar whose text changes every tick moves the
widgets beside it. Here a message (or, without one, the lasting line: how
Ferry is connected) is shown in an :class:`ElidedLabel`, ending in "…" with the
whole text in its tooltip; the widgets on the right are sized to what they may
say, not to what they say now.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QStatusBar, QWidget


class ElidedLabel(QLabel):
    """One line of plain text, cut with "…" at the width it is given; the whole text
    in the tooltip when cut. ``text()`` is the whole text, ``shown_text()`` the line
    a person sees."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self.updateGeometry()
        self._elide()

    def text(self) -> str:
        return self._full

    def shown_text(self) -> str:
        return super().text()

    def sizeHint(self) -> QSize:
        margins = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance(self._full) + margins.left() + margins.right()
        return QSize(width, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(
            self.fontMetrics().horizontalAdvance("Mm…"), super().minimumSizeHint().height()
        )

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = self.contentsRect().width()
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width)
        QLabel.setText(self, shown)
        self.setToolTip(self._full if shown != self._full else "")


class StatusBar(QStatusBar):
    """A status bar whose messages elide (see the module's doc).

    ``showMessage``, ``clearMessage``, ``currentMessage`` and ``messageChanged``
    keep Qt's meaning; the lasting line (``set_lasting``) shows when no message does.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_label = ElidedLabel()
        self.addWidget(self.message_label, 1)
        self._lasting = ""
        self._message = ""
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(self.clearMessage)

    def set_lasting(self, text: str) -> None:
        self._lasting = text
        self._show()

    def showMessage(self, text: str, timeout: int | None = 0) -> None:
        self._message = text
        if timeout:
            self._expiry.start(timeout)
        else:
            self._expiry.stop()
        self._show()
        self.messageChanged.emit(text)

    def clearMessage(self) -> None:
        if not self._message:
            return
        self._message = ""
        self._expiry.stop()
        self._show()
        self.messageChanged.emit("")

    def currentMessage(self) -> str:
        return self._message

    def _show(self) -> None:
        self.message_label.setText(self._message or self._lasting)
