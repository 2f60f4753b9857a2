"""Resources are package data: found through importlib.resources, complete, valid;
the desktop entry and AppStream metainfo pass the freedesktop validators; the
wheel and sdist carry what the program needs at run time."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from desktop_app.resources import (
    DESKTOP_ID,
    ICON_SIZES,
    TrayState,
    app_icon_png,
    app_icon_svg,
    tray_icon_svg,
)

ROOT = Path(__file__).resolve().parents[2]
DESKTOP_FILE = ROOT / "resources" / f"{DESKTOP_ID}.desktop"
METAINFO = ROOT / "resources" / f"{DESKTOP_ID}.metainfo.xml"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_every_icon_is_package_data_of_the_right_size() -> None:
    assert app_icon_svg().read_text().lstrip().startswith("<svg")
    for size in ICON_SIZES:
        assert png_size(app_icon_png(size).read_bytes()) == (size, size)
    for state in TrayState:
        assert "<svg" in tray_icon_svg(state).read_text()


def _tool(name: str) -> str:
    found = shutil.which(name)
    # CI installs these (tools/ensure-system-packages); missing means the check did not run.
    assert found, f"{name} is not installed: run tools/ensure-system-packages"
    return found


def test_desktop_entry_validates() -> None:
    result = subprocess.run(
        [_tool("desktop-file-validate"), str(DESKTOP_FILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout + result.stderr
    text = DESKTOP_FILE.read_text()
    assert "Exec=ferry %F" in text
    assert f"Icon={DESKTOP_ID}" in text


def test_metainfo_validates() -> None:
    result = subprocess.run(
        [_tool("appstreamcli"), "validate", "--no-net", str(METAINFO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'<launchable type="desktop-id">{DESKTOP_ID}.desktop</launchable>' in (
        METAINFO.read_text()
    )


@pytest.mark.bundle
def test_wheel_and_sdist_carry_resources_and_entry_points(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [wheel] = tmp_path.glob("ferry-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for size in ICON_SIZES:
        assert f"desktop_app/resources/icons/hicolor/{size}x{size}/apps/ferry.png" in names
    assert "desktop_app/resources/icons/tray-error.svg" in names
    assert "desktop_app/core/migrations/catalog/versions/0001_initial.py" in names
    assert "desktop_app/core/sql/postgres_roles.sql" in names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ferry = desktop_app.cli:main" in text
    assert "ferry-gui = desktop_app.cli:main_gui" in text
    [sdist] = tmp_path.glob("ferry-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in (
        f"resources/{DESKTOP_ID}.desktop",
        f"resources/{DESKTOP_ID}.metainfo.xml",
        "packaging/ferry.spec",
        "packaging/build",
        "desktop_app/resources/icons/hicolor/512x512/apps/ferry.png",
    ):
        assert needed in members, needed
