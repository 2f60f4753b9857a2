#!/usr/bin/env python3
"""Screenshots of every view of the real window, mid-work.

By default (`make screenshots`) as a new user sees them: for each screen size
(1366x768 and 1920x1080) a real X server (Xvfb) with a real window manager
(icewm), the window opened at the size it takes the first time, driven with
the keyboard through xdotool (Alt+2, F5, Ctrl+, and F1 go through the X
server), and the whole screen grabbed, frame and taskbar included, into
docs/screenshots/VIEW-WIDTHxHEIGHT.png. `--offscreen` renders the window alone
with Qt's offscreen platform at 200 % instead (docs/screenshots/VIEW-2x.png).

Each run starts a throw-away weed mini and FERRY_HOME, uploads a few files at
4 MB/s (one of them unreadable, so the Failed view has something), plants an
orphan object, runs the check, adds a watched folder, and opens Settings and
About, then shows Transfers with a dark palette while a scan is uploaded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QWidget

    from desktop_app.core.runtime.environment import Environment

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
SIZES = ("1366x768", "1920x1080")
DESKTOP_TOOLS = {"Xvfb": "xvfb", "icewm": "icewm", "xdotool": "xdotool"}


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


class Shooter:
    """One run of the window; MODE is a scale ("2", offscreen) or a screen size ("1366x768")."""

    def __init__(self, mode: str, root: Path, env: Environment) -> None:
        from PySide6.QtWidgets import QApplication

        from desktop_app.gui.app import build_window

        self.desktop = "x" in mode
        self.suffix = mode if self.desktop else f"{mode}x"
        self.root = root
        self.inbox = root / "Scans inbox"
        self.env = env
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        self.app = app
        self.window = build_window(env, None)
        if not self.desktop:
            self.window.resize(1100, 640)
        self.window.show()  # on a desktop, at the size and place a first start gets

    def wait(self, condition: Callable[[], object], seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not condition():
            self.app.processEvents()
            time.sleep(0.02)

    def settle(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)

    def save(self, name: str, widget: QWidget | None = None) -> None:
        target = OUT / f"{name}-{self.suffix}.png"
        if not self.desktop:
            (widget or self.window).grab().save(str(target))
        elif importer := shutil.which("import"):  # ImageMagick: the X server's own pixels
            subprocess.run([importer, "-window", "root", str(target)], check=True)
        else:  # the root window through Qt: the same pixels, frame and taskbar included
            self.app.primaryScreen().grabWindow(0).save(str(target))
        print(f"  {target.relative_to(ROOT)}", flush=True)

    def press(self, keys: str) -> None:
        """Keys through the X server to the window, as a person's keyboard sends them."""
        window_id = str(int(self.window.winId()))
        xdotool = subprocess.Popen(
            ["xdotool", "windowactivate", "--sync", window_id, "key", "--clearmodifiers", keys]
        )
        self.wait(lambda: xdotool.poll() is not None, 20)
        self.settle(0.3)

    def view(self, index: int) -> None:
        """Alt+1..4 on a desktop; the tab itself offscreen, which has no keyboard."""
        if self.desktop:
            self.press(f"alt+{index + 1}")
        else:
            self.window.tabs.setCurrentIndex(index)

    def save_modal(self, keys: str, name: str, ready: Callable[[QWidget], bool]) -> None:
        """Open a dialog with KEYS (it runs its own loop), shoot it, close it."""
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        done: list[bool] = []
        ready_since: list[float] = []

        def poll() -> None:
            dialog = QApplication.activeModalWidget()
            if dialog is None or not ready(dialog):
                return
            if not ready_since:
                ready_since.append(time.monotonic())
            if time.monotonic() - ready_since[0] < 0.8:
                return
            timer.stop()
            self.save(name, dialog)
            dialog.close()
            done.append(True)

        timer = QTimer()
        timer.timeout.connect(poll)
        timer.start(100)
        self.press(keys)
        self.wait(lambda: bool(done), 30)
        timer.stop()

    def save_dialog(self, dialog: QWidget, name: str, ready: Callable[[QWidget], bool]) -> None:
        """Offscreen: the dialog shown without its loop, rendered alone."""
        dialog.show()
        self.wait(lambda: ready(dialog), 10)
        self.settle(0.5)
        self.save(name, dialog)
        dialog.close()

    def mid_transfer(self, rows: int) -> bool:
        """At least ROWS uploads are sending and between 30 and 70 % done."""
        model = self.window.model
        return rows <= sum(
            1
            for s in model.snapshots()
            if 0.3 <= model.fraction_done(s) <= 0.7 and model.rate(s).bytes_per_second
        )

    def transfers(self, docs: Path) -> None:
        window = self.window
        self.settle(1.5)
        if not self.desktop:
            self.save("transfers-empty")
        window.commands.queue_paths([docs])
        self.wait(lambda: window.model.rowCount() == 5)

        self.wait(lambda: self.mid_transfer(2), 20)  # two bars at 30-70 %, or at least one
        self.wait(lambda: self.mid_transfer(1))
        window._update_totals()
        self.settle(0.3)
        self.save("transfers-uploading")
        self.wait(
            lambda: all(
                s.state.finished or s.state.value == "failed" for s in window.model.snapshots()
            )
        )
        self.settle(0.6)
        if not self.desktop:
            self.save("transfers")

    def failed_and_check(self) -> None:
        window = self.window
        self.view(1)
        window.failed_view.table.selectRow(0)
        self.settle(0.7)
        self.save("failed")
        if self.desktop:
            self.press("F5")  # check bucket & catalog now: shows the view
        else:
            window.tabs.setCurrentIndex(2)
            window.consistency_view.run_check()
        self.wait(lambda: window.consistency_view.report is not None)
        window.consistency_view.findings_table.selectRow(0)
        window.consistency_view.browser.search()
        self.wait(lambda: window.consistency_view.browser.files_model.rowCount() > 0)
        self.settle(0.5)
        self.save("bucket-catalog")

    def folders(self) -> None:
        from desktop_app.core.runtime.watcher import WatchedFolder

        inbox = self.inbox
        inbox.mkdir()
        view = self.window.folders_view  # what its Add folder… dialogs end in
        view.folders.append(WatchedFolder(inbox, prefix="scans"))
        view._save()
        self.view(3)
        self.wait(lambda: self.window.folders_view.table.rowCount() == 1, 10)
        (inbox / "scan-0043.pdf").write_bytes(os.urandom(5000))
        self.settle(5)
        self.save("watched-folders")

    def dialogs(self) -> None:
        from desktop_app.gui.dialogs.about import AboutDialog
        from desktop_app.gui.dialogs.settings_dialog import SettingsDialog

        def settings_ready(dialog: QWidget) -> bool:
            return isinstance(dialog, SettingsDialog) and dialog.profile_combo.count() > 0

        def about_ready(dialog: QWidget) -> bool:
            return isinstance(dialog, AboutDialog) and "asking" not in dialog.server_label.text()

        if self.desktop:
            self.save_modal("ctrl+comma", "settings", settings_ready)
            self.save_modal("F1", "about", about_ready)
        else:
            self.save_dialog(
                SettingsDialog(self.env, "local", self.window), "settings", settings_ready
            )
            self.save_dialog(AboutDialog(self.window.backend, self.window), "about", about_ready)

    def dark(self) -> None:
        from PySide6.QtCore import Qt

        # What a person with a dark desktop sees: Qt takes the scheme from the
        # system; here it is asked for explicitly, since neither offscreen nor
        # a bare icewm has a platform theme that says so.
        self.app.styleHints().setColorScheme(Qt.ColorScheme.Dark)
        if self.app.palette().window().color().lightness() > 128:
            self.app.setPalette(dark_palette())  # what a dark platform theme hands Qt
        self.view(0)
        (self.inbox / "scan-0044.pdf").write_bytes(os.urandom(16_000_000))  # the scanner again
        self.wait(lambda: self.mid_transfer(1))
        self.window._update_totals()
        self.settle(0.3)
        self.save("transfers-dark")
        self.window.really_quit = True
        self.window.close()


