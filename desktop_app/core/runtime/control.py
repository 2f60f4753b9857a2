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
document with a version ``v`` (:data:`PROTOCOL_VERSION`), at most
:data:`MAX_REQUEST` / :data:`MAX_REPLY` bytes. A call's arguments are decoded
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
import inspect
import json
import logging
import os
import socket
import stat
import struct
import sys
import threading
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any, Concatenate

from desktop_app.core.model.errors import ControlChannelError, FerryError
from desktop_app.core.model.typed_json import Mismatch, decoder, to_json
from desktop_app.core.runtime.facade import FacadeCall, facade_method
from desktop_app.core.settings.paths import describe_user, refuse_unsafe_dir

log = logging.getLogger(__name__)
T = typing.TypeVar("T")
R = typing.TypeVar("R")
P = typing.ParamSpec("P")
_FAMILY = "AF_PIPE" if sys.platform == "win32" else "AF_UNIX"

PROTOCOL_VERSION = 2  # 2: one generic call of a facade method (#37)
# A request is a command line's worth of paths (argv itself is at most a few
# MiB); a reply lists every transfer a request touched with its attempts
# (about 1 KiB each), so a folder of 100,000 files still fits.
MAX_REQUEST = 16 * 1024 * 1024
MAX_REPLY = 256 * 1024 * 1024
# A client has this long to send its request: a silent connection holds
# one thread of the running Ferry no longer than this.
REQUEST_PATIENCE = 30.0
_HEADER = struct.Struct(">I")
_CHUNK = 1024 * 1024


# -- replies: running Ferry -> command -----------------------------------------------


@dataclass(frozen=True)
class ControlReturned:
    """A call's result as JSON; :meth:`RunningFerry.call` decodes it by the method's type."""

    value: Any


@dataclass(frozen=True)
class ControlFailed:
    title: str
    message: str


ControlReply = ControlReturned | ControlFailed


def endpoint_address(data_dir: Path) -> str:
    if sys.platform == "win32":
        # Named after the data dir by a stable digest: str hashes differ per process.
        digest = hashlib.sha256(str(data_dir).encode("utf-8", "surrogateescape")).hexdigest()
        return rf"\\.\pipe\ferry-{getpass.getuser()}-{digest[:16]}"
    return str(data_dir / "ferry.sock")


# -- the format: versioned JSON, decoded into the dataclasses field by field --------


def encode_request(profile: str | None, call: FacadeCall) -> bytes:
    document = {"v": PROTOCOL_VERSION, "profile": profile, "call": call.method}
    return _dump({**document, "args": to_json(call.args), "kwargs": to_json(call.kwargs)})


def decode_request(payload: bytes, facade: type[Any]) -> tuple[str | None, FacadeCall]:
    """The profile and call in a message, each argument decoded by the type the facade
    method declares; :class:`ControlChannelError` or :class:`FacadeRefused` if it is none."""
    document = _load(payload, "request")
    method = document.get("call")
    if type(method) is not str:
        raise _garbled("request", "no method named")
    function = facade_method(facade, method)
    try:
        profile: str | None = decoder(str | None)(document.get("profile"))
        args, kwargs = _decode_arguments(function, document.get("args"), document.get("kwargs"))
    except Mismatch as exc:
        raise _garbled("request", f"{method}{exc.where} {exc.problem}") from exc
    return profile, FacadeCall(method, args, kwargs)


def _decode_arguments(
    function: Callable[..., Any], args: Any, kwargs: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if type(args) is not list or type(kwargs) is not dict:
        raise Mismatch("has no argument list")
    hints = _hints(function)
    parameters = list(inspect.signature(function).parameters.values())[1:]  # self
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    if len(args) > len(positional):
        raise Mismatch(f"takes {len(positional)} positional argument(s), not {len(args)}")
    decoded = []
    for parameter, value in zip(positional, args, strict=False):
        decoded.append(_argument(hints, parameter.name, value))
    by_name = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    named = {}
    for name, value in kwargs.items():
        if name not in by_name:
            raise Mismatch(f"takes no argument {name[:40]!r}")
        named[name] = _argument(hints, name, value)
    return tuple(decoded), named


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _argument(hints: dict[str, Any], name: str, value: Any) -> Any:
    try:
        return decoder(hints[name])(value)
    except Mismatch as exc:
        raise exc.at(f"({name})") from exc
    except TypeError:  # a parameter with no JSON form: not for other commands
        raise Mismatch("cannot be asked for over the local endpoint") from None


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    if function not in _HINTS:
        _HINTS[function] = typing.get_type_hints(function)
    return _HINTS[function]


_HINTS: dict[Callable[..., Any], dict[str, Any]] = {}


def encode_reply(reply: ControlReply) -> bytes:
    if isinstance(reply, ControlFailed):
        body = {"failed": {"title": reply.title, "message": reply.message}}
    else:
        body = {"result": to_json(reply.value)}
    return _dump({"v": PROTOCOL_VERSION, **body})


def decode_reply(payload: bytes) -> ControlReply:
    """The reply in a message (a result still as JSON); :class:`ControlChannelError` if none."""
    document = _load(payload, "answer")
    if "result" in document:
        return ControlReturned(document["result"])
    try:
        failed: ControlFailed = decoder(ControlFailed)(document.get("failed"))
    except Mismatch as exc:
        raise _garbled("answer", f"failed{exc.where} {exc.problem}") from exc
    return failed


def decode_result(function: Callable[..., Any], value: Any) -> Any:
    """A returned value as the type ``function`` declares it returns."""
    try:
        return decoder(_hints(function)["return"])(value)
    except Mismatch as exc:
        raise _garbled("answer", f"{function.__name__}{exc.where} {exc.problem}") from exc


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, allow_nan=False).encode(
        "utf-8",
        "surrogateescape",  # a path may hold bytes that are not UTF-8
    )


