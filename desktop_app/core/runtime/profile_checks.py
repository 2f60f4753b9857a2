"""The consistency check of one open profile: run, stopped, repaired, its last report kept.

Promises: every check's report is saved as the profile's last one (JSON in
the data dir, read back by :meth:`ProfileChecks.last_report`, None when
there is none or it cannot be read); :meth:`ProfileChecks.cancel` stops the
check that :meth:`ProfileChecks.run` runs, not one started after it; a
re-upload a repair asks for goes through the profile's own transfers
(``reupload``), so it is sent, verified and registered like any other.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.check.checker import ConsistencyChecker
from desktop_app.core.check.findings import CheckOptions, CheckReport
from desktop_app.core.journal.store import Journal
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.storage.s3 import S3Storage

# (source, key, catalog file id, SHA-256, ETag to replace) -> whether it is done
Reupload = Callable[[Path, str, int, str, str | None], bool]


class ProfileChecks:
    """Runs the checks of one profile, one at a time as a person asks."""

    def __init__(
        self,
        *,
        storage: S3Storage,
        catalog: CatalogService,
        journal: Journal,
        profile: Profile,
        data_dir: Path,
        reupload: Reupload,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.journal = journal
        self.profile = profile
        self.data_dir = data_dir
        self._reupload = reupload
        self._cancel = threading.Event()

    def checker(self) -> ConsistencyChecker:
        return ConsistencyChecker(
            storage=self.storage,
            catalog=self.catalog,
            journal=self.journal,
            prefix=self.profile.prefix,
            reupload=self._reupload,
            spool_dir=self.data_dir,
        )

    def check(self, options: CheckOptions | None = None) -> CheckReport:
        """Run the consistency check and keep its report as the last one."""
        if options is None:
            options = CheckOptions(
                grace_seconds=self.profile.grace_seconds,
                retention_seconds=self.profile.retention_seconds,
            )
        report = self.checker().check(options)
        # Read by the window, not by people: the C encoder writes it, not the indenting one.
        self.last_report_file.write_text(json.dumps(report.to_json()))
        return report

    def run(
        self, *, without_grace: bool, progress: Callable[[int, int], None] | None
    ) -> CheckReport:
        """The profile's check, which :meth:`cancel` stops and ``progress`` follows;
        ``without_grace`` judges objects and rows of any age."""
        self._cancel = threading.Event()
        return self.check(
            CheckOptions(
                grace_seconds=0 if without_grace else self.profile.grace_seconds,
                retention_seconds=self.profile.retention_seconds,
                cancel=self._cancel,
                progress=progress,
            )
        )

    def cancel(self) -> None:
        """Stop the check that :meth:`run` runs (a check not yet started is not stopped)."""
        self._cancel.set()

    @property
    def last_report_file(self) -> Path:
        return self.data_dir / f"last-check-{self.profile.name}.json"

    def last_report(self) -> dict[str, object] | None:
        """The last check's report as saved (JSON), with when it ran and how long it took."""
        try:
            loaded: dict[str, object] = json.loads(self.last_report_file.read_text())
        except (OSError, ValueError):
            return None
        return loaded
