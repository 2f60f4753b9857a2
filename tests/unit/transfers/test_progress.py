"""Progress as the connection takes the bytes, and a silent server, on an injected clock.

The meter (``progress.ProgressMeter``) counts each request's body as botocore
reads it; ``throughput.Throughput`` turns its events into a speed, a time
left and a silence. No sleeps: the clock is a number the tests move.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from desktop_app.core.model.events import EngineEvent, EventBus, TransferProgress
from desktop_app.core.runtime.throughput import IDLE_SECONDS, STALL_SECONDS, Rate, Throughput
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import CredentialSource, S3Credentials
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.progress import ProgressMeter
from tests.unit.runtime.test_throughput import Clock

MIB = 1024 * 1024


def meter_on(
    clock: Clock, total: int = 100 * MIB, done: int = 0
) -> tuple[ProgressMeter, list[TransferProgress]]:
    bus = EventBus()
    events: list[TransferProgress] = []

    def keep(event: EngineEvent) -> None:
        if isinstance(event, TransferProgress):
            events.append(event)

    bus.subscribe(keep)
    return ProgressMeter(bus, clock, 7, total, done), events


def test_bytes_count_as_the_connection_takes_them_and_an_unanswered_request_gives_them_back() -> (
    None
):
    clock = Clock()
    meter, events = meter_on(clock)
    first, second = meter.request(8 * MIB), meter.request(8 * MIB)
    assert events == [], "waiting for bandwidth is not sending"
    first.sent(0)
    assert events[-1].sending
    assert events[-1].bytes_done == 0
    for position in range(0, 8 * MIB + 1, MIB):
        clock.now += 0.01
        first.sent(position)
    second.sent(3 * MIB)
    assert events[-1].bytes_done == 11 * MIB, "every MiB is said, however fast it went"
    first.keep()
    first.end()
    assert (events[-1].bytes_done, events[-1].sending) == (11 * MIB, True)
    second.end()  # not answered: the connection broke
    assert (events[-1].bytes_done, events[-1].sending) == (8 * MIB, False)
    second.end()
    assert events[-1].bytes_done == 8 * MIB, "ending twice takes nothing back twice"


def test_a_body_sent_again_counts_once() -> None:
    """botocore sends a request again from the start of its body (a retry)."""
    clock = Clock()
    meter, events = meter_on(clock, total=8 * MIB)
    request = meter.request(8 * MIB)
    for position in (0, 2 * MIB, 4 * MIB, 0, 2 * MIB, 4 * MIB, 8 * MIB):
        clock.now += 0.2
        request.sent(position)
    request.keep()
    request.end()
    assert [e.bytes_done // MIB for e in events] == [0, 2, 4, 0, 2, 4, 8, 8]
    assert not events[-1].sending, "answered: counted once, not 16 MiB"


def test_silence_counts_from_the_last_new_byte_through_a_body_sent_again() -> None:
    clock = Clock()
    meter, events = meter_on(clock, done=16 * MIB)
    request = meter.request(8 * MIB)
    clock.now += 30.0  # waited for bandwidth: not silence
    request.sent(0)
    assert events[-1].quiet_seconds == 0.0
    clock.now += 1.0
    request.sent(4 * MIB)
    assert events[-1].quiet_seconds == 0.0
    clock.now += 60.0  # the server took nothing; botocore's read timeout, then again
    request.sent(0)
    assert events[-1].quiet_seconds == pytest.approx(60.0)
    clock.now += 1.0
    request.sent(4 * MIB)  # the same bytes once more: nothing new
    assert events[-1].quiet_seconds == pytest.approx(61.0)
    clock.now += 1.0
    request.sent(5 * MIB)  # beyond: the server takes bytes again
    assert events[-1].quiet_seconds == 0.0
    assert events[-1].sending


def test_an_answer_ends_a_silence_and_nothing_out_is_no_silence() -> None:
    clock = Clock()
    meter, events = meter_on(clock)
    part = meter.request(MIB)
    part.sent(0)
    part.sent(MIB)  # all of it in the socket's buffers; the answer is awaited
    clock.now += 20.0
    other = meter.request(MIB)
    other.sent(0)  # a second request going out does not say the server answered
    assert events[-1].quiet_seconds == pytest.approx(20.0)
    part.keep()
    part.end()
    assert events[-1].quiet_seconds == 0.0
    other.keep()
    other.end()
    assert not events[-1].sending
    assert events[-1].quiet_seconds == 0.0


def progress(done: int, *, sending: bool = True, quiet: float = 0.0) -> TransferProgress:
    return TransferProgress(7, done, 100 * MIB, 0, sending, quiet)


def test_a_view_says_a_server_is_silent_from_15_s_and_counts_on_between_events() -> None:
    clock = Clock()
    throughput = Throughput(clock)
    throughput.observe(progress(4 * MIB))
    clock.now += STALL_SECONDS - 0.1
    assert throughput.silent_for(7) is None
    clock.now += 0.1
    assert throughput.silent_for(7) == pytest.approx(STALL_SECONDS)
    clock.now += 5.0
    assert throughput.silent_for(7) == pytest.approx(20.0), "no event comes while it is silent"
    throughput.observe(progress(0, quiet=61.0))  # sent again after a timeout: still silent
    assert throughput.silent_for(7) == pytest.approx(61.0)
    throughput.observe(progress(5 * MIB))
    assert throughput.silent_for(7) is None
    clock.now += 30.0
    throughput.observe(progress(5 * MIB, sending=False))  # nothing out: waiting for bandwidth
    assert throughput.silent_for(7) is None
    throughput.observe(progress(5 * MIB, quiet=16.0))
    assert throughput.silent_for(7) == pytest.approx(16.0)
    throughput.forget(7)
    assert throughput.silent_for(7) is None
    assert throughput.running() == set()


def test_the_speed_of_all_together_says_nothing_once_nothing_is_sent() -> None:
    """Small files sent, then a large one read for its checksums: no '9 h left'."""
    clock = Clock()
    throughput = Throughput(clock)
    for n in range(1, 21):
        clock.now += 0.1
        throughput.observe(TransferProgress(n, 20_000, 20_000, 0))
    assert throughput.overall(2 * 1024 * MIB).bytes_per_second == pytest.approx(200_000)
    clock.now += IDLE_SECONDS
    assert throughput.overall(2 * 1024 * MIB) == Rate(None, None)


def test_time_left_is_never_0_s_while_bytes_remain() -> None:
    assert Rate.of(300e6, 142_600_000) == Rate(300e6, 1.0)
    assert Rate.of(1e6, 1) == Rate(1e6, 1.0)
    assert Rate.of(1e6, 59_200_000).seconds_left == 60.0
    assert Rate.of(1e6, 0) == Rate(1e6, None), "all sent: the answers are awaited"


def test_botocore_reads_a_body_as_it_sends_it_and_it_goes_without_expect() -> None:
    """The storage adapter's side: positions as the body is read, a rewind from 0."""
    profile = Profile(
        name="p", bucket="b", catalog_url="sqlite://", endpoint_url="http://127.0.0.1:1"
    )
    storage = S3Storage.connect(
        profile, S3Credentials("key", "not-a-secret", CredentialSource.ENVIRONMENT)
    )
    headers: dict[str, str] = {}

    def send(request: Any, **_kwargs: Any) -> AWSResponse:
        headers.update(request.headers.items())
        body = request.body
        for _pass in range(2):  # the second: botocore's retry, from the start
            body.seek(0)
            while body.read(16 * 1024):  # as urllib3 sends a readable body
                pass
        return AWSResponse(request.url, 200, HTTPHeaders.from_dict({"ETag": '"x"'}), _Answer())

    seen: list[int] = []
    storage.client.meta.events.register("before-send.s3.UploadPart", send)  # type: ignore[arg-type]  # stubs: handlers return None
    body = bytearray(b"p" * 40_000)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    storage.upload_part("k", "upload-1", 1, body, md5, sent=seen.append)
    assert seen == [0, 16384, 32768, 40000, 0, 16384, 32768, 40000]
    assert "Expect" not in headers
    assert headers["Content-Length"] == "40000"

    # A whole small file too: "Expect: 100-continue" would cost it a round trip more.
    headers.clear()
    seen.clear()
    storage.client.meta.events.register("before-send.s3.PutObject", send)  # type: ignore[arg-type]  # stubs: handlers return None
    storage.put_object("k", bytes(body), metadata={}, md5_b64=md5, sent=seen.append)
    assert seen[:4] == [0, 16384, 32768, 40000]
    assert "Expect" not in headers
    assert headers["Content-Length"] == "40000"


class _Answer:
    def stream(self, **_kwargs: Any) -> list[bytes]:
        return [b""]
