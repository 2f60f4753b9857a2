"""Ferry's folders on a machine with other users (issue #32, item 4).

The other user is real where it makes a folder: ``nobody`` through setpriv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_app.core.model.errors import UnsafeFolderError
from desktop_app.core.settings.paths import FerryPaths
from tests.conftest import AS_NOBODY

NOGROUP = 65534


def test_a_data_folder_another_user_made_writable_by_all_is_refused_by_every_command(
    tmp_path: Path, shared_dir: Path
) -> None:
    # XDG_DATA_HOME is the shared folder; another user made ferry's folder in it first.
    data = shared_dir / "ferry"
    subprocess.run([*AS_NOBODY, "mkdir", "-m", "0777", str(data)], check=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "XDG_"))}
    environ.update(
        XDG_DATA_HOME=str(shared_dir),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )

    status = subprocess.run(
        [sys.executable, "-m", "desktop_app", "status"],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert status.returncode == 2, status
    assert "Traceback" not in status.stderr
    assert (
        f"ferry: Unsafe folder: Ferry's data folder {data} belongs to nobody (uid 65534), "
        "not to you (root): they could change or replace what Ferry keeps there. Remove it "
        f"or make it yours (`chown root {data}`), or set FERRY_HOME to a folder of your own."
    ) in " ".join(status.stderr.split())
    assert os.listdir(data) == []  # nothing of root's was written there


def test_ferry_makes_its_folders_private_and_refuses_them_once_others_can_write(
    shared_dir: Path,
) -> None:
    home = shared_dir / "a" / "ferry"
    paths = FerryPaths.from_environment({"FERRY_HOME": str(home)})
    paths.ensure()  # under a sticky folder open to all, as /tmp is: fine
    for folder in (shared_dir / "a", home, paths.config_dir, paths.data_dir, paths.log_dir):
        assert folder.stat().st_mode & 0o777 == 0o700, folder

    paths.data_dir.chmod(0o777)
    with pytest.raises(UnsafeFolderError) as raised:
        paths.ensure()
    assert raised.value.message == (
        f"Ferry's data folder {paths.data_dir} can be written by every user (mode 0777): "
        "they could change or replace what Ferry keeps there. Run `chmod go-w "
        f"{paths.data_dir}`, or set FERRY_HOME to a folder of your own."
    )

    # Writable by a group of others: refused; by the user's own group only: fine.
    paths.data_dir.chmod(0o770)
    os.chown(paths.data_dir, -1, NOGROUP)
    with pytest.raises(UnsafeFolderError, match="can be written by the group nogroup"):
        paths.ensure()
    os.chown(paths.data_dir, -1, os.getegid())  # root's own group, no other member
    paths.ensure()

    # A folder above, writable by all and not sticky: anyone could rename Ferry's away.
    (shared_dir / "a").chmod(0o777)
    with pytest.raises(UnsafeFolderError) as raised:
        paths.ensure()
    assert raised.value.message.startswith(
        f"{shared_dir / 'a'}, a folder above Ferry's home folder (FERRY_HOME) {home}, can be "
        "written by every user (mode 0777, not sticky)"
    )

    # A folder above that another user owns, even sticky: they may rename what is in it.
    (shared_dir / "a").chmod(0o1777)
    os.chown(shared_dir / "a", 65534, NOGROUP)
    with pytest.raises(UnsafeFolderError, match="belongs to nobody \\(uid 65534\\), who could"):
        paths.ensure()
