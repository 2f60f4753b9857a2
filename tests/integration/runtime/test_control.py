"""The control channel against a second user of the machine (issue #32, item 4).

The other user is real: a process run as ``nobody`` through setpriv.

- their listener at the data dir's ``ferry.sock`` (the folder theirs, or the
  socket file moved into the user's own folder) receives no byte from
  `ferry upload` / ``ask_running``, and the pickle it answers with never runs;
- a connection from their uid to a running Ferry is dropped unread, and
  nothing is queued;
- garbage, a 2 GiB length header, a pickle and another protocol version sent
  to a running Ferry are answered with a clear refusal, and it goes on
  answering its user.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desktop_app.core.model.errors import ControlChannelError, FerryError
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.control import RunningFerry, ask_running, endpoint_address
from desktop_app.core.runtime.control_messages import ControlFailed, ControlReturned, decode_reply
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.facade import FacadeCall
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.run_mode import RunMode
from desktop_app.core.transfers.scheduler import HoldBackReason
from tests.conftest import AS_NOBODY, WeedServer
from tests.integration.transfers.test_crash import ferry, wait_for
from tests.integration.transfers.test_scheduler import catalog_rows, home_with_profile_w, run_cli

# Run as nobody: listens at argv[1], writes every byte it receives to argv[2]
# and answers each connection the way multiprocessing.connection frames a
# message, with a pickle that creates argv[3] when it is unpickled.
EVIL_LISTENER = r"""
import os, pickle, socket, struct, sys
address, received_path, marker = sys.argv[1:4]
os.makedirs(os.path.dirname(address), mode=0o777, exist_ok=True)
os.chmod(os.path.dirname(address), 0o777)
server = socket.socket(socket.AF_UNIX)
server.bind(address)
os.chmod(address, 0o777)
server.listen()

class Evil:
    def __reduce__(self):
        return (open, (marker, "w"))

answer = pickle.dumps(Evil())
with open(received_path, "wb", buffering=0) as received:
    print("listening", flush=True)
    while True:
        connection, _ = server.accept()
        connection.settimeout(1)
        try:
            while chunk := connection.recv(65536):
                received.write(chunk)
        except TimeoutError:
            pass
        connection.sendall(struct.pack("!i", len(answer)) + answer)
        connection.close()
"""

# Run as nobody: sends argv[2] (hex) to the socket at argv[1], prints what came
# back (hex), or "reset" when the other end closed without reading.
RAW_CLIENT = r"""
import socket, sys
answer = b""
with socket.socket(socket.AF_UNIX) as connection:
    connection.connect(sys.argv[1])
    try:
        connection.sendall(bytes.fromhex(sys.argv[2]))
        connection.shutdown(socket.SHUT_WR)
        while chunk := connection.recv(65536):
            answer += chunk
    except (ConnectionResetError, BrokenPipeError):
        print("reset")
