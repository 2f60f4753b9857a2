"""`ferry check`: compare bucket and catalog; with ``--repair --yes`` fix what it finds.

Read-only unless repairs are carried out (``--repair`` alone is a dry run that
says what each finding would get). Exit 0 when bucket and catalog agree, or
when every repair that matters was done; 1 otherwise.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from desktop_app.cli.rendering import EXIT_FAILED, EXIT_OK, emit
from desktop_app.cli.session import with_ferry

# The engine is imported inside the handlers, for start-up (see session.py).
if TYPE_CHECKING:
    from desktop_app.core.check.findings import CheckReport, RepairResult
    from desktop_app.core.runtime.ferry import Ferry


def cmd_check(args: argparse.Namespace) -> int:
    from desktop_app.core.check.findings import INFORMATIONAL, CheckOptions, FindingKind

    def work(ferry: Ferry) -> int:
        options = CheckOptions(
            grace_seconds=ferry.profile.grace_seconds if args.grace is None else args.grace,
            retention_seconds=ferry.profile.retention_seconds,
            only={FindingKind(k) for k in args.only} if args.only else None,
            delete_orphans=args.delete_orphans,
        )
        report = ferry.check(options)
        results: list[RepairResult] = []
        if args.repair and args.yes:
            results = ferry.repair(report.findings, adopt_owner=args.adopt_owner)
        document = report.to_json()
        if args.repair:
            document["repairs"] = (
                [
                    {"kind": r.finding.kind.value, "key": r.finding.key, "done": r.done,
                     "outcome": r.outcome.value, "message": r.message}
                    for r in results
                ]
                if args.yes
                else "dry run: add --yes to carry out the repairs listed per finding"
            )  # fmt: skip
        if args.json:
            emit(document)
        else:
            _print_report(report, results, dry_run=args.repair and not args.yes)
        if results:
            remaining = [r for r in results if not r.done and r.finding.kind not in INFORMATIONAL]
            return EXIT_FAILED if remaining else EXIT_OK
        return EXIT_OK if report.consistent else EXIT_FAILED

    return with_ferry(args, work, read_only=not (args.repair and args.yes))


def _print_report(report: CheckReport, results: list[RepairResult], *, dry_run: bool) -> None:
    scanned = report.scanned
    print(
        f"Checked {scanned.objects} objects, {scanned.rows} catalog rows and "
        f"{scanned.multipart_uploads} unfinished uploads in {report.duration_s:.1f} s "
        f"({scanned.within_grace} younger than the grace period or in flight, and "
        f"{scanned.others_files} other users' files, left alone)."
    )
    if scanned.kept_versions:
        print(
            f"{scanned.kept_versions} older version(s) of deleted files are kept until the "
            "profile's retention period has passed."
        )
    for note in report.notes:
        print(f"Note: {note}")
    if report.consistent:
        print("Bucket and catalog agree.")
    for finding in report.findings:
        print(f"- {finding.kind.value}: {finding.key}\n    {finding.explanation}")
        if finding.version_id is not None:
            print(f"    version: {finding.version_id}")
        if dry_run:
            print(f"    would: {finding.repair.value}")
    for result in results:
        verdict = "repaired" if result.done else f"NOT repaired ({result.outcome.value})"
        print(f"{verdict}: {result.finding.key}: {result.message}")
