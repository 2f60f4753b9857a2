"""The PyInstaller bundle, built from a clean copy of the checkout and run with
no Python of the project anywhere in its environment: `ferry --version`, the
bundled sandbox with an upload checked by SHA-256, the window opened offscreen
and closed cleanly, and install.sh / uninstall.sh under a throw-away HOME.

Slow (a few minutes: a build venv and PyInstaller); CI runs it like every test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.bundle, pytest.mark.timeout(1800)]  # the build is in the first


@dataclass(frozen=True)
class Bundle:
    folder: Path  # dist/ferry
    archive: Path  # dist/ferry-*.tar.gz
    build_output: str


def _clean_copy(target: Path) -> None:
    """What a clean clone holds: the tracked (and new, not ignored) files of the tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        relative = raw.decode()
        source = ROOT / relative
        if not source.exists():
            continue  # deleted in the work tree
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    checkout = tmp_path_factory.mktemp("checkout")
    _clean_copy(checkout)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHON"] = sys._base_executable  # type: ignore[attr-defined]  # the Python, not the venv
    result = subprocess.run(
        [str(checkout / "packaging" / "build")],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)
    [archive] = (checkout / "dist").glob("ferry-*.tar.gz")
    return Bundle(checkout / "dist" / "ferry", archive, result.stdout)


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """No venv, no PYTHONPATH, nothing of the project on PATH: a staff member's shell."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "FERRY_HOME": str(tmp_path / "ferry-home"),
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
    }


def _weeds_under(folder: Path) -> list[str]:
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if "weed" in line and str(folder) in line]


@pytest.fixture
def sandbox(bundle: Bundle, bare_env: dict[str, str]) -> Iterator[str]:
    process = subprocess.Popen(
        [str(bundle.folder / "ferry"), "sandbox"],
        env=bare_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.search(r"running at (http://127\.0\.0\.1:\d+)", first)
    try:
        assert match, first + process.stdout.read() if process.poll() is not None else first
        yield match.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert _weeds_under(Path(bare_env["FERRY_HOME"])) == []


def test_bundled_version_is_the_package_version(bundle: Bundle, bare_env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(bundle.folder / "ferry"), "--version"], env=bare_env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ferry {version('ferry')}"
    size_mib = (
        sum(
            p.stat().st_size for p in bundle.folder.rglob("*") if p.is_file() and not p.is_symlink()
        )
        / 2**20
    )
    print(
        f"bundle size: {size_mib:.0f} MiB; archive {bundle.archive.stat().st_size / 2**20:.0f} MiB"
    )


def test_bundled_sandbox_takes_an_upload_with_its_sha256(
    bundle: Bundle, bare_env: dict[str, str], sandbox: str, tmp_path: Path
) -> None:
    source = tmp_path / "Quarterly report.pdf"
    source.write_bytes(os.urandom(7 * 2**20 + 123))
    result = subprocess.run(
        [str(bundle.folder / "ferry"), "upload", "--json", str(source)],
        env=bare_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [transfer] = json.loads(result.stdout)["transfers"]
    assert transfer["state"] == "done"
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert transfer["sha256"] == expected
    s3 = boto3.client(
        "s3",
        endpoint_url=sandbox,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
        config=Config(s3={"addressing_style": "path"}),
    )
    body = s3.get_object(Bucket="ferry", Key=transfer["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == expected


def test_bundled_window_opens_offscreen_and_closes_cleanly(
    bundle: Bundle, bare_env: dict[str, str], sandbox: str
) -> None:
    # The profile is the running bundled sandbox's; the window connects to it.
    log_file = Path(bare_env["FERRY_HOME"]) / "logs" / "ferry.log"
    window = subprocess.Popen(
        [str(bundle.folder / "ferry")],
        env=bare_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and window.poll() is None:
            text = log_file.read_text() if log_file.exists() else ""
            if "Window open" in text and "Connected: profile local" in text:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the window did not open and connect: {window.poll()}")
        window.send_signal(signal.SIGTERM)  # what closing the session does
        assert window.wait(timeout=60) == 0
    finally:
        if window.poll() is None:
            window.kill()
        output = window.stdout.read() if window.stdout else ""
    assert "Traceback" not in output, output
    assert "Traceback" not in log_file.read_text()


def test_install_and_uninstall_touch_exactly_their_files(
    bundle: Bundle, bare_env: dict[str, str], tmp_path: Path
) -> None:
    with tarfile.open(bundle.archive) as archive:
        archive.extractall(tmp_path / "unpacked", filter="tar")
    [unpacked] = (tmp_path / "unpacked").iterdir()
    home = Path(bare_env["HOME"])
    keep = home / ".local" / "share" / "ferry" / "catalog.sqlite3"  # user data stays
    keep.parent.mkdir(parents=True)
    keep.write_text("not ours to delete")
    before = {p for p in home.rglob("*")}

    installed = subprocess.run(
        ["sh", str(unpacked / "install.sh")], env=bare_env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    local = home / ".local"
    launcher = local / "bin" / "ferry"
    desktop = local / "share" / "applications" / "io.github.ferry.Ferry.desktop"
    assert launcher.is_symlink()
    assert f"Exec={launcher} %F" in desktop.read_text()
    for size in (16, 32, 48, 64, 128, 256, 512):
        assert (
            local / f"share/icons/hicolor/{size}x{size}/apps/io.github.ferry.Ferry.png"
        ).is_file()
    assert (local / "share/metainfo/io.github.ferry.Ferry.metainfo.xml").is_file()
    version_run = subprocess.run(
        [str(launcher), "--version"], env=bare_env, capture_output=True, text=True
    )
    assert version_run.stdout.strip() == f"ferry {version('ferry')}"
    if shutil.which("desktop-file-validate"):
        checked = subprocess.run(
            ["desktop-file-validate", str(desktop)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

    removed = subprocess.run(
        ["sh", str(local / "opt" / "ferry" / "uninstall.sh")],
        env=bare_env,
        capture_output=True,
        text=True,
    )
    assert removed.returncode == 0, removed.stdout + removed.stderr
    left = {p for p in home.rglob("*") if not p.is_dir()}
    assert left == {p for p in before if not p.is_dir()}, sorted(map(str, left))
    assert keep.read_text() == "not ours to delete"
