"""What a consistency check reports: its findings, their evidence, and the report.

A finding names its kind, the key, the evidence the check saw (the object,
the row, every row of the key as stamps a repair re-checks against) and the
repair it plans; its explanation is written once per kind, in
:mod:`desktop_app.core.check.judge`. The types are plain data, read by the
window, the CLI (``ferry check --json``) and the local endpoint alike.
"""

from __future__ import annotations

import csv
import enum
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop_app.core.model.errors import FerryError

if TYPE_CHECKING:
    from desktop_app.core.catalog.records import FileRecord


class FindingKind(enum.Enum):
    ORPHAN_OBJECT = "orphan_object"
    MISSING_OBJECT = "missing_object"
    MISMATCH = "mismatch"
    STALE_PENDING = "stale_pending"
    DELETED_STILL_STORED = "deleted_still_stored"
    STALE_MULTIPART = "stale_multipart"
    SOMEONE_ELSES = "someone_elses"  # another user's live file: told, never acted on by you
    # Another program's version written over Ferry's in a bucket that keeps
    # versions: Ferry's is still stored beneath it. Never deleted by Ferry.
    FOREIGN_VERSION_ON_TOP = "foreign_version_on_top"


# Findings that describe, and ask nothing of, the person checking.
INFORMATIONAL = frozenset({FindingKind.SOMEONE_ELSES})


class RepairAction(enum.Enum):
    DELETE_OBJECT = "delete_object"
    ADOPT = "adopt"
    REUPLOAD = "reupload"
    MARK_MISSING = "mark_missing"
    ACTIVATE = "activate"
    REMOVE_ROW = "remove_row"
    ABORT_UPLOAD = "abort_upload"
    DELETE_VERSION = "delete_version"  # one older version of Ferry's, by its id
    NONE = "none"


class RepairOutcome(enum.Enum):
    DONE = "done"
    CHANGED = "changed since the check"  # the re-check saw another state: nothing done
    REFUSED = "refused"  # not this login's to repair, or kept on purpose
    FAILED = "failed"


class ConsistencyError(FerryError):
    title = "Consistency check failed"


@dataclass(frozen=True)
class ObjectEvidence:
    size: int
    etag: str
    last_modified: str
    sha256: str | None = None


@dataclass(frozen=True)
class RowEvidence:
    id: int
    status: str
    owner: str
    size: int
    sha256: str
    etag: str | None
    created_at: str
    deleted_at: str | None

    @classmethod
    def of(cls, row: FileRecord) -> RowEvidence:
        return cls(
            row.id,
            row.status.value,
            row.owner,
            row.size,
            row.sha256,
            row.etag,
            row.created_at.isoformat(),
            row.deleted_at.isoformat() if row.deleted_at else None,
        )


@dataclass(frozen=True)
class RowStamp:
    """What a re-check compares: a row of the key as the check saw it."""

    id: int
    status: str
    etag: str | None
    # Touched since the check: its upload is alive, so a repair drops the finding.
    alive_at: str | None = None

    @classmethod
    def of(cls, row: FileRecord) -> RowStamp:
        alive_at = row.alive_at.isoformat() if row.alive_at else None
        return cls(row.id, row.status.value, row.etag, alive_at)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    key: str
    explanation: str
    repair: RepairAction
    object: ObjectEvidence | None = None
    row: RowEvidence | None = None
    upload_id: str | None = None
    initiated: str | None = None
    source: str | None = None  # the local copy a re-upload would use
    rows_seen: tuple[RowStamp, ...] = ()  # every row of the key the check could see
    # In a bucket that keeps versions: the version of Ferry's the finding is about
    # (for DELETE_VERSION, the one the repair removes, and only that one).
    version_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        # What dataclasses.asdict gives, without its deep copy of every value (a
        # report of thousands of findings spent most of its time there): the
        # evidence holds plain values only.
        data = _fields_of(self)
        data["kind"] = self.kind.value
        data["repair"] = self.repair.value
        data["object"] = _fields_of(self.object) if self.object is not None else None
        data["row"] = _fields_of(self.row) if self.row is not None else None
        data["rows_seen"] = tuple(_fields_of(stamp) for stamp in self.rows_seen)
        return data


def _fields_of(instance: Any) -> dict[str, Any]:
    """A dataclass's fields and values, one level deep."""
    return {f.name: getattr(instance, f.name) for f in fields(instance)}


@dataclass(frozen=True)
class Scanned:
    objects: int
    rows: int
    multipart_uploads: int
    within_grace: int
    others_files: int = 0  # objects under someone else's live row, left to them
    older_versions: int = 0  # noncurrent versions listed, in a bucket that keeps versions
    # Ferry's versions of deleted files kept on purpose: the profile's retention
    # period has not passed (`ferry delete` hid them behind a marker).
    kept_versions: int = 0


@dataclass(frozen=True)
class CheckReport:
    findings: list[Finding]
    scanned: Scanned
    started_at: datetime
    duration_s: float
    grace_seconds: int
    notes: tuple[str, ...] = ()  # what could not be checked on this server, said plainly

    @property
    def counts(self) -> dict[str, int]:
        counts = {kind.value: 0 for kind in FindingKind}
        for finding in self.findings:
            counts[finding.kind.value] += 1
        return counts

    @property
    def consistent(self) -> bool:
        return all(f.kind in INFORMATIONAL for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "findings": [f.to_json() for f in self.findings],
            "scanned": asdict(self.scanned),
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "grace_seconds": self.grace_seconds,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class RepairResult:
    finding: Finding
    outcome: RepairOutcome
    message: str

    @property
    def done(self) -> bool:
        return self.outcome is RepairOutcome.DONE


@dataclass
class CheckOptions:
    grace_seconds: int = 24 * 3600
    retention_seconds: int = 0
    only: set[FindingKind] | None = None
    delete_orphans: bool = False  # plan deletion, not adoption, of objects nobody registered
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[int, int], None] | None = None  # objects, rows scanned so far


REPORT_COLUMNS = ("kind", "key", "repair", "explanation", "object_size", "row_size", "row_status")


def write_report(report: CheckReport, path: Path) -> None:
    """Save a report as JSON (.json) or CSV (anything else)."""
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        for finding in report.findings:
            writer.writerow(
                [
                    finding.kind.value,
                    finding.key,
                    finding.repair.value,
                    finding.explanation,
                    finding.object.size if finding.object else "",
                    finding.row.size if finding.row else "",
                    finding.row.status if finding.row else "",
                ]
            )
