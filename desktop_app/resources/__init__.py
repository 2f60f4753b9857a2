"""Ferry's package data: the application icon and the tray state icons.

Everything here is found through importlib.resources, so the same lookup works
from a source checkout, an installed wheel and the PyInstaller bundle. This
module names files only; it never imports Qt (the window turns them into
QIcons).
"""

from __future__ import annotations

import enum
from importlib import resources
from importlib.abc import Traversable

DESKTOP_ID = "io.github.ferry.Ferry"  # desktop entry, AppStream id and icon name
ICON_SIZES: tuple[int, ...] = (16, 32, 48, 64, 128, 256, 512)


class TrayState(enum.Enum):
    """What the tray icon says at a glance."""

    IDLE = "idle"
    UPLOADING = "uploading"
    PAUSED = "paused"
    ERROR = "error"


def _root() -> Traversable:
    return resources.files(__name__)


def app_icon_svg() -> Traversable:
    return _root() / "ferry.svg"


def app_icon_png(size: int) -> Traversable:
    """The rendered application icon in the freedesktop hicolor layout."""
    if size not in ICON_SIZES:
        raise ValueError(f"no {size} px icon; sizes are {ICON_SIZES}")
    return _root() / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "ferry.png"


def tray_icon_svg(state: TrayState) -> Traversable:
    return _root() / "icons" / f"tray-{state.value}.svg"
