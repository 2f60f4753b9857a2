"""The Bucket & catalog view: the consistency check, its findings and repairs, and a browse.

The check runs in the engine process; this view shows its progress, the
counts per kind and the findings with their evidence (in words:
:mod:`check_report`). "Repair…" shows what would be done (the dry run) and
asks before doing it, No by default. Below, the browse of the catalog's files
(:mod:`catalog_browser`). A check runs daily while the window is open, or at
the profile's check interval; until one runs, the last one Ferry kept is said.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.check.findings import (
    CheckReport,
    Finding,
    FindingKind,
    RepairAction,
    RepairResult,
)
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.backend import Backend
from desktop_app.gui.views.catalog_browser import CatalogBrowser
from desktop_app.gui.views.check_report import (
    FindingsModel,
    describe_last_report,
    describe_report,
    evidence_text,
    repair_plan,
)
from desktop_app.gui.views.list_table import list_table
from desktop_app.gui.widgets import accessible

DAY = 24 * 3600


class ConsistencyView(QWidget):
    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.report: CheckReport | None = None
        layout = QVBoxLayout(self)

        controls = QHBoxLayout()
        self.check_button = QPushButton("&Check now")
        self.check_button.clicked.connect(self.run_check)
        self.no_grace_button = QPushButton("Check &without grace")
        self.no_grace_button.setToolTip(
            "Also judge objects and records younger than the grace period "
            "(uploads still running are always left alone)"
        )
        self.no_grace_button.clicked.connect(lambda: self.run_check(without_grace=True))
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: backend.call(Ferry.cancel_check))
        self.repair_button = QPushButton("&Repair selected…")
        self.repair_button.setEnabled(False)
        self.repair_button.clicked.connect(self.repair_selected)
        # Deleting what nobody registered is a choice, never a default.
        self.delete_button = QPushButton("Delete instead…")
        self.delete_button.setEnabled(False)
        self.delete_button.setAutoDefault(False)
        self.delete_button.setToolTip(
            "Delete the selected objects that no record points at, instead of adopting them"
        )
        self.delete_button.clicked.connect(self.delete_selected_orphans)
        self.export_button = QPushButton("&Export…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        self.check_button.setToolTip("Compare the bucket with the catalog now (F5)")
        self.cancel_button.setToolTip("Stop the running check")
        self.repair_button.setToolTip("Show what would repair the selected findings, then ask")
        self.export_button.setToolTip("Save the findings of the last check to a file")
        accessible(self.progress, "Check progress", "Objects and records compared so far")
        for widget in (
            self.check_button,
            self.no_grace_button,
            self.cancel_button,
            self.repair_button,
            self.delete_button,
            self.export_button,
        ):
            controls.addWidget(widget)
        controls.addWidget(self.progress, 1)
        controls.addStretch(1)
        layout.addLayout(controls)
        self.summary = QLabel("Not checked yet. The check compares the bucket with the catalog.")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

        splitter = QSplitter(Qt.Orientation.Vertical)
        self.findings_model = FindingsModel()
        self.findings_table = list_table(self.findings_model)
        self.findings_table.selectionModel().selectionChanged.connect(self._show_evidence)
        self.evidence = QLabel("")
        self.evidence.setWordWrap(True)
        self.evidence.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.findings_table, 1)
        top_layout.addWidget(self.evidence)
        splitter.addWidget(top)
        self.browser = CatalogBrowser(backend)
        splitter.addWidget(self.browser)
        layout.addWidget(splitter, 1)
        accessible(
            self.findings_table,
            "Findings",
            "Where bucket and catalog disagree, after the last check; select to see evidence",
        )

        # Checked daily in the window, or at the profile's check_interval.
        self.schedule = QTimer(self)
        self.schedule.timeout.connect(self._scheduled_check)
        backend.opened.connect(self._start_schedule)
        backend.opened.connect(self._load_last_report)
        backend.checkProgress.connect(self._on_progress)

    # -- the check ------------------------------------------------------------------

    def _start_schedule(self, _text: str) -> None:
        profile = self.backend.profile
        interval = profile.check_interval if profile and profile.check_interval else DAY
        self.schedule.start(interval * 1000)

    def _load_last_report(self, _text: str) -> None:
        """The last check's result, kept by Ferry across restarts, until one runs here."""
        self.backend.call(Ferry.last_report).then(self.show_last_report, self._no_last_report)

    def show_last_report(self, data: dict[str, object] | None) -> None:
        if self.report is not None or not self.check_button.isEnabled():
            return  # a check of this session says more (or is running)
        text = describe_last_report(data)
        if text is not None:
            self.summary.setText(text)

    def _no_last_report(self, _title: str, _message: str) -> None:
        pass  # "Not checked yet" stays: the report could not be read, nothing to act on

    def _scheduled_check(self) -> None:
        if self.check_button.isEnabled():  # not while one is running
            self.run_check()

    def run_check(self, *, without_grace: bool = False) -> None:
        self.check_button.setEnabled(False)
        self.no_grace_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setVisible(True)
        self.summary.setText("Checking…")
        self.backend.call(Ferry.run_check, without_grace=without_grace).then(
            self._on_finished, self._on_failed
        )

    @Slot(int, int)
    def _on_progress(self, objects: int, rows: int) -> None:
        self.summary.setText(
            f"Checking… {objects:,} objects listed, {rows:,} catalog rows compared."
        )

    def _done(self) -> None:
        self.check_button.setEnabled(True)
        self.no_grace_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)

    @Slot(CheckReport)
    def _on_finished(self, report: CheckReport) -> None:
        self._done()
        self.report = report
        self.findings_model.set_items(report.findings)
        self._show_evidence()  # the old selection went with the old findings
        self.repair_button.setEnabled(bool(report.findings))
        self.delete_button.setEnabled(
            any(f.kind is FindingKind.ORPHAN_OBJECT for f in report.findings)
        )
        self.export_button.setEnabled(True)
        self.summary.setText(describe_report(report))

    def _on_failed(self, _title: str, message: str) -> None:
        self._done()
        self.summary.setText(f"The check did not finish: {message}")

    def _selected_findings(self) -> list[Finding]:
        rows = sorted({i.row() for i in self.findings_table.selectionModel().selectedRows()})
        return [self.findings_model.items[r] for r in rows]

    def _show_evidence(self) -> None:
        selected = self._selected_findings()
        if not selected:
            self.evidence.setText("")
            return
        self.evidence.setText(evidence_text(selected[0]))

    def repair_selected(self) -> None:
        selected = self._selected_findings() or (self.report.findings if self.report else [])
        if selected and self._confirm(
            "Repair",
            selected,
            "Each repair checks its finding again first and leaves it alone if anything "
            "changed; each step is recorded in the catalog's audit log. Go ahead?",
        ):
            self.summary.setText("Repairing…")
            self.backend.call(Ferry.repair, selected).then(self._on_repaired)

    def delete_selected_orphans(self) -> None:
        orphans = [
            dataclasses.replace(f, repair=RepairAction.DELETE_OBJECT)
            for f in self._selected_findings()
            if f.kind is FindingKind.ORPHAN_OBJECT
        ]
        if not orphans:
            self.summary.setText("Select the objects without a record to delete first.")
            return
        if self._confirm(
            "Delete objects",
            orphans,
            "These objects are in no one's catalog: another program or person may have put "
            "them there, and deleting them cannot be undone. Delete them?",
        ):
            self.summary.setText("Deleting…")
            self.backend.call(Ferry.repair, orphans).then(self._on_repaired)

    def _confirm(self, title: str, findings: list[Finding], question: str) -> bool:
        """Ask before acting; No is the default button, Enter never confirms by accident."""
        plan = repair_plan(findings)
        answer = QMessageBox.question(
            self,
            title,
            f"Ferry will do this ({len(findings)} item(s)):\n\n{plan}\n\n{question}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _on_repaired(self, results: list[RepairResult]) -> None:
        failed = [r for r in results if not r.done]
        text = f"Repaired {len(results) - len(failed)} of {len(results)}."
        if failed:
            text += " Not repaired: " + "; ".join(
                f"{r.finding.key} ({r.message})" for r in failed[:5]
            )
        self.summary.setText(text)
        self.findings_model.set_items([])  # what was repaired is no longer evidence
        self._show_evidence()
        self.run_check()

    def export(self) -> None:
        if self.report is None:
            return
        name, _filter = QFileDialog.getSaveFileName(
            self, "Export the report", "ferry-check.csv", "CSV (*.csv);;JSON (*.json)"
        )
        if name:
            path = Path(name)
            self.backend.call(Ferry.export_report, self.report, path).then(
                lambda _none: self.backend.notice.emit(f"Report saved to {path}.")
            )
