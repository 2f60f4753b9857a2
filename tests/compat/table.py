"""Turn the compat suite's report into docs/COMPATIBILITY.md.

    python -m tests.compat.table REPORT.json docs/COMPATIBILITY.md [--seconds N]

REPORT.json is what tests/compat writes with FERRY_COMPAT_REPORT set. The page
has the date, each server's version, one row per case, and under the table
what each server did where servers differ, with any failure's message.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.compat.conftest import ALL_CASES, ALL_SERVERS

ROOT = Path(__file__).resolve().parents[2]

TITLES = {
    "weed": "SeaweedFS (weed mini)",
    "moto": "moto server",
    "rclone": "rclone serve s3",
    "ceph": "Ceph RGW",
    "swift": "Swift + s3api",
    "s3rver": "s3rver",
    "localstack": "LocalStack",
}
CASES = {
    "protection": "`ferry profile test`: protection from other programs",
    "zero_bytes": "0 B file",
    "five_mib": "5 MiB file (one part)",
    "hundred_mib": "100 MiB file (20 parts)",
    "unicode_names": "unicode and reserved-character names",
    "check": "`ferry check` finds nothing after uploads",
    "delete": "`ferry delete` (row and object)",
    "kill_resume": "SIGKILL of `ferry upload`, then `ferry resume`",
    "foreign_before_put": "another program wrote the key before Ferry's PUT",
    "foreign_during_multipart": "another program wrote the key during Ferry's multipart upload",
    "versioned_delete": "`ferry delete` in a versioned bucket",
    "opaque_etags": "the server's ETags (single PUT / multipart)",
}
NOT_RUN = {"localstack": "not run: needs Docker"}
NOTES = """## Notes

- **LocalStack** needs Docker, which the machine that runs `make compat` does
  not have; `localstack-core` from PyPI in host mode did not start either
  (docs/DECISIONS.md, "Issue #33: the compatibility table").
- **Ceph RGW, a write during Ferry's multipart upload:** RGW 16.2 refuses
  If-None-Match and If-Match on PutObject but ignores both on
  CompleteMultipartUpload. Ferry's write probe completes a one-part multipart
  upload over its own probe object on If-None-Match `*` too, finds it lands,
  and Ferry then looks at the key just before and just after each Complete
  on that server (`ferry profile test` says so): another program's object
  written during the upload stays, the upload fails as a conflict. Only a
  write in the instant between that look and the Complete could be lost.
- **Swift, `ferry delete` of a multipart file:** s3api compares a DELETE's
  If-Match with Swift's own ETag of the multipart (SLO) object, not the S3
  ETag it answers on HEAD, so it refuses Ferry's conditional delete (412).
  Ferry then HEADs the key: exactly the ETag, size and SHA-256 metadata it
  recorded prove the object Ferry's, and it is deleted right after without
  the condition (only a write by another program in that instant could be
  lost); another object there stays.
- **No versioning** on rclone `serve s3` (NotImplemented) and s3rver (it takes
  `PUT ?versioning` for a bucket creation): `ferry delete` removes the object
  as on any unversioned bucket.
- **ETags**: every server answers the MD5 of a single PUT. SeaweedFS, moto,
  Ceph and Swift answer the MD5 of the parts' MD5s with `-N` for a multipart
  object; rclone and s3rver the whole object's MD5. Ferry records the
  server's ETag as it is and proves bytes by SHA-256 either way.
