"""The local endpoint's socket: messages framed by their length, and who is at the other end.

A message is a 4-byte length and its bytes, at most the limit the reader
gives. Promises: a message longer than that is refused unread; before
anything is sent the socket file and its folder must be the user's and no
one else's, and the process at the other end must run as the user
(SO_PEERCRED / LOCAL_PEERCRED), else a :class:`ControlChannelError` saying
what to do.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from pathlib import Path

from desktop_app.core.model.errors import ControlChannelError
from desktop_app.core.settings.paths import describe_user, refuse_unsafe_dir

_HEADER = struct.Struct(">I")
_CHUNK = 1024 * 1024


def send_frame(connection: socket.socket, payload: bytes) -> None:
    connection.sendall(_HEADER.pack(len(payload)) + payload)


def receive_frame(connection: socket.socket, limit: int, what: str) -> bytes:
    """One message; EOFError when the other end closed first, before or within it."""
    (length,) = _HEADER.unpack(receive_exactly(connection, _HEADER.size))
    if length > limit:
        raise ControlChannelError(
            f"The {what} on Ferry's local endpoint says it is {length:,} bytes long, more "
            f"than the {limit:,} allowed; it was not read and nothing was carried out.",
            title=f"{what.capitalize()} too large",
        )
    return receive_exactly(connection, length)


def receive_exactly(connection: socket.socket, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        chunk = connection.recv(min(_CHUNK, size - len(received)))
        if not chunk:
            raise EOFError
        received += chunk
    return bytes(received)


def peer_uid(connection: socket.socket) -> int | None:
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


def refuse_foreign_socket(address: str) -> None:
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


def refuse_foreign_peer(connection: socket.socket, address: str) -> None:
    peer = peer_uid(connection)
    if peer is not None and peer != os.geteuid():
        raise ControlChannelError(
            f"The program listening at {address} runs as {describe_user(peer)}, not as you; "
            f"Ferry sent it nothing. Remove {address}, and make sure its folder is yours "
            "and no one else's, or set FERRY_HOME to a folder of your own.",
            title="Someone else's endpoint",
        )
