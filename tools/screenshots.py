#!/usr/bin/env python3
"""Screenshots of every view of the real window, offscreen, at 100% and 200%.

Starts a throw-away weed mini and FERRY_HOME, uploads a few files (one of them
unreadable, so the Failed view has something), plants an orphan object, runs
the check, adds a watched folder, and saves docs/screenshots/VIEW-SCALEx.png.
Run: make screenshots (QT_QPA_PLATFORM=offscreen is set by make).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtGui import QPalette

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"


def dark_palette() -> QPalette:
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    role = QPalette.ColorRole
    for name, color in (
        (role.Window, "#2b2b2b"),
        (role.WindowText, "#e6e6e6"),
        (role.Base, "#1e1e1e"),
        (role.AlternateBase, "#262626"),
        (role.Text, "#e6e6e6"),
        (role.Button, "#353535"),
        (role.ButtonText, "#e6e6e6"),
        (role.Highlight, "#3d7ac7"),
        (role.HighlightedText, "#ffffff"),
        (role.ToolTipBase, "#353535"),
        (role.ToolTipText, "#e6e6e6"),
        (role.PlaceholderText, "#8a8a8a"),
    ):
        palette.setColor(name, QColor(color))
    return palette


def shoot(scale: str) -> None:
    os.environ["QT_SCALE_FACTOR"] = scale
    sys.path.insert(0, str(ROOT))
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from desktop_app.core.app import Environment
    from desktop_app.core.config import Profile
    from desktop_app.core.keys import SecretStore
    from desktop_app.core.paths import FerryPaths
    from desktop_app.core.sandbox import SandboxServer, find_weed
    from desktop_app.core.watcher import WatchedFolder
    from desktop_app.gui.about import AboutDialog
    from desktop_app.gui.app import build_window
    from desktop_app.gui.settings_dialog import SettingsDialog

    app = QApplication(sys.argv)
    with tempfile.TemporaryDirectory(prefix="ferry-shots-") as tmp:
        root = Path(tmp)
        server = SandboxServer(root / "weed", find_weed(os.environ))
        state = server.start()
        try:
            paths = FerryPaths.from_environment({"FERRY_HOME": str(root / "home")})
            env = Environment(paths, dict(os.environ), SecretStore())
            env.profiles.save(
                Profile(
                    name="local",
                    bucket="ferry",
                    catalog_url=paths.default_catalog_url("local"),
                    endpoint_url=state.endpoint_url,
                    sandbox=False,
                    access_key_id=None,
                    grace_seconds=0,
                    bandwidth_limit=4_000_000,  # slow enough to be seen mid-transfer
                    part_size=5 * 1024 * 1024,
                ),
                make_default=True,
            )
            os.environ.update(AWS_ACCESS_KEY_ID="screenshots", AWS_SECRET_ACCESS_KEY="not-secret")
            env = Environment(paths, dict(os.environ), SecretStore())
            docs = root / "Documents"
            docs.mkdir()
            for name, size in (
                ("Quarterly report 2026.pdf", 2_400_000),
                ("Site photos.zip", 31_000_000),
                ("Minutes 11-20.docx", 48_000),
                ("scan-0042.tiff", 9_700_000),
            ):
                (docs / name).write_bytes(os.urandom(size))
            os.mkfifo(docs / "Payroll.xlsx")  # not a regular file: fails with a clear reason
            window = build_window(env, None)
            window.resize(1100, 640)
            window.show()

            def wait(condition: object, seconds: float = 60) -> None:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and not condition():  # type: ignore[operator]
                    app.processEvents()
                    time.sleep(0.02)

            wait(lambda: window.backend.profile is not None)
            import boto3

            boto3.client("s3", endpoint_url=state.endpoint_url, region_name="us-east-1").put_object(
                Bucket="ferry", Key="old/stray-export.csv", Body=b"a,b"
            )
            OUT.mkdir(parents=True, exist_ok=True)
            suffix = f"{scale}x"
            wait(lambda: False, 0.7)
            window.grab().save(str(OUT / f"transfers-empty-{suffix}.png"))
            window.queue_paths([docs])
            wait(lambda: window.model.rowCount() == 5)

            def mid_transfer() -> bool:
                model = window.model
                return any(
                    0.3 <= model.fraction_done(s) <= 0.7 and model.rate(s).bytes_per_second
                    for s in model.snapshots()
                )

            wait(mid_transfer)
            window._update_totals()
            wait(lambda: False, 0.3)
            window.grab().save(str(OUT / f"transfers-uploading-{suffix}.png"))
            wait(
                lambda: all(
                    s.state.finished or s.state.value == "failed" for s in window.model.snapshots()
                )
            )
            time.sleep(0.6)
            app.processEvents()
            window.tabs.setCurrentIndex(0)
            wait(lambda: False, 0.7)
            window.grab().save(str(OUT / f"transfers-{suffix}.png"))
            window.tabs.setCurrentIndex(1)
            window.failed_view.table.selectRow(0)
            wait(lambda: False, 0.7)
            window.grab().save(str(OUT / f"failed-{suffix}.png"))
            window.tabs.setCurrentIndex(2)
            window.consistency_view.run_check()
            wait(lambda: window.consistency_view.report is not None)
            window.consistency_view.findings_table.selectRow(0)
            window.consistency_view.search()
            wait(lambda: window.consistency_view.files_model.rowCount() > 0)
            wait(lambda: False, 0.5)
            window.grab().save(str(OUT / f"bucket-catalog-{suffix}.png"))
            inbox = root / "Scans inbox"
            inbox.mkdir()
            window.backend.set_folders([WatchedFolder(inbox, prefix="scans")])
            window.tabs.setCurrentIndex(3)
            wait(lambda: window.folders_view.table.rowCount() == 1, 10)
            (inbox / "scan-0043.pdf").write_bytes(os.urandom(5000))
            wait(lambda: False, 5)
            window.grab().save(str(OUT / f"watched-folders-{suffix}.png"))
            settings = SettingsDialog(env, "local", window)
            settings.show()
            wait(lambda: settings.profile_combo.count() > 0, 10)
            wait(lambda: False, 0.5)
            settings.grab().save(str(OUT / f"settings-{suffix}.png"))
            settings.reject()
            about = AboutDialog(window.backend, window)
            about.show()
            wait(lambda: "asking" not in about.server_label.text(), 10)
            wait(lambda: False, 0.3)
            about.grab().save(str(OUT / f"about-{suffix}.png"))
            about.reject()
            # What a person with a dark desktop sees: Qt takes the scheme from the
            # system; here it is asked for explicitly, since offscreen has no system.
            app.styleHints().setColorScheme(Qt.ColorScheme.Dark)
            if app.palette().window().color().lightness() > 128:
                app.setPalette(dark_palette())  # what a dark platform theme hands Qt
            window.tabs.setCurrentIndex(0)
            wait(lambda: False, 0.7)
            window.grab().save(str(OUT / f"transfers-dark-{suffix}.png"))
            window.really_quit = True
            window.close()
        finally:
            server.stop()


def main() -> int:
    if len(sys.argv) > 1:
        shoot(sys.argv[1])
        return 0
    for scale in ("1", "2"):
        env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
        subprocess.run([sys.executable, __file__, scale], check=True, env=env)
    print(f"Screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