def _load(payload: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(payload.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise _garbled(what, "not a JSON document") from exc
    if not isinstance(document, dict):
        raise _garbled(what, "not a JSON object")
    if document.get("v") != PROTOCOL_VERSION:
        raise ControlChannelError(
            f"The running Ferry speaks version {document.get('v')!r} of the local protocol, "
            f"this command version {PROTOCOL_VERSION}: one of them is another Ferry release. "
            "Stop the running Ferry (close the window or end `ferry watch`) and start it again.",
            title="Another Ferry version is running",
        )
    return document


def _garbled(what: str, detail: str) -> ControlChannelError:
    outcome = (
        "nothing was carried out. Run the command again"
        if what == "request"
        else "the running Ferry may have carried the request out (`ferry status` shows)"
    )
    return ControlChannelError(
        f"The {what} on Ferry's local endpoint could not be read ({detail}); {outcome}. "
        "If this repeats, stop the running Ferry and start it again.",
        title=f"Unreadable {what}",
    )


# -- framing and who is at the other end ---------------------------------------------


def _send_frame(connection: socket.socket, payload: bytes) -> None:
    connection.sendall(_HEADER.pack(len(payload)) + payload)


def _receive_frame(connection: socket.socket, limit: int, what: str) -> bytes:
    """One message; EOFError when the other end closed first, before or within it."""
    (length,) = _HEADER.unpack(_receive_exactly(connection, _HEADER.size))
    if length > limit:
        raise ControlChannelError(
            f"The {what} on Ferry's local endpoint says it is {length:,} bytes long, more "
            f"than the {limit:,} allowed; it was not read and nothing was carried out.",
            title=f"{what.capitalize()} too large",
        )
    return _receive_exactly(connection, length)


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        chunk = connection.recv(min(_CHUNK, size - len(received)))
        if not chunk:
            raise EOFError
        received += chunk
    return bytes(received)


def _peer_uid(connection: socket.socket) -> int | None:
    """The user id of the process at the other end; None where the system cannot say."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
        ucred = struct.Struct("=iII")
        raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, ucred.size)
        return int(ucred.unpack(raw)[1])
    local_peercred = getattr(socket, "LOCAL_PEERCRED", None)
    if local_peercred is not None:  # macOS, FreeBSD: struct xucred {version, uid, ...}
        raw = connection.getsockopt(0, local_peercred, 76)  # SOL_LOCAL, sizeof(xucred)
        return int(struct.unpack_from("=II", raw)[1])
    return None


def _refuse_foreign_socket(address: str) -> None:
    """Refuse a socket file, or a folder it is in, that another user made or can change.

    FileNotFoundError when there is none (no Ferry runs)."""
    path = Path(address)
    found = os.lstat(path)
    me = os.geteuid()
    if not stat.S_ISSOCK(found.st_mode) or found.st_uid != me or found.st_mode & 0o077:
        raise ControlChannelError(
            f"{path} is not your running Ferry's endpoint: it belongs to "
            f"{describe_user(found.st_uid)}, mode {stat.S_IMODE(found.st_mode):04o}"
            f"{'' if stat.S_ISSOCK(found.st_mode) else ', not a socket'}. Ferry sent it "
            f"nothing. Remove it (`rm {path}`), and make sure the folder is yours and no one "
            "else's, or set FERRY_HOME to a folder of your own.",
            title="Someone else's endpoint",
        )
    refuse_unsafe_dir(path.parent, "data folder")


def _refuse_foreign_peer(connection: socket.socket, address: str) -> None:
    peer = _peer_uid(connection)
    if peer is not None and peer != os.geteuid():
        raise ControlChannelError(
            f"The program listening at {address} runs as {describe_user(peer)}, not as you; "
            f"Ferry sent it nothing. Remove {address}, and make sure its folder is yours "
            "and no one else's, or set FERRY_HOME to a folder of your own.",
            title="Someone else's endpoint",
        )


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
                peer = _peer_uid(connection)
            except OSError:
                return  # gone already
            if peer is not None and peer != os.geteuid():
                log.warning("Dropped a connection from %s, not this user", describe_user(peer))
                return
            connection.settimeout(REQUEST_PATIENCE)
            try:
                payload = _receive_frame(connection, MAX_REQUEST, "request")
            except ControlChannelError as exc:
                reply: ControlReply = ControlFailed(exc.title, exc.message)
            except (EOFError, OSError):
                return  # gone, or silent too long: nobody waits for an answer
            else:
                connection.settimeout(None)  # carrying it out may take hours (Ferry.wait)
                reply = self._answer(payload)
            with contextlib.suppress(OSError):
                _send_frame(connection, self._encoded(reply))

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
            _send_frame(connection, encode_request(profile, call))
            payload = _receive_frame(connection, MAX_REPLY, "answer")
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
        _refuse_foreign_socket(address)
    except FileNotFoundError:
        yield None
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.connect(address)
        except OSError:
            yield None  # a socket left by a Ferry that died
            return
        _refuse_foreign_peer(connection, address)
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
