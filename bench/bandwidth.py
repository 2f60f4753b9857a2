#!/usr/bin/env python3
"""Does a bandwidth limit hold? Ferry and its peers at 25 MB/s, measured on the wire.

``make bench-bandwidth`` (or ``.venv/bin/python bench/bandwidth.py``) starts a
weed mini and, in front of it, a TCP relay that notes when each byte from the
tool to the server passed. Each tool uploads the same 30 files of 10 MB with
its limit set to 25,000,000 bytes/s (Ferry: a profile whose schedule says so
all day; aws-cli: ``max_bandwidth`` in whole KiB/s, 24,414 KiB/s = 24,999,936 B/s; rclone: ``--bwlimit``; s5cmd has no
limit). The table gives, from the relay's clock, the average rate from the
first byte to the last and the highest rate over any 10 s, both against the
limit. Request headers and the server's answers are a few hundred bytes per
request, so the bytes counted are the files' bytes within 0.1 %.

Everything it starts, it stops; the data lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import base_env, ensure_peers, fresh_bucket  # noqa: E402

from desktop_app.core.sandbox import SandboxServer, find_weed  # noqa: E402

LIMIT = 25_000_000
FILES, FILE_SIZE = 30, 10_000_000
WINDOW_SECONDS = 10.0


@dataclass
class WireLog:
    """Bytes from the tools to the server, with the monotonic time they passed."""

    times: list[float] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)  # cumulative bytes at each time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, count: int) -> None:
        with self.lock:
            self.times.append(time.monotonic())
            self.totals.append((self.totals[-1] if self.totals else 0) + count)

    def clear(self) -> None:
        with self.lock:
            self.times.clear()
            self.totals.clear()

    def rates(self, window: float) -> tuple[float, float, int]:
        """Average bytes/s first to last byte, the highest over any ``window`` s, bytes."""
        with self.lock:
            times, totals = list(self.times), list(self.totals)
        if len(times) < 2:
            return 0.0, 0.0, totals[-1] if totals else 0
        average = totals[-1] / (times[-1] - times[0])
        highest = 0.0
        for index, start in enumerate(times):
            end = bisect.bisect_right(times, start + window) - 1
            before = totals[index - 1] if index else 0
            highest = max(highest, (totals[end] - before) / window)
        if times[-1] - times[0] < window:
            highest = average  # the whole run is shorter than one window
        return average, highest, totals[-1]


class CountingRelay:
    """A TCP relay on a loopback port: tool -> relay -> server, counting what goes up."""

    def __init__(self, target_port: int, log: WireLog) -> None:
        self.target_port = target_port
        self.log = log
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        try:
            while data := source.recv(256 * 1024):
                if upward:
                    self.log.note(len(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


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
    if tool == "aws-cli":
        Path(env["AWS_CONFIG_FILE"]).write_text(
            f"[default]\ns3 =\n  max_bandwidth = {LIMIT // 1024}KB/s\n  max_concurrent_requests = 8\n"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default="ferry,aws-cli,rclone")
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
        relay = CountingRelay(state.ports.s3, log)
        endpoint = f"http://127.0.0.1:{relay.port}"
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
