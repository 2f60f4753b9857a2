"""Where Ferry keeps its files.

Config, data and logs come from platformdirs; ``FERRY_HOME=DIR`` puts all of
them under DIR (tests and scripts use it). Nothing is read at import time: the
environment is passed in. :func:`write_atomically` is how a settings file is
written: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "ferry"


@dataclass(frozen=True)
class FerryPaths:
    """The three directories Ferry writes to, and the files inside them."""

    config_dir: Path
    data_dir: Path
    log_dir: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> FerryPaths:
        home = environ.get("FERRY_HOME")
        if home:
            root = Path(home).expanduser().resolve()
            return cls(root / "config", root / "data", root / "logs")
        return cls(
            Path(platformdirs.user_config_dir(APP_NAME)),
            Path(platformdirs.user_data_dir(APP_NAME)),
            Path(platformdirs.user_log_dir(APP_NAME)),
        )

    def ensure(self) -> None:
        for directory in (self.config_dir, self.data_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)

    @property
    def profiles_file(self) -> Path:
        return self.config_dir / "profiles.toml"

    @property
    def watched_folders_file(self) -> Path:
        return self.config_dir / "watched.toml"

    @property
    def journal_file(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    @property
    def sandbox_dir(self) -> Path:
        return self.data_dir / "sandbox"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "ferry.log"

    def default_catalog_url(self, profile_name: str) -> str:
        return f"sqlite:///{self.data_dir / f'catalog-{profile_name}.sqlite3'}"


def write_atomically(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace a file's content at once (a temp file beside it, synced, renamed over it).

    ``private``: readable by the owner only (0600) from the first byte on.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    with os.fdopen(descriptor, "wb") as handle:
        if private:
            os.fchmod(handle.fileno(), 0o600)  # a temp file left from before keeps its mode
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(path)