def shoot(mode: str) -> None:
    if "x" not in mode:
        os.environ["QT_SCALE_FACTOR"] = mode
    sys.path.insert(0, str(ROOT))
    from PySide6.QtWidgets import QApplication

    from desktop_app.core.runtime.environment import Environment
    from desktop_app.core.runtime.sandbox import SandboxServer, find_weed
    from desktop_app.core.settings.paths import FerryPaths
    from desktop_app.core.settings.profiles import Profile
    from desktop_app.core.settings.secrets import SecretStore

    app = QApplication(sys.argv)
    app.setApplicationName("Ferry")
    app.setQuitOnLastWindowClosed(False)
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
                ("Quarterly report 2026.pdf", 8_400_000),
                ("Site photos.zip", 31_000_000),
                ("Minutes 11-20.docx", 48_000),
                ("scan-0042.tiff", 9_700_000),
            ):
                (docs / name).write_bytes(os.urandom(size))
            os.mkfifo(docs / "Payroll.xlsx")  # not a regular file: fails with a clear reason
            shooter = Shooter(mode, root, env)
            shooter.wait(lambda: shooter.window.backend.profile is not None)
            import boto3

            boto3.client("s3", endpoint_url=state.endpoint_url, region_name="us-east-1").put_object(
                Bucket="ferry", Key="old/stray-export.csv", Body=b"a,b"
            )
            OUT.mkdir(parents=True, exist_ok=True)
            shooter.transfers(docs)
            shooter.failed_and_check()
            shooter.folders()
            shooter.dialogs()
            shooter.dark()
        finally:
            server.stop()


