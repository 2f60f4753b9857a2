"""The local endpoint of a running Ferry: other `ferry` commands hand it their requests.

The Ferry that owns the journal (the window's engine, or ``ferry watch``)
listens on a Unix socket ``data/ferry.sock`` created with mode 0600 inside
the user's own data dir (on Windows a named pipe named after the user,
through ``multiprocessing.connection``). A command that finds it sends one
request, a :class:`~desktop_app.core.runtime.facade.FacadeCall` of a method of the
:class:`Ferry` facade, and gets one reply: that method's result, the same
records the command prints when it runs alone (:class:`RunningFerry` is the
typed proxy a command uses).

Promises: a request is carried out through the same :class:`Ferry` facade
the owner uses, so the one scheduler still runs every transfer; only the
methods of :data:`~desktop_app.core.runtime.facade.FACADE_METHODS` are answered
(anything else, a private name above all, is refused and nothing is done);
a failure is
answered with :class:`ControlFailed` (title and message), never dropped; a
socket file left by a Ferry that died is detected (nobody answers) and the
command then runs on its own. Requests carry absolute paths: the client
resolves them in its own working directory.

The channel is the user's alone: a message is a 4-byte length and a JSON
document with a version ``v`` (:data:`.control_messages.PROTOCOL_VERSION`), at
most :data:`.control_messages.MAX_REQUEST` / :data:`.control_messages.MAX_REPLY`
bytes (the messages are :mod:`.control_messages`', the framing and the checks
of who is at the other end :mod:`.control_socket`'s). A call's arguments are decoded
by the types its facade method declares and its result by the type the method
returns, field by field through one small codec (dataclasses, enums, times,
paths, sequences, mappings of plain values; anything else is refused), so
nothing is unpickled, on either side. Before sending
anything the client checks that the socket file and its folder are the
user's and no one else's and, once connected, that the process listening
runs as the user (SO_PEERCRED / LOCAL_PEERCRED); the server drops a
connection from another user before reading it. A refusal, an unknown
version and a garbled message are a :class:`ControlChannelError` or a
:class:`ControlFailed` saying what to do, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import hashlib
import logging
import os
import socket
import sys
import threading
import typing
from collections.abc import Callable, Iterator
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any, Concatenate

from desktop_app.core.model.errors import ControlChannelError, FerryError
from desktop_app.core.runtime.control_messages import (
    MAX_REPLY,
    MAX_REQUEST,
    ControlFailed,
    ControlReply,
    ControlReturned,
    decode_reply,
    decode_request,
    decode_result,
    encode_reply,
    encode_request,
)
from desktop_app.core.runtime.control_socket import (
    peer_uid,
    receive_frame,
    refuse_foreign_peer,
    refuse_foreign_socket,
    send_frame,
)
from desktop_app.core.runtime.facade import FacadeCall
from desktop_app.core.settings.paths import describe_user

log = logging.getLogger(__name__)
T = typing.TypeVar("T")
R = typing.TypeVar("R")
P = typing.ParamSpec("P")
_FAMILY = "AF_PIPE" if sys.platform == "win32" else "AF_UNIX"
# A client has this long to send its request: a silent connection holds
# one thread of the running Ferry no longer than this.
REQUEST_PATIENCE = 30.0


def endpoint_address(data_dir: Path) -> str:
    if sys.platform == "win32":
        # Named after the data dir by a stable digest: str hashes differ per process.
        digest = hashlib.sha256(str(data_dir).encode("utf-8", "surrogateescape")).hexdigest()
        return rf"\\.\pipe\ferry-{getpass.getuser()}-{digest[:16]}"
    return str(data_dir / "ferry.sock")


# -- the two ends ------------------------------------------------------------------------


class ControlServer:
    """Listens for requests and answers each on a thread of its own until stopped.

    Only this user's processes are answered: the socket file is 0600 and a
    connection from another user id is dropped before a byte is read."""

    def __init__(
        self, address: str, facade: type[Any], handle: Callable[[str | None, FacadeCall], object]
    ) -> None:
        self.address = address
        self.facade = facade  # whose methods' types decode a call's arguments
        self.handle = handle
        self._stopping = threading.Event()
        if _FAMILY == "AF_UNIX":
            # Only the journal's owner starts a server, so a file here is
            # left by a Ferry that died: nobody else can be listening on it.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o177)
            try:
                self._socket.bind(address)
                os.chmod(address, 0o600)
                self._socket.listen(64)
            except BaseException:
                self._socket.close()
                raise
            finally:
                os.umask(old_umask)
            accept: Callable[[], None] = functools.partial(
                self._accept, lambda: self._socket.accept()[0], self._serve_socket
            )
        else:
            self._listener = Listener(address, family=_FAMILY)
            accept = functools.partial(self._accept, self._listener.accept, self._serve_pipe)
        self._thread = threading.Thread(target=accept, name="ferry-control", daemon=True)
        self._thread.start()

    def _accept(self, accept: Callable[[], T], serve: Callable[[T], None]) -> None:
        """Each connection (a socket, or a Windows pipe) served on a thread of its own."""
        while not self._stopping.is_set():
            try:
                connection = accept()
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("The control endpoint failed to accept a connection")
                continue
            threading.Thread(
                target=serve, args=(connection,), name="ferry-control-request", daemon=True
            ).start()

    def _serve_socket(self, connection: socket.socket) -> None:
        with connection:
            try:
                peer = peer_uid(connection)
            except OSError:
                return  # gone already
            if peer is not None and peer != os.geteuid():
                log.warning("Dropped a connection from %s, not this user", describe_user(peer))
                return
            connection.settimeout(REQUEST_PATIENCE)
            try:
                payload = receive_frame(connection, MAX_REQUEST, "request")
            except ControlChannelError as exc:
                reply: ControlReply = ControlFailed(exc.title, exc.message)
            except (EOFError, OSError):
                return  # gone, or silent too long: nobody waits for an answer
            else:
                connection.settimeout(None)  # carrying it out may take hours (Ferry.wait)
                reply = self._answer(payload)
            with contextlib.suppress(OSError):
                send_frame(connection, self._encoded(reply))

    def _serve_pipe(self, pipe: Connection) -> None:
        with pipe:
            try:
                payload = pipe.recv_bytes(MAX_REQUEST)  # bytes only: nothing is unpickled
            except (EOFError, OSError):
                return
            with contextlib.suppress(OSError, EOFError):
                pipe.send_bytes(self._encoded(self._answer(payload)))

    def _answer(self, payload: bytes) -> ControlReply:
        try:
            profile, call = decode_request(payload, self.facade)
        except FerryError as exc:
            return ControlFailed(exc.title, exc.message)
        try:
            return ControlReturned(self.handle(profile, call))
        except FerryError as exc:
            return ControlFailed(exc.title, exc.message)
        except Exception as exc:
            log.exception("A call from another ferry command failed: %s", call.method)
            return ControlFailed("Unexpected error", f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _encoded(reply: ControlReply) -> bytes:
        try:
            return encode_reply(reply)
        except (TypeError, ValueError) as exc:
            log.exception("An answer to another ferry command could not be encoded")
            return encode_reply(ControlFailed("Unexpected error", f"{type(exc).__name__}: {exc}"))

    def stop(self) -> None:
        self._stopping.set()
        # accept() does not return on close() alone: a connection wakes it.
        if _FAMILY == "AF_UNIX":
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as wake:
                wake.connect(self.address)
            self._socket.close()
        else:
            with contextlib.suppress(OSError):
                Client(self.address, family=_FAMILY).close()
            self._listener.close()
        self._thread.join(timeout=5)
        if _FAMILY == "AF_UNIX":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)


class RunningFerry:
    """The running Ferry, reached over its endpoint as a typed proxy of the facade:
    ``running.call(Ferry.queue, paths, prefix)`` returns what ``Ferry.queue`` returns.

    A failure there is raised here as a :class:`FerryError` with its title and message."""

    def __init__(self, address: str, profile: str | None) -> None:
        self.address = address
        self.profile = profile

    @classmethod
    def find(cls, address: str, profile: str | None) -> RunningFerry | None:
        """The running Ferry at ``address``; None when none answers (run alone then).

        Raises :class:`ControlChannelError` (or UnsafeFolderError) without sending
        anything when the endpoint is not this user's own."""
        if _FAMILY != "AF_UNIX":
            try:
                Client(address, family=_FAMILY).close()
            except OSError:
                return None
            return cls(address, profile)
        with _own_connection(address) as connection:
            return None if connection is None else cls(address, profile)

    def call(
        self, method: Callable[Concatenate[Any, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        reply = ask_running(self.address, self.profile, FacadeCall.of(method, *args, **kwargs))
        if reply is None:
            reply = _stopped()
        if isinstance(reply, ControlFailed):
            raise FerryError(reply.message, title=reply.title)
        result: R = decode_result(method, reply.value)
        return result


def ask_running(address: str, profile: str | None, call: FacadeCall) -> ControlReply | None:
    """Hand the call to the running Ferry; None when none answers (run alone then).

    ``profile`` is the one the command was asked to use (None: the default);
    the running Ferry refuses a request for a profile it does not run.
    Raises :class:`ControlChannelError` (or UnsafeFolderError) without sending
    anything when the endpoint is not this user's own.
    """
    if _FAMILY != "AF_UNIX":
        return _ask_pipe(address, profile, call)
    with _own_connection(address) as connection:
        if connection is None:
            return None
        try:
            send_frame(connection, encode_request(profile, call))
            payload = receive_frame(connection, MAX_REPLY, "answer")
        except (EOFError, OSError):
            return _stopped()
    return decode_reply(payload)


@contextlib.contextmanager
def _own_connection(address: str) -> Iterator[socket.socket | None]:
    """A connection to this user's own listener at ``address``; None when none listens.

    The socket's owner and mode, and the listener's uid, are checked before
    the caller may send a byte (ControlChannelError or UnsafeFolderError).
    """
    try:
        refuse_foreign_socket(address)
    except FileNotFoundError:
        yield None
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.connect(address)
        except OSError:
            yield None  # a socket left by a Ferry that died
            return
        refuse_foreign_peer(connection, address)
        yield connection


def _ask_pipe(address: str, profile: str | None, call: FacadeCall) -> ControlReply | None:
    try:
        pipe = Client(address, family=_FAMILY)
    except OSError:
        return None
    with pipe:
        try:
            pipe.send_bytes(encode_request(profile, call))
            payload = pipe.recv_bytes(MAX_REPLY)  # bytes only: nothing is unpickled
        except (EOFError, OSError):
            return _stopped()
    return decode_reply(payload)


def _stopped() -> ControlFailed:
    return ControlFailed(
        "Ferry stopped", "The running Ferry stopped before it answered; run the command again."
    )
