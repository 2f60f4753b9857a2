#!/usr/bin/env python3
"""The consistency check at scale: 10,000 and 100,000 objects and rows.

For each size it fills a fresh bucket on a local weed mini (s5cmd, many small
objects) and an SQLite catalog (rows written directly, as the catalog module
would), plants a few hundred disagreements of every kind, then runs
`ferry check --json` and `s5cmd ls` and prints time and peak memory of each,
and whether the check found exactly the planted findings.
Run: .venv/bin/python bench/check_scale.py [--sizes 10000,100000] [--planted 200]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rss import wait_with_peak_rss  # noqa: E402
from run import base_env, ensure_peers, measure, publish, weed_on_loopback  # noqa: E402

from desktop_app.core.catalog.service import open_catalog  # noqa: E402

FERRY = str(ROOT / ".venv" / "bin" / "ferry")


def fill(
    size: int, planted: int, root: Path, endpoint: str, peers: Path, env: dict[str, str]
) -> dict[str, int]:
    bucket = f"scale-{uuid.uuid4().hex[:8]}"
    s5cmd = [str(peers / "s5cmd"), "--endpoint-url", endpoint]
    subprocess.run([*s5cmd, "mb", f"s3://{bucket}"], env=env, check=True, capture_output=True)
    data = root / f"objects-{size}"
    data.mkdir()
    # objects 0..size-1 exist; the catalog lists the same keys, except planted ones
    orphan = set(range(0, planted))  # object, no row
    missing = set(range(size, size + planted))  # row, no object
    mismatch = set(range(planted, 2 * planted))  # both, sizes differ
    stale = set(range(size + planted, size + 2 * planted))  # pending row, no object
    deleted = set(range(2 * planted, 3 * planted))  # deleted row, object still there
    for n in range(size):
        (data / f"k{n:07d}").write_bytes(b"%07d" % n)
    subprocess.run(
        [*s5cmd, "--numworkers", "64", "cp", f"{data}/*", f"s3://{bucket}/scale/"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    catalog_file = root / f"catalog-{size}.sqlite3"
    open_catalog(f"sqlite:///{catalog_file}", owner="bench").close()
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat(" ")
    with sqlite3.connect(catalog_file) as db:
        rows = []
        for n in range(size + 2 * planted):
            if n in orphan:
                continue
            body = b"%07d" % n
            status = "pending" if n in stale else "deleted" if n in deleted else "active"
            row_size = len(body) + (1 if n in mismatch else 0)
            etag = hashlib.md5(body).hexdigest()
            rows.append(
                (bucket, f"scale/k{n:07d}", "bench", f"k{n:07d}", row_size,
                 hashlib.sha256(body + b"%d" % n).hexdigest(), etag, "application/octet-stream",
                 status, old, old, old if status == "deleted" else None)
            )  # fmt: skip
        db.executemany(
            "INSERT INTO files (bucket, key, owner, original_name, size, sha256, etag, "
            "content_type, status, created_at, uploaded_at, deleted_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return {
        "bucket_size": size,
        "orphan_object": len(orphan),
        "missing_object": len(missing),
        "mismatch": len(mismatch),
        "stale_pending": len(stale),
        "deleted_still_stored": len(deleted),
        "_bucket": bucket,  # type: ignore[dict-item]
        "_catalog": str(catalog_file),  # type: ignore[dict-item]
    }


@dataclass(frozen=True)
class CheckRun:
    objects: int
    planted: int
    check_seconds: float
    check_rss_mib: float
    ls_seconds: float
    exact: bool
    counts: dict[str, int]

    def line(self) -> str:
        found = "yes" if self.exact else f"no: {self.counts}"
        return (
            f"| {self.objects:,} | {self.planted} | {self.check_seconds:.2f} | "
            f"{self.check_rss_mib:.0f} | {self.ls_seconds:.2f} | "
            f"{self.check_seconds / self.ls_seconds:.2f}x | {found} |"
        )


def measure_check(
    size: int, planted_per_kind: int, root: Path, endpoint: str, peers: Path, env: dict[str, str]
) -> CheckRun:
    """Fill a bucket and a catalog with ``size`` objects, then time `ferry check` and `s5cmd ls`."""
    planted = fill(size, planted_per_kind, root, endpoint, peers, env)
    bucket, catalog = str(planted.pop("_bucket")), str(planted.pop("_catalog"))
    home = root / f"home-{size}"
    ferry_env = dict(env, FERRY_HOME=str(home))
    subprocess.run(
        [FERRY, "profile", "add", "scale", "--bucket", bucket,
         "--endpoint-url", endpoint, "--catalog-url",
         f"sqlite:///{catalog}", "--owner", "bench", "--prefix", "scale"],
        env=ferry_env, check=True, capture_output=True,
    )  # fmt: skip
    out = root / f"check-{size}.json"
    start = time.perf_counter()
    with out.open("w") as handle:
        command = [FERRY, "check", "--json", "--grace", "0"]
        process = subprocess.Popen(command, env=ferry_env, stdout=handle)
        _status, peak_mib, _cpu = wait_with_peak_rss(process.pid)
    check_s = time.perf_counter() - start
    counts = json.loads(out.read_text())["counts"]
    expected = {k: v for k, v in planted.items() if k != "bucket_size"}
    exact = all(counts.get(k, 0) == v for k, v in expected.items()) and sum(counts.values()) == sum(
        expected.values()
    )
    ls_s = measure(
        [str(peers / "s5cmd"), "--endpoint-url", endpoint, "ls", f"s3://{bucket}/scale/*"], env
    ).seconds
    return CheckRun(size, planted_per_kind, check_s, peak_mib, ls_s, exact, counts)


HEADER = [
    "| objects | planted per kind | `ferry check` s | peak RSS MiB | `s5cmd ls` s | ratio "
    "| found exactly the planted |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--planted", type=int, default=200)
    args = parser.parse_args()
    peers = ensure_peers()
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, {os.cpu_count()} cores, "
        "weed mini on loopback, SQLite catalog.",
        "",
        *HEADER,
    ]
    with tempfile.TemporaryDirectory(prefix="ferry-scale-") as tmp:
        root = Path(tmp)
        with weed_on_loopback(root) as state:
            env = base_env(state.endpoint_url, root)
            for size in (int(s) for s in args.sizes.split(",")):
                run = measure_check(size, args.planted, root, state.endpoint_url, peers, env)
                print(run.line(), flush=True)
                lines.append(run.line())
    publish("\n".join(lines) + "\n", "check-scale.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
