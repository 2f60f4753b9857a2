"""Render the SVG application icon to the PNG sizes desktops ask for.

Run after editing desktop_app/resources/ferry.svg:
    .venv/bin/python tools/make_icons.py
The PNGs are committed so that building a wheel or a bundle needs no renderer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from desktop_app.resources import ICON_SIZES, app_icon_png, app_icon_svg


def render(svg: Path, size: int, target: Path) -> None:
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(target), "PNG"):
        raise SystemExit(f"could not write {target}")


def main() -> int:
    _app = QGuiApplication(sys.argv)
    svg = Path(str(app_icon_svg()))
    for size in ICON_SIZES:
        target = Path(str(app_icon_png(size)))
        render(svg, size, target)
        print(f"{target} ({size}x{size})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
