"""GUI tests drive the real window offscreen; every started backend is stopped."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from desktop_app.core.catalog.records import FileRecord
from desktop_app.core.catalog.service import open_catalog
from desktop_app.core.runtime.environment import Environment
from desktop_app.gui.app import build_window
from desktop_app.gui.main_window import MainWindow


@pytest.fixture
def window_for(qtbot: QtBot, ferry_env: Environment) -> Iterator[object]:
    windows: list[MainWindow] = []

    def make() -> MainWindow:
        window = build_window(ferry_env, None)
        # pytest-qt closes it first at the end: as the test's end, not a person
        # (who would be asked whether to stop running uploads).
        qtbot.addWidget(window, before_close_func=lambda w: setattr(w, "really_quit", True))
        window.show()
        windows.append(window)
        qtbot.waitUntil(lambda: window.backend.profile is not None, timeout=30_000)
        return window

    yield make
    for window in windows:
        window.really_quit = True
        window.close()


def live_row(env: Environment, bucket: str, key: str) -> FileRecord | None:
    """The catalog's live row for a key, read as another program would (the
    window's engine runs in its own process)."""
    profile = env.profiles.get()
    catalog = open_catalog(profile.catalog_url, owner=profile.owner)
    try:
        return catalog.live(bucket, key)
    finally:
        catalog.close()
