"""Bandwidth by the clock: the schedule's format and the limiter following it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from desktop_app.core.model.errors import ConfigError
from desktop_app.core.settings.bandwidth import BandwidthSchedule, parse_rate
from desktop_app.core.transfers.limits import (
    CREDIT_SECONDS,
    WAIT_SLICE,
    BandwidthLimiter,
    PacedRequest,
    StoppedWhilePacing,
)

MIB = 1024 * 1024


class FakeTime:
    """A clock that moves only when the limiter sleeps (or, frozen, not at all: every
    request asks at the same instant), and the sleeps it was asked for."""

    def __init__(self, *, frozen: bool = False) -> None:
        self.now = 0.0
        self.frozen = frozen
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if not self.frozen:
            self.now += seconds

    def limiter(
        self, rate: int, *, small_request: int = 0, rate_now: Callable[[], int] | None = None
    ) -> BandwidthLimiter:
        return BandwidthLimiter(
            rate,
            monotonic=self.clock,
            sleep=self.sleep,
            small_request=small_request,
            rate_now=rate_now,
        )


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 24, hour, minute)  # noqa: DTZ001 - naive: local wall-clock time


def test_a_schedule_gives_each_hour_its_rate_and_wraps_past_midnight() -> None:
    schedule = BandwidthSchedule.parse("08:00-18:00 2MiB/s, 18:00-08:00 off")
    assert schedule.rate_at(at(8)) == 2 * MIB
    assert schedule.rate_at(at(17, 59)) == 2 * MIB
    assert schedule.rate_at(at(18)) == 0  # off: no limit, as in rclone
    assert schedule.rate_at(at(3)) == 0


def test_gaps_take_the_plain_limit_and_seconds_may_be_given() -> None:
    schedule = BandwidthSchedule.parse("12:00-13:00:30 512k", fallback=5 * MIB)
    assert schedule.rate_at(at(12, 30)) == 512 * 1024
    assert schedule.rate_at(at(13, 0).replace(second=29)) == 512 * 1024
    assert schedule.rate_at(at(13, 0).replace(second=30)) == 5 * MIB
    assert BandwidthSchedule.parse("").rate_at(at(9)) == 0


@pytest.mark.parametrize(
    ("text", "rate"),
    [("2MiB/s", 2 * MIB), ("1.5M", int(1.5 * MIB)), ("700KiB", 700 * 1024), ("100B/s", 100)],
)
def test_rates_read_as_rclone_reads_them(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("8-18 2M", "is not 'HH:MM-HH:MM RATE'"),
        ("08:00-25:00 2M", "does not exist"),
        ("08:00-18:00 fast", "is not a rate"),
        ("08:00-18:00 0", "write 'off'"),
    ],
)
def test_a_bad_schedule_is_refused_with_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        BandwidthSchedule.parse(text)


def test_a_waiting_part_speeds_up_as_soon_as_the_schedule_lifts_the_limit() -> None:
    time = FakeTime()
    # The schedule says "off" from the first second on.
    limiter = time.limiter(1000, rate_now=lambda: 1000 if time.now < 1.0 else 0)
    slept = limiter.consume(10_000)  # 10 s at 1000 B/s, but the limit goes after 1 s
    assert slept == pytest.approx(1.0)
    assert limiter.consume(10**9) == 0.0


def test_a_slower_rate_applies_to_the_rest_of_a_wait() -> None:
    time = FakeTime()
    limiter = time.limiter(2000, rate_now=lambda: 2000 if time.now < 1.0 else 500)
    # 4,000 bytes of debt: 2,000 paid in the first second at 2000 B/s, the rest at 500 B/s.
    assert limiter.consume(4000) == pytest.approx(1.0 + 2000 / 500)


def test_a_wait_for_bandwidth_ends_when_the_transfer_is_asked_to_stop() -> None:
    # 16 MiB at 1 MB/s would wait 16 s before the part's cancel is seen.
    time = FakeTime()
    limiter = time.limiter(1_000_000)

    def interrupted() -> bool:
        return time.now >= 1.0  # a cancel arrives a second into the wait

    waited = limiter.consume(16 * 1024 * 1024, interrupted=interrupted)
    assert 1.0 <= waited <= 1.0 + WAIT_SLICE
    # The bytes never sent are not owed: the next part waits for its own bytes only.
    assert limiter.consume(500_000) <= 0.5 + WAIT_SLICE


def test_bandwidth_limiter_paces_without_real_sleeping() -> None:
    time = FakeTime()
    limiter = time.limiter(1000)
    for _ in range(5):
        limiter.consume(500)
    # 2,500 bytes at 1,000 B/s, no burst: 2.5 s of waiting.
    assert sum(time.slept) == pytest.approx(2.5)


def test_a_small_request_waits_only_for_its_own_bytes() -> None:
    time = FakeTime(frozen=True)
    limiter = time.limiter(1000, small_request=100)
    limiter.consume(5000)  # a large part: 5 s of debt
    assert time.slept == [5.0]
    limiter.consume(10)
    assert time.slept[-1] == pytest.approx(0.01)  # not the 5 s of debt before it
    limiter.consume(1000)
    assert time.slept[-1] == pytest.approx(6.01)  # the large one after it pays
    # A share of a large request is not a small request.
    limiter.consume(10, request_size=5000)
    assert time.slept[-1] == pytest.approx(6.02)


def test_no_stretch_of_time_sends_more_than_the_limit_the_first_second_included() -> None:
    """30 files of 10 MB at 25 MB/s: the bytes sent by any moment are at most what
    the limit allows since the start plus the one file just paid for, so the
    first file waits too, and time nobody sent in is not saved up for a burst."""
    time = FakeTime()
    rate, size = 25_000_000, 10_000_000
    limiter = time.limiter(rate)
    time.now = 30.0  # made long before the first request: it still starts empty
    sent = 0
    for _ in range(30):
        limiter.consume(size)
        sent += size  # goes out the moment it is paid for: the worst case
        assert sent <= rate * (time.now - 30.0) + 1e-6 * rate
    assert time.now - 30.0 == pytest.approx(30 * size / rate)
    time.now += 60.0  # a minute with nothing to send: 50 ms of it kept, no more
    assert limiter.consume(size) == pytest.approx(size / rate - CREDIT_SECONDS)


BLOCK = 16 * 1024


def send_body(
    paced: PacedRequest, size: int, wire: list[tuple[float, int]], time: FakeTime
) -> None:
    """Read a body as urllib3 does: ``sent`` at each block's read, then the block goes."""
    for position in range(0, size, BLOCK):
        paced.sent(position)
        wire.append((time.now, min(BLOCK, size - position)))
    paced.sent(size)  # the empty read that ends the body


