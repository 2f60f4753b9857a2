"""The consistency check's report in words: its findings, their evidence, its summary.

What each kind of finding and each repair is called, the findings' table,
the sentence that sums up a check (what was compared, what was left alone,
what was found), the evidence of one finding, the plan a repair shows before
it asks, and the last check Ferry kept across restarts. Pure text over the
report: no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt

from desktop_app.core.check.findings import (
    INFORMATIONAL,
    CheckReport,
    Finding,
    FindingKind,
    RepairAction,
)
from desktop_app.gui.units import human_size
from desktop_app.gui.views.list_table import Index, ListModel

KIND_LABELS = {
    FindingKind.ORPHAN_OBJECT: "Object without a record",
    FindingKind.MISSING_OBJECT: "Record without an object",
    FindingKind.MISMATCH: "Object and record differ",
    FindingKind.STALE_PENDING: "Unfinished upload record",
    FindingKind.DELETED_STILL_STORED: "Deleted but still stored",
    FindingKind.STALE_MULTIPART: "Abandoned partial upload",
    FindingKind.SOMEONE_ELSES: "Someone else's file",
    FindingKind.FOREIGN_VERSION_ON_TOP: "Another program's version on top",
}
REPAIR_LABELS = {
    RepairAction.DELETE_OBJECT: "Delete the object",
    RepairAction.ADOPT: "Read it and add it to the catalog",
    RepairAction.REUPLOAD: "Upload again from the local copy",
    RepairAction.MARK_MISSING: "Mark the record missing",
    RepairAction.ACTIVATE: "Complete the record if its bytes match",
    RepairAction.REMOVE_ROW: "Remove the record",
    RepairAction.ABORT_UPLOAD: "Abort the partial upload",
    RepairAction.DELETE_VERSION: "Delete Ferry's old version",
    RepairAction.NONE: "Nothing (not yours to repair, or kept)",
}
PLAN_LISTED = 20  # findings named in a repair's question; the rest are counted


class FindingsModel(ListModel[Finding]):
    HEADERS = ("Problem", "Key", "Object", "Record", "Repair")

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        finding = self.items[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return finding.explanation
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        column = index.column()
        if column == 0:
            return KIND_LABELS[finding.kind]
        if column == 1:
            return finding.key
        if column == 2:
            return human_size(finding.object.size) if finding.object else "—"
        if column == 3:
            return f"{finding.row.status}, {human_size(finding.row.size)}" if finding.row else "—"
        return REPAIR_LABELS[finding.repair]


def describe_report(report: CheckReport) -> str:
    """What a check compared, what it left alone and what it found, in a paragraph."""
    scanned = report.scanned
    head = (
        f"Checked {scanned.objects:,} objects, {scanned.rows:,} records and "
        f"{scanned.multipart_uploads:,} partial uploads in {report.duration_s:.1f} s "
        f"at {report.started_at:%H:%M}."
    )
    left_alone = []
    if scanned.within_grace:
        hours = report.grace_seconds / 3600
        left_alone.append(
            f"{scanned.within_grace:,} younger than the grace period ({hours:g} h) or "
            "still uploading"
        )
    if scanned.others_files:
        left_alone.append(f"{scanned.others_files:,} other people's files")
    if left_alone:
        head += " Left alone: " + "; ".join(left_alone) + "."
    if scanned.within_grace:
        head += " “Check without grace” includes the young ones."
    if report.consistent:
        return f"{head} Bucket and catalog agree."
    parts = [f"{KIND_LABELS[FindingKind(k)]}: {n}" for k, n in report.counts.items() if n]
    return f"{head} Found: " + "; ".join(parts) + "."


def evidence_text(finding: Finding) -> str:
    """Why one finding was found: the object and the record as they are, a line each."""
    lines = [finding.explanation]
    if finding.object:
        lines.append(
            f"Object: {finding.object.size:,} bytes, ETag {finding.object.etag}, "
            f"modified {finding.object.last_modified}"
        )
    if finding.row:
        lines.append(
            f"Record #{finding.row.id}: {finding.row.status}, {finding.row.size:,} bytes, "
            f"owner {finding.row.owner}, SHA-256 {finding.row.sha256[:16]}…"
        )
    if finding.upload_id:
        lines.append(f"Partial upload started {finding.initiated}")
    if finding.source:
        lines.append(f"Local copy: {finding.source}")
    return "\n".join(lines)


def repair_plan(findings: list[Finding]) -> str:
    """What a repair will do, a line per finding (the first ``PLAN_LISTED``)."""
    plan = "\n".join(f"• {f.key}: {REPAIR_LABELS[f.repair]}" for f in findings[:PLAN_LISTED])
    more = len(findings) - PLAN_LISTED
    return plan + (f"\n… and {more} more" if more > 0 else "")


def describe_last_report(data: dict[str, object] | None) -> str | None:
    """When the last check ran (as Ferry saved it) and what it found, in a sentence;
    None for no report, or one this Ferry cannot read."""
    if data is None:
        return None
    try:
        started = datetime.fromisoformat(str(data["started_at"])).astimezone()
        scanned = data["scanned"]
        counts = data["counts"]
        if not isinstance(scanned, dict) or not isinstance(counts, dict):
            return None
        duration = float(str(data["duration_s"]))
        found = {FindingKind(kind): int(n) for kind, n in counts.items() if int(n)}
        objects, rows = int(scanned["objects"]), int(scanned["rows"])
    except (KeyError, ValueError, TypeError):
        return None
    head = (
        f"Last checked {started:%d %b %Y at %H:%M} ({duration:.1f} s): "
        f"{objects:,} objects and {rows:,} records."
    )
    problems = {kind: n for kind, n in found.items() if kind not in INFORMATIONAL}
    if not problems:
        return f"{head} Bucket and catalog agreed. “Check now” checks again."
    parts = "; ".join(f"{KIND_LABELS[kind]}: {n}" for kind, n in problems.items())
    return f"{head} Found: {parts}. “Check now” lists them again to repair."
