"""The control channel's format: every message survives the trip, nothing else is accepted.

A command that meets a running Ferry of its own user which answers garbage,
an answer too large or another version gets a clear error, never a traceback
and never an object built from what it was sent.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from desktop_app.core.check.findings import (
    CheckReport,
    Finding,
    FindingKind,
    ObjectEvidence,
    RepairAction,
    RepairOutcome,
    RepairResult,
    RowStamp,
    Scanned,
)
from desktop_app.core.journal.records import (
    AttemptRecord,
    KeyConflictPolicy,
    SourceIdentity,
    TransferError,
    TransferRecord,
)
from desktop_app.core.model import typed_json
from desktop_app.core.model.errors import ControlChannelError
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.runtime.control import ask_running
from desktop_app.core.runtime.control_messages import (
    MAX_REPLY,
    ControlFailed,
    ControlReturned,
    decode_reply,
    decode_request,
    decode_result,
    encode_reply,
    encode_request,
)
from desktop_app.core.runtime.facade import FACADE_METHODS, FacadeCall, FacadeRefused
from desktop_app.core.runtime.ferry import Ferry

NOW = datetime(2026, 12, 2, 10, 30, 1, 123456, tzinfo=UTC)
FAILURE = TransferError(ErrorKind.SOURCE_CHANGED, "Source changed", "it changed")


CHECK_REPORT = CheckReport(
    findings=[
        Finding(
            FindingKind.ORPHAN_OBJECT,
            "k/\u00e9",
            "no row",
            RepairAction.ADOPT,
            object=ObjectEvidence(5, '"e"', "2026-12-02T10:30:01Z", None),
            rows_seen=(RowStamp(1, "deleted", None),),
        )
    ],
    scanned=Scanned(objects=3, rows=2, multipart_uploads=0, within_grace=1),
    started_at=NOW,
    duration_s=0.25,
    grace_seconds=3600,
    notes=("no ListParts",),
)


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


CALLS: list[FacadeCall] = [
    FacadeCall.of(Ferry.queue, [Path("/a b"), Path("/c")], "in/"),
    FacadeCall.of(Ferry.queue, []),
    FacadeCall.of(Ferry.wait, [1, 2], patience=5),
    FacadeCall.of(Ferry.retry, None),
    FacadeCall.of(Ferry.retry, [1, 2]),
    FacadeCall.of(Ferry.resume, patience=5),
    FacadeCall.of(Ferry.cancel, [3]),
    FacadeCall.of(Ferry.pause, None),
    FacadeCall.of(Ferry.unpause, [4, 5]),
    FacadeCall.of(Ferry.clear_finished, [6]),
    FacadeCall.of(Ferry.attempts, [1]),
    FacadeCall.of(Ferry.run_check, without_grace=True),
]
RESULTS: list[tuple[Any, object]] = [
    (Ferry.queue, [record(1), record(2)]),
    (Ferry.attempts, {1: [AttemptRecord(1, NOW, NOW, FAILURE, 77)], 2: []}),
    (Ferry.pause, 3),
    (Ferry.cancel_check, None),
    (Ferry.run_check, CHECK_REPORT),
    (Ferry.repair, [RepairResult(CHECK_REPORT.findings[0], RepairOutcome.DONE, "adopted")]),
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.method)
def test_every_call_arrives_as_it_was_sent(call: FacadeCall) -> None:
    assert decode_request(encode_request("work", call), Ferry) == ("work", call)


@pytest.mark.parametrize(("method", "value"), RESULTS, ids=lambda m: getattr(m, "__name__", ""))
def test_every_result_arrives_as_it_was_sent(method: Any, value: object) -> None:
    reply = decode_reply(encode_reply(ControlReturned(value)))
    assert isinstance(reply, ControlReturned)
    assert decode_result(method, reply.value) == value


def test_a_failure_arrives_as_it_was_sent() -> None:
    failed = ControlFailed("Title", "Message")
    assert decode_reply(encode_reply(failed)) == failed


def test_only_values_of_the_codec_are_encoded() -> None:
    for value in (object(), threading.Event(), lambda: None, b"bytes"):
        with pytest.raises(TypeError):
            encode_reply(ControlReturned([value]))


@pytest.mark.parametrize("name", sorted(FACADE_METHODS))
def test_every_offered_method_has_a_json_form_for_its_arguments_and_result(name: str) -> None:
    function = getattr(Ferry, name)
    for tp in typing.get_type_hints(function).values():
        typed_json.decoder(tp)  # raises TypeError for a type the codec refuses


@pytest.mark.parametrize(
    "name", ["_resumable", "__init__", "close", "profile", "engine", "listen", "no_such"]
)
def test_a_private_unknown_or_unoffered_name_is_refused_before_any_argument_is_read(
    name: str,
) -> None:
    payload = json.dumps({"v": 2, "profile": None, "call": name, "args": [{"x": 1}]})
    with pytest.raises(FacadeRefused) as raised:
        decode_request(payload.encode(), Ferry)
    assert raised.value.title == "Not a Ferry request"
    assert "Nothing was carried out" in raised.value.message


def test_arguments_of_the_wrong_type_or_number_are_refused() -> None:
    cases = {
        b'"args": [["*"]], "kwargs": {}': "(cancel)(transfer_ids)[0] is not int",
        b'"args": [[1], [2]], "kwargs": {}': "takes 1 positional argument(s), not 2",
        b'"args": [], "kwargs": {"how": 1}': "takes no argument 'how'",
    }
    for arguments, detail in cases.items():
        payload = b'{"v": 2, "profile": null, "call": "cancel", ' + arguments + b"}"
        with pytest.raises(ControlChannelError) as raised:
            decode_request(payload, Ferry)
        assert detail.replace("(cancel)", "cancel") in raised.value.message, raised.value.message


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
        "Unreadable answer": b'{"v": 2, "failed": {"title": 7}}',
        "Another Ferry version is running": b'{"v": 1, "reply": "count", "body": {"count": 1}}',
        "Answer too large": None,
    }
    messages = {}
    for title, body in cases.items():
        if body is None:
            answers.append(struct.pack(">I", MAX_REPLY + 1))
        else:
            answers.append(struct.pack(">I", len(body)) + body)
        with pytest.raises(ControlChannelError) as raised:
            ask_running(address, None, FacadeCall.of(Ferry.resume))
        assert raised.value.title == title
        messages[title] = raised.value.message
    assert "(failed.title is not str)" in messages["Unreadable answer"]
    assert f"more than the {MAX_REPLY:,} allowed" in messages["Answer too large"]


def test_a_garbled_result_names_the_field() -> None:
    body = encode_reply(ControlReturned(RESULTS[0][1])).replace(b'"failed"', b'"melted"', 1)
    reply = decode_reply(body)
    assert isinstance(reply, ControlReturned)
    with pytest.raises(ControlChannelError) as raised:
        decode_result(Ferry.queue, reply.value)
    assert raised.value.title == "Unreadable answer"
    assert "(queue[0].state is not a TransferState)" in raised.value.message
    assert "`ferry status` shows" in raised.value.message
