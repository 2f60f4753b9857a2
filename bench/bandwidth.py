#!/usr/bin/env python3
"""Does a bandwidth limit hold? Ferry and its peers at 25 MB/s, measured on the wire.

``make bench-bandwidth`` (or ``.venv/bin/python bench/bandwidth.py``) starts a
weed mini and, in front of it, a relay (bench/relay.py) that notes when each
byte from the tool to the server passed. Each tool uploads the same 30 files
of 10 MB with its limit set to 25,000,000 bytes/s: Ferry, a profile whose
schedule says so all day; aws-cli, ``max_bandwidth`` (whole KiB/s only:
24,414 KiB/s = 24,999,936 B/s); rclone, ``--bwlimit``; s5cmd has no limit.
The table gives, from the relay's clock, the average rate from the first byte
to the last and the highest over any 10 s, each against the limit. Request
headers are a few hundred bytes a request: the bytes counted are the files'
within 0.1 %.

Everything it starts, it stops; the data lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from relay import Relay, WireLog  # noqa: E402
from run import base_env, ensure_peers, fresh_bucket  # noqa: E402

from desktop_app.core.runtime.sandbox import SandboxServer, find_weed  # noqa: E402

LIMIT = 25_000_000
FILES, FILE_SIZE = 30, 10_000_000
WINDOW_SECONDS = 10.0


def tool_command(tool: str, source: Path, bucket: str, endpoint: str, peers: Path) -> list[str]:
    if tool == "ferry":
        return [str(ROOT / ".venv" / "bin" / "ferry"), "upload", str(source), "--json"]
    if tool == "aws-cli":
        return [str(peers / "aws"), "--endpoint-url", endpoint, "s3", "cp", str(source),
                f"s3://{bucket}/bw/", "--recursive"]  # fmt: skip
    if tool == "rclone":
        return [str(peers / "rclone"), "copy", str(source), f"weed:{bucket}/bw/",
                "--transfers", "8", "--bwlimit", f"{LIMIT}B"]  # fmt: skip
    raise ValueError(tool)


def limit_settings(tool: str, env: dict[str, str], endpoint: str, bucket: str) -> None:
    if tool == "ferry":
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "ferry"), "profile", "add", "bench", "--bucket", bucket,
             "--endpoint-url", endpoint, "--prefix", "bw", "--default",
             "--bandwidth-schedule", f"00:00-24:00 {LIMIT}B/s"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        # As a person does after adding a profile: the test also learns, once per
        # endpoint, how the server treats conditional writes (a few small
        # requests that are not the upload's bytes).
        subprocess.run([str(ROOT / ".venv" / "bin" / "ferry"), "profile", "test"],
                       env=env, check=True, capture_output=True)  # fmt: skip
    if tool == "aws-cli":
        Path(env["AWS_CONFIG_FILE"]).write_text(
            f"[default]\ns3 =\n  max_bandwidth = {LIMIT // 1024}KB/s\n"
            "  max_concurrent_requests = 8\n"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default="ferry,aws-cli,rclone")
    parser.add_argument(
        "--timeline",
        type=float,
        metavar="SECONDS",
        help="also print each tool's MB in each step of SECONDS from its first byte",
    )
    args = parser.parse_args()
    peers = ensure_peers()
    with tempfile.TemporaryDirectory(prefix="ferry-bw-") as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        for n in range(FILES):
            (data / f"f{n:02d}.bin").write_bytes(os.urandom(FILE_SIZE))
        server = SandboxServer(root / "weed", find_weed(os.environ))
        state = server.start()
        log = WireLog()
        relay = Relay(state.ports.s3, log=log)
        endpoint = relay.endpoint
        rows = []
        try:
            for tool in args.tools.split(","):
                env = base_env(endpoint, root / tool)
                (root / tool).mkdir()
                bucket = fresh_bucket(peers, endpoint, env)
                limit_settings(tool, env, endpoint, bucket)
                log.clear()
                result = subprocess.run(
                    tool_command(tool, data, bucket, endpoint, peers),
                    env=env, capture_output=True,
                )  # fmt: skip
                average, highest, sent = log.rates(WINDOW_SECONDS)
                if args.timeline:
                    steps = " ".join(f"{count / 1e6:.1f}" for count in log.per_step(args.timeline))
                    print(f"{tool}, MB in each {args.timeline} s: {steps}", flush=True)
                if result.returncode != 0:
                    sys.stderr.write(f"{tool}: " + result.stderr.decode(errors="replace")[-1500:])
                rows.append((tool, result.returncode == 0, average, highest, sent))
        finally:
            relay.close()
            server.stop()
    when = time.strftime("%Y-%m-%d")
    print(f"\n{FILES} files of {FILE_SIZE / 1e6:.0f} MB, limit {LIMIT / 1e6:.1f} MB/s, "
          f"measured on the wire ({when}, {os.cpu_count()} cores)\n")  # fmt: skip
    print("| tool | ok | average MB/s | vs limit | highest 10 s MB/s | vs limit | MB sent |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for tool, ok, average, highest, sent in rows:
        print(f"| {tool} | {'yes' if ok else 'NO'} | {average / 1e6:.2f} | "
              f"{average / LIMIT - 1:+.1%} | {highest / 1e6:.2f} | {highest / LIMIT - 1:+.1%} | "
              f"{sent / 1e6:.1f} |")  # fmt: skip
    return 0 if all(ok for _, ok, *_ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
