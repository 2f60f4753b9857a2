"""The control channel's format: every message survives the trip, nothing else is accepted.

A command that meets a running Ferry of its own user which answers garbage,
an answer too large or another version gets a clear error, never a traceback
and never an object built from what it was sent.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from desktop_app.core.control import (
    MAX_REPLY,
    CancelRequest,
    ControlFailed,
    ControlReply,
    ControlRequest,
    CountReply,
    PauseRequest,
    ResumeRequest,
    RetryRequest,
    TransfersReply,
    UploadRequest,
    ask_running,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)
from desktop_app.core.errors import ControlChannelError
from desktop_app.core.journal import (
    AttemptRecord,
    KeyConflictPolicy,
    SourceIdentity,
    TransferError,
    TransferRecord,
)
from desktop_app.core.states import ErrorKind, TransferState

NOW = datetime(2026, 12, 2, 10, 30, 1, 123456, tzinfo=UTC)
FAILURE = TransferError(ErrorKind.SOURCE_CHANGED, "Source changed", "it changed")


def record(number: int) -> TransferRecord:
    return TransferRecord(
        id=number,
        source_path="/home/me/caf\u00e9/\udcff raw.bin",  # a name that is not UTF-8
        identity=SourceIdentity(5, 6, 7, 8, 9),
        profile="p",
        bucket="b",
        key=f"k/{number}",
        content_type="application/octet-stream",
        sha256="ab" * 32,
        part_size=5 << 20,
        part_count=3,
        upload_id=None,
        catalog_file_id=12,
        etag='"x-3"',
        duplicate_of=None,
        state=TransferState.FAILED,
        paused=True,
        attempts=2,
        error=FAILURE,
        retry_at=None,
        created_at=NOW,
        updated_at=NOW,
        on_conflict=KeyConflictPolicy.SUFFIX,
    )


REQUESTS: list[ControlRequest] = [
    UploadRequest(("/a b", "/c"), "in/", True),
    UploadRequest((), None, False),
    RetryRequest(None, True),
    RetryRequest((1, 2), False),
    ResumeRequest(),
    CancelRequest((3,)),
    PauseRequest(None, False),
    PauseRequest((4, 5), True),
]
REPLIES: list[ControlReply] = [
    TransfersReply(
        (record(1), record(2)), {1: [AttemptRecord(1, NOW, NOW, FAILURE, 77)], 2: []}, "p"
    ),
    CountReply(3),
    ControlFailed("Title", "Message"),
]


@pytest.mark.parametrize("request_", REQUESTS)
def test_every_request_arrives_as_it_was_sent(request_: ControlRequest) -> None:
    assert decode_request(encode_request("work", request_)) == ("work", request_)


@pytest.mark.parametrize("reply", REPLIES)
def test_every_reply_arrives_as_it_was_sent(reply: ControlReply) -> None:
    assert decode_reply(encode_reply(reply)) == reply


@pytest.fixture
def own_listener(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A listener of this user at a private path; answers each connection with the next
    queued bytes (a test puts them in the list)."""
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    address = str(folder / "ferry.sock")
    answers: list[bytes] = []
    server = socket.socket(socket.AF_UNIX)
    server.bind(address)
    os.chmod(address, 0o600)
    server.listen()

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                connection.recv(1 << 20)
                connection.sendall(answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield address, answers
    server.close()


def test_an_answer_that_is_not_a_reply_is_a_clear_error(
    own_listener: tuple[str, list[bytes]],
) -> None:
    address, answers = own_listener
    cases = {
        "Unreadable answer": b'{"v": 1, "reply": "count", "body": {"count": "many"}}',
        "Another Ferry version is running": b'{"v": 2, "reply": "count", "body": {"count": 1}}',
        "Answer too large": None,
    }
    messages = {}
    for title, body in cases.items():
        if body is None:
            answers.append(struct.pack(">I", MAX_REPLY + 1))
        else:
            answers.append(struct.pack(">I", len(body)) + body)
        with pytest.raises(ControlChannelError) as raised:
            ask_running(address, None, ResumeRequest())
        assert raised.value.title == title
        messages[title] = raised.value.message
    assert "(count.count is not int)" in messages["Unreadable answer"]
    assert f"more than the {MAX_REPLY:,} allowed" in messages["Answer too large"]


def test_a_garbled_reply_names_the_field() -> None:
    body = encode_reply(REPLIES[0]).replace(b'"failed"', b'"melted"', 1)
    with pytest.raises(ControlChannelError) as raised:
        decode_reply(body)
    assert raised.value.title == "Unreadable answer"
    assert "(transfers.records[0].state is not a TransferState)" in raised.value.message
    assert "`ferry status` shows" in raised.value.message
