#!/usr/bin/env python3
"""The floor under Ferry's small-file times: what its stack costs before Ferry's own work.

One command: ``make bench-floor`` (or ``.venv/bin/python bench/floor.py``). On
a weed mini on loopback it measures, on this machine:

- a Python start (``python -c pass``) and a start that imports what Ferry's
  upload cannot do without (boto3, SQLAlchemy's ORM and SQLite dialect,
  awscrt): the median of 5 fresh processes after one to warm the caches;
- in one process: making an S3 client (boto3, the options Ferry gives one for
  a plain-http endpoint), and botocore's PutObject of 64 KiB, 300 of them one
  after another: CPU and wall time per request;
- 500 files of 64 KiB sent by Ferry and by each peer (as ``bench/run.py
  --quick``: a fresh bucket each, Ferry from a home where it ran before):
  wall time, the tool's own CPU, and the server's CPU meanwhile.

From these it prints the floor of a tool built on this stack in one process:
the imports, one client, and 500 PutObjects' CPU, with nothing else (no
journal, catalog, hash, file read or progress) and every network wait
overlapped. Beside each peer it prints the CPU the machine had left for a
tool to match that peer's wall time (its cores times the wall, less what the
server used). A target below the floor cannot be met by any work on Ferry's
own code; only by another stack or another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import (  # noqa: E402
    QUICK,
    base_env,
    empty_bucket,
    ensure_peers,
    ferry_profile,
    fresh_bucket,
    make_data,
    measure,
    publish,
    tool_commands,
    weed_on_loopback,
)

PYTHON = str(ROOT / ".venv" / "bin" / "python")
STACK = "import boto3, sqlalchemy.orm, sqlalchemy.dialects.sqlite, awscrt.checksums"
TOOLS = ("ferry", "s5cmd", "rclone", "aws-cli")
STARTS = 5
PUTS = 300

# Run in a fresh interpreter so that nothing this script imported is counted.
PUT_PROBE = """
import json, os, sys, time
import boto3
from botocore.config import Config
endpoint, key, secret, bucket, puts = sys.argv[1:6]
started = time.perf_counter()
client = boto3.session.Session().client(
    "s3", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id=key, aws_secret_access_key=secret,
    config=Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path", "payload_signing_enabled": False},
    ),
)
client_seconds = time.perf_counter() - started
body = os.urandom(64 * 1024)
for n in range(20):
    client.put_object(Bucket=bucket, Key=f"floor/warm-{n}", Body=body)
cpu, wall = time.thread_time(), time.perf_counter()
for n in range(int(puts)):
    client.put_object(Bucket=bucket, Key=f"floor/put-{n}", Body=body)
cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
print(json.dumps({"client_s": client_seconds, "put_cpu_s": cpu / int(puts),
                  "put_wall_s": wall / int(puts)}))
"""


@dataclass(frozen=True)
class ToolRun:
    tool: str
    wall_s: float
    cpu_s: float
    server_cpu_s: float


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_start(code: str, env: dict[str, str]) -> float:
    """Median wall seconds of ``python -c code`` in fresh processes, after one to warm up."""
    times = []
    for run in range(STARTS + 1):
        started = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], env=env, check=True)
        if run:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def put_figures(endpoint: str, bucket: str, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [PYTHON, "-c", PUT_PROBE, endpoint, env["AWS_ACCESS_KEY_ID"],
         env["AWS_SECRET_ACCESS_KEY"], bucket, str(PUTS)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def tool_run(
    tool: str, source: Path, endpoint: str, peers: Path, env: dict[str, str], server_pid: int
) -> ToolRun:
    bucket = fresh_bucket(peers, endpoint, env)
    if tool == "ferry":
        ferry_profile(env, endpoint, bucket)
    command = tool_commands(tool, source, True, bucket, endpoint, peers)
    server_before = process_cpu_seconds(server_pid)
    measured = measure(command, env)
    server_cpu = process_cpu_seconds(server_pid) - server_before
    empty_bucket(peers, endpoint, env, bucket)
    if measured.status != 0:
        raise SystemExit(f"{tool} failed (exit {measured.status})")
    return ToolRun(tool, measured.seconds, measured.cpu_seconds, server_cpu)


def render(
    starts: dict[str, float], puts: dict[str, float], runs: list[ToolRun], files: int
) -> str:
    cores = os.cpu_count() or 1
    stack = starts["stack"]
    floor = stack + puts["client_s"] + files * puts["put_cpu_s"]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{cores} cores, Python {platform.python_version()}, weed mini on loopback; "
        f"{files} files of 64 KiB, the median of the runs of each tool.",
        "",
        "| what the stack costs | seconds |",
        "| --- | ---: |",
        f"| `python -c pass` | {starts['bare']:.3f} |",
        f'| `python -c "{STACK}"` | {stack:.3f} |',
        f"| one S3 client made (boto3) | {puts['client_s']:.3f} |",
        f"| botocore PutObject of 64 KiB, CPU / wall | {puts['put_cpu_s'] * 1000:.2f} ms / "
        f"{puts['put_wall_s'] * 1000:.2f} ms |",
        f"| **floor**: imports + client + {files} PutObjects' CPU, one process | **{floor:.2f}** |",
        "",
        "| tool | wall s | its CPU s | server's CPU s | CPU left to match it "
        "(cores x wall - server) | floor / its wall | Ferry / its wall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_tool: dict[str, list[ToolRun]] = {}
    for run in runs:
        by_tool.setdefault(run.tool, []).append(run)
    ferry_wall = statistics.median(r.wall_s for r in by_tool["ferry"])
    for tool, alike in by_tool.items():
        wall = statistics.median(r.wall_s for r in alike)
        cpu = statistics.median(r.cpu_s for r in alike)
        server = statistics.median(r.server_cpu_s for r in alike)
        if tool == "ferry":
            lines.append(f"| ferry | {wall:.2f} | {cpu:.2f} | {server:.2f} | | | |")
            continue
        lines.append(
            f"| {tool} | {wall:.2f} | {cpu:.2f} | {server:.2f} | {cores * wall - server:.2f} "
            f"| {floor / wall:.2f}x | {ferry_wall / wall:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tool, alternating")
    args = parser.parse_args()
    peers = ensure_peers()
    with tempfile.TemporaryDirectory(prefix="ferry-floor-") as tmp:
        root = Path(tmp)
        with weed_on_loopback(root) as state:
            env = base_env(state.endpoint_url, root)
            starts = {"bare": median_start("pass", env), "stack": median_start(STACK, env)}
            bucket = fresh_bucket(peers, state.endpoint_url, env)
            puts = put_figures(state.endpoint_url, bucket, env)
            empty_bucket(peers, state.endpoint_url, env, bucket)
            source, _size = make_data(root / "data", QUICK, ["small"])["small"]
            runs = []
            for _round in range(args.rounds):
                for tool in TOOLS:
                    run = tool_run(tool, source, state.endpoint_url, peers, env, state.pid)
                    print(f"{tool:8} {run.wall_s:6.2f} s  cpu {run.cpu_s:5.2f} s  "
                          f"server {run.server_cpu_s:5.2f} s", flush=True)  # fmt: skip
                    runs.append(run)
    publish(render(starts, puts, runs, QUICK.small_files), "floor.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