def missing_tools() -> list[str]:
    return sorted({package for tool, package in DESKTOP_TOOLS.items() if not shutil.which(tool)})


@contextmanager
def x_desktop(size: str, home: Path) -> Iterator[dict[str, str]]:
    """Xvfb at SIZE with icewm running on it; yields the environment that reaches it."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    icewm: subprocess.Popen[bytes] | None = None
    background: subprocess.Popen[bytes] | None = None
    try:
        with os.fdopen(read) as display_number:
            display = f":{display_number.readline().strip()}"
        if display == ":":
            raise SystemExit(f"Xvfb did not start at {size}")
        environ = dict(os.environ, DISPLAY=display, HOME=str(home))  # icewm: its defaults
        (home / ".icewm").mkdir()  # and a plain desktop, not the theme's picture
        (home / ".icewm" / "prefoverride").write_text(
            'DesktopBackgroundImage="none"\nDesktopBackgroundColor="rgb:4a/6b/8a"\n'
        )
        environ.pop("QT_SCALE_FACTOR", None)
        icewm = subprocess.Popen(["icewm"], env=environ, stderr=subprocess.DEVNULL)
        background = subprocess.Popen(["icewmbg"], env=environ, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the window manager says it is there
            probe = subprocess.run(
                ["xdotool", "search", "--class", "icewm"], env=environ, capture_output=True
            )
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        time.sleep(1)
        yield environ
    finally:
        for process in (background, icewm, xvfb):
            if process is not None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offscreen", action="store_true", help="the window alone, at 200 %%")
    parser.add_argument("--size", action="append", help="screen size (default: %(default)s)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        shoot(args.child)
        return 0
    command = [sys.executable, __file__, "--child"]
    if args.offscreen:
        with tempfile.TemporaryDirectory(prefix="ferry-offscreen-") as tmp:
            # A 1366x768 laptop screen at 200 % (Qt's offscreen screen is 800x800).
            screen = {"name": "laptop", "x": 0, "y": 0, "width": 2732, "height": 1536}
            config = Path(tmp) / "screen.json"
            config.write_text(json.dumps({"screens": [screen]}))
            env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
            subprocess.run([*command, "2"], check=True, env=env)
    else:
        if missing := missing_tools():
            names = " ".join(missing)
            print(f"Please install: {names} (Debian: apt-get install {names})")
            return 1
        for size in args.size or SIZES:
            print(f"{size}, Xvfb and icewm:", flush=True)
            with (
                tempfile.TemporaryDirectory(prefix="ferry-desktop-") as home,
                x_desktop(size, Path(home)) as environ,
            ):
                environ["QT_QPA_PLATFORM"] = "xcb"
                subprocess.run([*command, size], check=True, env=environ)
    print(f"Screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
