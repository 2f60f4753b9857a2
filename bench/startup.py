#!/usr/bin/env python3
"""How fast the `ferry` command answers: the start-up of the commands that only read.

One command: ``make bench-startup`` (or ``.venv/bin/python bench/startup.py``).
It makes a throw-away FERRY_HOME with a profile like the sandbox's (weed mini
on loopback, an SQLite catalog, a relay named so that `ferry status` asks
about the waiting events), fills the journal with about 50 transfers as a
person's day leaves them (uploaded, recognised as duplicates, one failed, a
few queued and paused), stops the server, then runs each command once to warm
the caches and 5 times more, and prints the median, the fastest and the
slowest wall time of each, as a person at a terminal waits for them.

The server is stopped before anything is timed: the commands measured read
the journal and the catalog only, and a bench that still gave an answer
without the server proves it. ``--keep DIR`` builds the home in DIR (made
anew) and leaves it there, to look at or to time by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import base_env  # noqa: E402

from desktop_app.core.runtime.sandbox import SandboxServer, find_weed  # noqa: E402

FERRY = str(ROOT / ".venv" / "bin" / "ferry")
RUNS = 5
TARGET = 0.3  # seconds, the median of `ferry status` (issue #35)
COMMANDS = (
    ("--version",),
    ("status",),
    ("status", "--json"),
    ("status", "--all"),
    ("status", "--all", "--json"),
    ("ls",),
    ("ls", "--json"),
)
UPLOADED, DUPLICATES, QUEUED = 40, 4, 5


def ferry(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([FERRY, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise SystemExit(f"ferry {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def fill(root: Path, env: dict[str, str], endpoint: str) -> None:
    """A profile and a journal of about 50 transfers, written by `ferry` itself."""
    import boto3

    bucket = f"startup-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=bucket)
    ferry(
        env, "profile", "add", "bench", "--bucket", bucket, "--endpoint-url", endpoint,
        "--prefix", "bench", "--nats-url", "nats://127.0.0.1:4222", "--default",
    )  # fmt: skip
    day = root / "data" / "day"
    day.mkdir(parents=True)
    for n in range(UPLOADED):
        (day / f"report-{n:03d}.txt").write_text(f"report {n}\n" * (n + 1))
    for n in range(DUPLICATES):  # the same content as another: recognised, nothing sent
        (day / f"copy-of-{n:03d}.txt").write_text(f"report {n}\n" * (n + 1))
    os.mkfifo(day / "a-pipe")  # not a file: it fails, with its reason
    ferry(env, "upload", str(day), "--json", check=False)
    later = root / "data" / "later"
    later.mkdir()
    for n in range(QUEUED):
        (later / f"draft-{n}.txt").write_text(f"draft {n}\n")
    queue_only(env, later)


def queue_only(env: dict[str, str], folder: Path) -> None:
    """Transfers queued and not run (a window closed before it got to them), two paused."""
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from desktop_app.core.runtime.environment import Environment\n"
        "from desktop_app.core.runtime.ferry import Ferry\n"
        "from desktop_app.core.settings.secrets import SecretStore\n"
        "from desktop_app.core.settings.paths import FerryPaths\n"
        "env = Environment(FerryPaths.from_environment(os.environ), os.environ, SecretStore())\n"
        "ferry = Ferry.open(env)\n"
        "try:\n"
        "    queued = ferry.queue(sorted(Path(sys.argv[1]).iterdir()))\n"
        "    ferry.pause([r.id for r in queued[:2]])\n"
        "finally:\n"
        "    ferry.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, str(folder)], env=env, check=True)


def measure(env: dict[str, str], args: tuple[str, ...]) -> tuple[list[float], str]:
    """Wall seconds of RUNS runs after one to warm the caches, and the output (all alike)."""
    outputs = set()
    times = []
    for run in range(RUNS + 1):
        start = time.perf_counter()
        done = ferry(env, *args)
        seconds = time.perf_counter() - start
        outputs.add(done.stdout)
        if run:
            times.append(seconds)
    if len(outputs) != 1:
        raise SystemExit(f"ferry {' '.join(args)} answered differently from run to run")
    return times, outputs.pop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build the home here, keep it")
    parser.add_argument("--outputs", type=Path, metavar="DIR", help="write each command's stdout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-startup-") as tmp:
        root = Path(tmp)
        if args.keep is not None:
            shutil.rmtree(args.keep, ignore_errors=True)
            args.keep.mkdir(parents=True)
            root = args.keep.resolve()
        server = SandboxServer(root / "weed", find_weed(os.environ))
        state = server.start()
        env = base_env(state.endpoint_url, root)
        try:
            fill(root, env, state.endpoint_url)
        finally:
            server.stop()
        rows = []
        for command in COMMANDS:
            times, output = measure(env, command)
            rows.append((command, times))
            if args.outputs is not None:
                args.outputs.mkdir(parents=True, exist_ok=True)
                (args.outputs / ("ferry " + " ".join(command)).replace(" ", "_")).write_text(output)
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    print(
        f"Measured {when} on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {UPLOADED + DUPLICATES + 1 + QUEUED} transfers in the "
        f"journal, the server stopped; wall time of `.venv/bin/ferry`, {RUNS} runs after one "
        "to warm the caches."
    )
    print()
    print("| command | median s | fastest s | slowest s |")
    print("| --- | ---: | ---: | ---: |")
    for command, times in rows:
        print(
            f"| `ferry {' '.join(command)}` | {statistics.median(times):.3f} "
            f"| {min(times):.3f} | {max(times):.3f} |"
        )
    status = max(statistics.median(t) for c, t in rows if c[0] == "status")
    met = "met" if status <= TARGET else "NOT met"
    print()
    print(f"Target (#35): `ferry status` at most {TARGET} s (median): {status:.3f} s, {met}.")
    return 0 if status <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
