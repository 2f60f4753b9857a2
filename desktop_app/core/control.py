"""The local endpoint of a running Ferry: other `ferry` commands hand it their requests.

The Ferry that owns the journal (the window's engine, or ``ferry watch``)
listens on a Unix socket ``data/ferry.sock`` created with mode 0600 inside
the user's own data dir, so only that user can reach it (on Windows a named
pipe named after the user, through the same ``multiprocessing.connection``).
A command that finds it sends one request and gets one reply; the answer is
the same records the command prints when it runs alone.

Promises: a request is carried out through the same :class:`Ferry` facade
the owner uses, so the one scheduler still runs every transfer; a failure is
answered with :class:`ControlFailed` (title and message), never dropped; a
socket file left by a Ferry that died is detected (nobody answers) and the
command then runs on its own. Requests carry absolute paths: the client
resolves them in its own working directory.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from desktop_app.core.errors import FerryError
from desktop_app.core.journal import AttemptRecord, TransferRecord

log = logging.getLogger(__name__)
_FAMILY = "AF_PIPE" if sys.platform == "win32" else "AF_UNIX"


# -- requests: command -> running Ferry ---------------------------------------------


@dataclass(frozen=True)
class UploadRequest:
    paths: tuple[str, ...]  # absolute
    prefix: str | None
    wait: bool


@dataclass(frozen=True)
class RetryRequest:
    ids: tuple[int, ...] | None  # None: every failed transfer
    wait: bool


@dataclass(frozen=True)
class ResumeRequest:
    pass


@dataclass(frozen=True)
class CancelRequest:
    ids: tuple[int, ...]


@dataclass(frozen=True)
class PauseRequest:
    ids: tuple[int, ...] | None
    pause: bool  # False: unpause


ControlRequest = UploadRequest | RetryRequest | ResumeRequest | CancelRequest | PauseRequest


# -- replies: running Ferry -> command -----------------------------------------------


@dataclass(frozen=True)
class TransfersReply:
    records: tuple[TransferRecord, ...]
    attempts: dict[int, list[AttemptRecord]]
    profile: str


@dataclass(frozen=True)
class CountReply:
    count: int


@dataclass(frozen=True)
class ControlFailed:
    title: str
    message: str


ControlReply = TransfersReply | CountReply | ControlFailed


def endpoint_address(data_dir: Path) -> str:
    if sys.platform == "win32":
        # Named after the data dir by a stable digest: str hashes differ per process.
        digest = hashlib.sha256(str(data_dir).encode("utf-8", "surrogateescape")).hexdigest()
        return rf"\\.\pipe\ferry-{getpass.getuser()}-{digest[:16]}"
    return str(data_dir / "ferry.sock")


class ControlServer:
    """Listens for requests and answers each on a thread of its own until stopped."""

    def __init__(
        self, address: str, handle: Callable[[str | None, ControlRequest], ControlReply]
    ) -> None:
        self.address = address
        self.handle = handle
        if _FAMILY == "AF_UNIX":
            # Only the journal's owner starts a server, so a file here is
            # left by a Ferry that died: nobody else can be listening on it.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)
            old_umask = os.umask(0o177)
            try:
                self._listener = Listener(address, family=_FAMILY)
            finally:
                os.umask(old_umask)
            os.chmod(address, 0o600)
        else:
            self._listener = Listener(address, family=_FAMILY)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="ferry-control", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection = self._listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("The control endpoint failed to accept a connection")
                continue
            threading.Thread(
                target=self._serve, args=(connection,), name="ferry-control-request", daemon=True
            ).start()

    def _serve(self, connection: Connection) -> None:
        with connection:
            try:
                profile, request = connection.recv()
            except (EOFError, OSError, ValueError, TypeError):
                return
            try:
                reply = self.handle(profile, request)
            except FerryError as exc:
                reply = ControlFailed(exc.title, exc.message)
            except Exception as exc:
                log.exception("A request from another ferry command failed: %r", request)
                reply = ControlFailed("Unexpected error", f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError, EOFError):
                connection.send(reply)

    def stop(self) -> None:
        self._stopping.set()
        # accept() does not return on close() alone: a connection wakes it.
        with contextlib.suppress(OSError):
            Client(self.address, family=_FAMILY).close()
        self._listener.close()
        self._thread.join(timeout=5)
        if _FAMILY == "AF_UNIX":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)


def ask_running(address: str, profile: str | None, request: ControlRequest) -> ControlReply | None:
    """Hand the request to the running Ferry; None when none answers (run alone then).

    ``profile`` is the one the command was asked to use (None: the default);
    the running Ferry refuses a request for a profile it does not run.
    """
    if _FAMILY == "AF_UNIX" and not os.path.exists(address):
        return None
    try:
        connection = Client(address, family=_FAMILY)
    except (TimeoutError, FileNotFoundError, ConnectionRefusedError, OSError):
        return None  # a socket left by a Ferry that died
    with connection:
        connection.send((profile, request))
        try:
            reply: ControlReply = connection.recv()
        except EOFError:
            return ControlFailed(
                "Ferry stopped",
                "The running Ferry stopped before it answered; run the command again.",
            )
    return reply