print(answer.hex())
"""


@pytest.fixture
def evil_listener(shared_dir: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(address: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*AS_NOBODY, sys.executable, "-c", EVIL_LISTENER, str(address),
             str(shared_dir / "received"), str(shared_dir / "pwned")],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == "listening\n"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def test_a_listener_of_another_user_in_a_world_writable_home_receives_nothing(
    tmp_path: Path, shared_dir: Path, evil_listener: Callable[[Path], subprocess.Popen[str]]
) -> None:
    # A folder another user created, writable by all: FERRY_HOME is put under it.
    world = shared_dir / "world"
    subprocess.run([*AS_NOBODY, "mkdir", "-m", "0777", str(world)], check=True)
    home = world / "home"
    evil_listener(home / "data" / "ferry.sock")
    (tmp_path / "report.txt").write_text("a file another user must not learn about")

    process = ferry(home, "upload", str(tmp_path / "report.txt"), "--json")
    out, err = process.communicate(timeout=60)

    assert process.returncode == 2, (out, err)
    assert "Traceback" not in err
    assert f"{home / 'data' / 'ferry.sock'} is not your running Ferry's endpoint" in err
    assert "belongs to nobody (uid 65534)" in err
    assert f"Remove it (`rm {home / 'data' / 'ferry.sock'}`)" in err
    assert json.loads(out)["error"]["title"] == "Someone else's endpoint"
    assert (shared_dir / "received").read_bytes() == b""
    assert not (shared_dir / "pwned").exists()
    assert not (home / "logs").exists()  # no log of root's written into their folder


def test_a_socket_that_looks_like_ours_but_listens_as_another_user_receives_nothing(
    ferry_env: Environment,
    shared_dir: Path,
    evil_listener: Callable[[Path], subprocess.Popen[str]],
) -> None:
    # The file checks pass (ours, 0600, in our private data dir); only the
    # listening process's credentials tell: another user bound it.
    ferry_env.paths.ensure()
    theirs = shared_dir / "theirs" / "ferry.sock"
    evil_listener(theirs)
    address = endpoint_address(ferry_env.paths.data_dir)
    os.rename(theirs, address)
    os.chown(address, os.geteuid(), os.getegid())
    os.chmod(address, 0o600)

    with pytest.raises(ControlChannelError) as raised:
        ask_running(address, None, FacadeCall.of(Ferry.queue, ["/home/me/plans.txt"]))

    assert raised.value.title == "Someone else's endpoint"
    assert f"The program listening at {address} runs as nobody (uid 65534)" in str(raised.value)
    assert "Ferry sent it nothing" in str(raised.value)
    assert (shared_dir / "received").read_bytes() == b""
    assert not (shared_dir / "pwned").exists()


@pytest.fixture
def running(weed_profile: Callable[..., None], ferry_env: Environment) -> Iterator[Ferry]:
    weed_profile()
    app = Ferry.open(ferry_env, mode=RunMode.RESIDENT)
    server = app.listen()
    yield app
    server.stop()
    app.close()


def test_a_running_ferry_drops_another_users_connection_unread(
    running: Ferry, ferry_env: Environment, shared_dir: Path, tmp_path: Path
) -> None:
    address = endpoint_address(ferry_env.paths.data_dir)
    # Even were the socket reachable (a second name for it, open to all),
    # another user's request is dropped: their uid is not ours.
    door = shared_dir / "door.sock"
    os.link(address, door)
    os.chmod(door, 0o666)
    secret = tmp_path / "secret.txt"
    secret.write_text("root's")
    request: dict[str, object] = {
        "v": 2,
        "profile": None,
        "call": "queue",
        "args": [[str(secret)]],
        "kwargs": {},
    }
    message = frame(json.dumps(request).encode()).hex()

    theirs = subprocess.run(
        [*AS_NOBODY, sys.executable, "-c", RAW_CLIENT, str(door), message],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip

    assert theirs.stdout.split() in ([], ["reset"])  # closed without an answer
    assert running.transfers() == []
    # The same bytes from its own user are carried out.
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(address)
        connection.sendall(bytes.fromhex(message))
        answer = read_frame(connection)
    reply = decode_reply(answer)
    assert isinstance(reply, ControlReturned)
    assert [r["source_path"] for r in reply.value] == [str(secret)]


def read_frame(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    (length,) = struct.unpack(">I", received[:4])
    assert len(received) == 4 + length
    return received[4:]


def exchange(address: str, raw: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(address)
        connection.sendall(raw)
        connection.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def test_garbage_oversized_headers_and_pickles_are_refused_and_the_ferry_goes_on(
    running: Ferry, ferry_env: Environment
) -> None:
    import pickle

    address = endpoint_address(ferry_env.paths.data_dir)
    refusals = {
        "2 GiB header": struct.pack(">I", 2**31),
        "not JSON": frame(b"\x00garbage\xff"),
        "a pickle": frame(pickle.dumps((None, FacadeCall.of(Ferry.resume)))),
        "another version": frame(b'{"v": 99, "call": "resume", "args": [], "kwargs": {}}'),
        "unknown request": frame(b'{"v": 2, "call": "rm -rf", "args": [], "kwargs": {}}'),
        "private method": frame(b'{"v": 2, "call": "_resumable", "args": [], "kwargs": {}}'),
        "not offered": frame(b'{"v": 2, "call": "close", "args": [], "kwargs": {}}'),
        "bad field": frame(b'{"v": 2, "call": "cancel", "args": ["*"], "kwargs": {}}'),
    }
    titles = {}
    for name, raw in refusals.items():
        reply = decode_reply(exchange(address, raw)[4:])
        assert isinstance(reply, ControlFailed), name
        titles[name] = reply.title
    assert titles == {
        "2 GiB header": "Request too large",
        "not JSON": "Unreadable request",
        "a pickle": "Unreadable request",
        "another version": "Another Ferry version is running",
        "unknown request": "Not a Ferry request",
        "private method": "Not a Ferry request",
        "not offered": "Not a Ferry request",
        "bad field": "Unreadable request",
    }
    assert exchange(address, b"\x00\x00") == b""  # half a header, then gone: dropped
    assert running.transfers() == []
    # Its own user is still answered.
    running_ferry = RunningFerry.find(address, None)
    assert running_ferry is not None
    assert running_ferry.call(Ferry.pause, None) == 0


def test_an_unknown_or_private_method_is_refused_with_a_clear_error_and_nothing_runs(
    running: Ferry, ferry_env: Environment, tmp_path: Path
) -> None:
    address = endpoint_address(ferry_env.paths.data_dir)
    running_ferry = RunningFerry.find(address, None)
    assert running_ferry is not None
    for name in ("_resumable", "__class__", "journal", "close", "evaluate"):
        reply = ask_running(address, None, FacadeCall(name, ([str(tmp_path)],)))
        assert isinstance(reply, ControlFailed), name
        assert reply.title == "Not a Ferry request"
        assert f"was asked for {name!r}, which is not one of the things it does" in reply.message
        assert "Nothing was carried out" in reply.message
        assert "(attempts, cancel, cancel_check, " in reply.message  # what it does offer
    # The proxy raises it as a FerryError a command prints as one line.
    with pytest.raises(FerryError) as raised:
        running_ferry.call(Ferry.close)
    assert raised.value.title == "Not a Ferry request"
    assert running.transfers() == []
    # Its own user's offered calls are still answered.
    assert running_ferry.call(Ferry.pause, None) == 0


def test_ferry_clear_beside_a_running_ferry_removes_the_chosen_finished_from_the_list(
    running: Ferry, ferry_env: Environment, tmp_path: Path
) -> None:
    files = [tmp_path / f"note-{n}.txt" for n in range(3)]
    for n, path in enumerate(files):
        path.write_text(f"note {n}")
    ids = [r.id for r in running.wait([r.id for r in running.queue(files)])]
    assert ferry_env.paths.home is not None

    process = ferry(ferry_env.paths.home, "clear", str(ids[0]), str(ids[1]), "--json")
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    # Handed over: alone, the command could not have taken the running Ferry's journal.
    assert json.loads(out) == {"cleared": 2}
    assert [r.id for r in running.window_history(100)] == [ids[2]]
    assert len(running.transfers()) == 3  # the journal's history keeps them all


def test_ferry_delete_beside_a_running_ferry_watch_deletes_the_row_then_the_object(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = home_with_profile_w(tmp_path / "home", weed, bucket)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    doc = tmp_path / "doc.txt"
    doc.write_text("stored, then deleted beside the watch")
    watch = ferry(home, "watch", str(inbox))
    try:
        wait_for((home / "data" / "ferry.sock").exists, 60)
        code, out, err = run_cli(home, "upload", "--wait", str(doc), "--json")
        assert code == 0, err
        assert [t["state"] for t in json.loads(out)["transfers"]] == ["done"]

        code, out, err = run_cli(home, "delete", "doc.txt", "--json")

        # Handed over: alone, the command could not have taken the running Ferry's journal.
        assert code == 0, err
        assert json.loads(out) == {
            "deleted": [
                {
                    "key": "doc.txt",
                    "deleted": True,
                    "object_deleted": True,
                    "error": None,
                    "note": None,
                }
            ]
        }
        sha256 = hashlib.sha256(doc.read_bytes()).hexdigest()
        assert catalog_rows(home, "w") == [("doc.txt", "deleted", sha256)]
        assert weed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
        # A key with no live file: said for that key, as the command alone says it.
        code, out, err = run_cli(home, "delete", "doc.txt")
        assert code == 1, err
        assert "doc.txt: " in err, err
        assert "not a live file" in err, err
        assert watch.poll() is None  # the watch goes on
    finally:
        watch.terminate()
        watch.communicate(timeout=60)
    assert watch.returncode == 0


def test_ferry_upload_no_wait_beside_a_running_ferry_succeeds_once_handed_over(
    running: Ferry, ferry_env: Environment, tmp_path: Path
) -> None:
    doc = tmp_path / "report.txt"
    doc.write_text("handed over, not waited for")
    assert ferry_env.paths.home is not None

    process = ferry(ferry_env.paths.home, "upload", "--no-wait", str(doc), "--json")
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    document = json.loads(out)
    assert document["summary"]["ok"] is True
    [transfer] = document["transfers"]
    assert transfer["source"] == str(doc)
    assert transfer["error"] is None
    [finished] = running.wait([transfer["id"]])  # the running Ferry uploads it
    assert finished.state is TransferState.DONE
    assert finished.key == "report.txt"
    # A file refused at once (a named pipe is no file to send) is no success,
    # waited for or not. (A path that does not exist is refused before any transfer.)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    process = ferry(ferry_env.paths.home, "upload", "--no-wait", str(pipe), "--json")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    document = json.loads(out)
    assert document["summary"]["ok"] is False
    assert [t["state"] for t in document["transfers"]] == ["failed"]


def test_ferry_cancel_beside_a_running_ferry_exits_0_as_it_does_alone(
    running: Ferry, ferry_env: Environment, tmp_path: Path
) -> None:
    doc = tmp_path / "draft.txt"
    doc.write_text("queued, paused, then cancelled")
    # Uploads held back (as on a metered network): it stays queued until the cancel comes.
    running.scheduler.hold_back(HoldBackReason.METERED, True)
    [queued] = running.queue([doc])
    assert ferry_env.paths.home is not None

    process = ferry(ferry_env.paths.home, "cancel", str(queued.id), "--json")
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    document = json.loads(out)
    assert [t["state"] for t in document["transfers"]] == ["cancelled"]
    assert document["summary"]["ok"] is True
    assert [r.state for r in running.transfers()] == [TransferState.CANCELLED]