- Rerun with `make compat`; one server: `FERRY_COMPAT_SERVERS=ceph pytest tests/compat`.
"""


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def versions() -> dict[str, str]:
    from desktop_app.core.runtime.sandbox import find_weed
    from tests.conftest import find_s3rver

    found: dict[str, str] = {}
    weed = _first_line([str(find_weed(os.environ)), "version"])
    found["weed"] = (re.search(r"\d+\.\d+", weed) or [weed])[0]
    import moto

    found["moto"] = moto.__version__
    rclone = Path(sys.executable).parent / "rclone"
    found["rclone"] = _first_line([str(rclone), "version"]).removeprefix("rclone ").lstrip("v")
    ceph = _first_line(["radosgw", "--version"])  # ceph version 16.2.15 (hash) pacific (stable)
    words = ceph.split()
    found["ceph"] = f"{words[2]} {words[4]}" if len(words) > 4 else ceph
    found["swift"] = _first_line(["dpkg-query", "-W", "-f", "${Version}", "swift-proxy"])
    package = find_s3rver().resolve().parent.parent / "package.json"
    try:
        found["s3rver"] = json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        found["s3rver"] = "unknown"
    found["localstack"] = "-"
    return found


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "not run"
    notes = entry.get("notes") or {}
    observed = notes.get("observed", "ok")
    if entry.get("outcome") != "passed":
        return "✘ **FAILED** (below)"
    if observed == "ok":
        return "✔"
    if "Ferry gap" in notes:
        return f"✘ {observed}: Ferry gap (below)"
    return (
        f"✔ {observed}" if observed.startswith(("conditions", "MD5", "look")) else f"◐ {observed}"
    )


def render(report: list[dict[str, Any]], seconds: float | None) -> str:
    by = {(e["server"], e["case"]): e for e in report if "server" in e and "case" in e}
    servers = [s for s in ALL_SERVERS if any(k[0] == s for k in by)] + list(NOT_RUN)
    found = versions()
    now = datetime.now(UTC)
    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    lines = [
        "# Compatibility",
        "",
        f"Written by `make compat` on {now:%Y-%m-%d %H:%M} UTC from a run of `tests/compat` "
        f"(Ferry at commit {commit}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores"
        + (f"; the run took {seconds / 60:.1f} min" if seconds else "")
        + "). Every case runs the real `ferry` command and checks what a user sees: "
        "the exit code, the SHA-256 of the bytes on the server against the file, and "
        "the catalog rows of `ferry ls --json`.",
        "",
        "✔ Ferry's guarantee held (with what the server did, where servers differ). "
        "◐ the server lacks the feature. ✘ Ferry's guarantee did not hold on this server "
        "(a Ferry gap, see the notes). ◐ and ✘ outcomes are the expected ones for that "
        "server (`EXPECTED` in `tests/compat/test_servers.py`), so the run passes; a failed "
        "test shows as ✘ **FAILED**.",
        "",
        "| case | " + " | ".join(TITLES[s] for s in servers) + " |",
        "| --- | " + " | ".join("---" for _ in servers) + " |",
        "| version | " + " | ".join(found.get(s, "?") for s in servers) + " |",
    ]
    for case in ALL_CASES:
        cells = [NOT_RUN[s] if s in NOT_RUN else _cell(by.get((s, case))) for s in servers]
        lines.append(f"| {CASES[case]} | " + " | ".join(cells) + " |")
    lines += ["", "## What each server did", ""]
    for server in servers:
        if server in NOT_RUN:
            continue
        lines.append(f"**{TITLES[server]} {found.get(server, '')}**")
        lines.append("")
        for case in ALL_CASES:
            entry = by.get((server, case))
            if entry is None:
                continue
            notes = {k: v for k, v in (entry.get("notes") or {}).items() if k != "observed"}
            if notes:
                said = "; ".join(f"{k}: {v}" for k, v in notes.items())
                lines.append(f"- {CASES[case]}: {said}")
            if entry.get("outcome") != "passed":
                failure = entry.get("failure", "").strip().splitlines()
                message = " ".join(line for line in failure if line.startswith("E ")) or (
                    failure[-1] if failure else "?"
                )
                lines.append(f"- **{CASES[case]} FAILED**: `{message[:600]}`")
        lines.append("")
    lines += [NOTES]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    text = render(report, args.seconds)
    args.output.write_text(text + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
