"""The Bucket & catalog view names every finding and repair in plain words."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop_app.core.check.findings import Finding, FindingKind, ObjectEvidence, RepairAction
from desktop_app.gui.views.check_report import KIND_LABELS, REPAIR_LABELS, FindingsModel


def test_every_finding_kind_and_repair_has_a_plain_label() -> None:
    assert set(KIND_LABELS) == set(FindingKind)
    assert set(REPAIR_LABELS) == set(RepairAction)
    for label in [*KIND_LABELS.values(), *REPAIR_LABELS.values()]:
        assert "_" not in label  # words, not the report's codes


def test_a_version_finding_shows_its_label_and_repair(qtbot: QtBot) -> None:
    model = FindingsModel()
    evidence = ObjectEvidence(12, "e" * 32, "2026-12-03T03:00:00+00:00")
    on_top = Finding(
        FindingKind.FOREIGN_VERSION_ON_TOP, "budget.xlsx", "explained", RepairAction.NONE,
        object=evidence, version_id="v1",
    )  # fmt: skip
    old = Finding(
        FindingKind.DELETED_STILL_STORED, "plan.txt", "explained", RepairAction.DELETE_VERSION,
        object=evidence, version_id="v2",
    )  # fmt: skip
    model.set_items([on_top, old])
    shown = [
        [model.data(model.index(row, column), Qt.ItemDataRole.DisplayRole) for column in (0, 4)]
        for row in range(2)
    ]
    assert shown == [
        ["Another program's version on top", "Nothing (not yours to repair, or kept)"],
        ["Deleted but still stored", "Delete Ferry's old version"],
    ]