def test_a_body_is_paid_for_block_by_block_as_the_connection_takes_it() -> None:
    """The wire never runs ahead of the limit by more than one block: the first byte
    of a 10 MB file goes at once, not after the whole file's 0.4 s."""
    time = FakeTime()
    rate, size = 25_000_000, 10_000_000
    limiter = time.limiter(rate)
    positions: list[int] = []
    wire: list[tuple[float, int]] = []
    for _ in range(3):
        paced = PacedRequest(limiter, size, lambda: False, positions.append)
        send_body(paced, size, wire, time)
    assert wire[0][0] == 0.0
    sent = 0
    for at, block in wire:
        sent += block
        assert sent <= rate * at + BLOCK + 1e-6 * rate
    assert time.now == pytest.approx(3 * size / rate)
    assert positions[-1] == size  # the progress callback still sees every read


def test_a_body_read_twice_is_paid_once() -> None:
    # A pass that reads without sending (or botocore's rewind to send again)
    # must not halve the rate.
    time = FakeTime()
    limiter = time.limiter(1_000_000)
    paced = PacedRequest(limiter, 100 * BLOCK, lambda: False, lambda _position: None)
    wire: list[tuple[float, int]] = []
    send_body(paced, 100 * BLOCK, wire, time)
    send_body(paced, 100 * BLOCK, wire, time)
    assert time.now == pytest.approx(100 * BLOCK / 1_000_000)


def test_a_pause_while_a_body_waits_for_bandwidth_stops_the_request() -> None:
    time = FakeTime()
    limiter = time.limiter(1_000_000)
    paced = PacedRequest(limiter, 16 * MIB, lambda: time.now >= 1.0, lambda _position: None)
    wire: list[tuple[float, int]] = []
    with pytest.raises(StoppedWhilePacing):
        send_body(paced, 16 * MIB, wire, time)
    assert time.now <= 1.0 + WAIT_SLICE
    assert sum(block for _at, block in wire) <= 1_000_000 + 2 * BLOCK
    # Without a limit, a pause lets the request finish as before.
    unlimited = PacedRequest(time.limiter(0), MIB, lambda: True, lambda _position: None)
    send_body(unlimited, MIB, wire, time)


def test_a_stopped_wait_gives_back_its_own_bytes_not_the_debt_of_those_before_it() -> None:
    # Every request asks at the same instant: 5,000 bytes of another part are owed
    # when a 1,000-byte block stops waiting (its transfer paused).
    time = FakeTime(frozen=True)
    limiter = time.limiter(1000)
    limiter.consume(5000)
    limiter.consume(1000, interrupted=lambda: True)
    # The next block still waits behind the 5,000 bytes owed (5 s + its own 1 s);
    # forgetting them would let it, and every block after, go over the limit.
    limiter.consume(1000)
    assert time.slept[-1] == pytest.approx(6.0)
