"""Bandwidth by the clock: the schedule's format and the limiter following it."""

from __future__ import annotations

from datetime import datetime

import pytest

from desktop_app.core.bandwidth import BandwidthSchedule, parse_rate
from desktop_app.core.errors import ConfigError
from desktop_app.core.transfers.limits import WAIT_SLICE, BandwidthLimiter

MIB = 1024 * 1024


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 24, hour, minute)  # naive: read as local wall-clock time


def test_a_schedule_gives_each_hour_its_rate_and_wraps_past_midnight() -> None:
    schedule = BandwidthSchedule.parse("08:00-18:00 2MiB/s, 18:00-08:00 off")
    assert schedule.rate_at(at(8)) == 2 * MIB
    assert schedule.rate_at(at(17, 59)) == 2 * MIB
    assert schedule.rate_at(at(18)) == 0  # off: no limit, as in rclone
    assert schedule.rate_at(at(3)) == 0


def test_gaps_take_the_plain_limit_and_seconds_may_be_given() -> None:
    schedule = BandwidthSchedule.parse("12:00-13:00:30 512k", fallback=5 * MIB)
    assert schedule.rate_at(at(12, 30)) == 512 * 1024
    assert schedule.rate_at(datetime(2026, 11, 24, 13, 0, 29)) == 512 * 1024
    assert schedule.rate_at(datetime(2026, 11, 24, 13, 0, 30)) == 5 * MIB
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
    now = [0.0]
    rate = [1000]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 1.0:
            rate[0] = 0  # the schedule says "off" from the first second on

    limiter = BandwidthLimiter(1000, clock=lambda: now[0], sleep=sleep, rate_now=lambda: rate[0])
    slept = limiter.consume(10_000)  # 10 s at 1000 B/s, but the limit goes after 1 s
    assert slept == pytest.approx(1.0)
    assert limiter.consume(10**9) == 0.0


def test_a_slower_rate_applies_to_the_rest_of_a_wait() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = BandwidthLimiter(
        2000, clock=lambda: now[0], sleep=sleep, rate_now=lambda: 2000 if now[0] < 1.0 else 500
    )
    # 4,000 bytes of debt: 2,000 paid in the first second at 2000 B/s, the rest at 500 B/s.
    assert limiter.consume(4000) == pytest.approx(1.0 + 2000 / 500)


def test_a_wait_for_bandwidth_ends_when_the_transfer_is_asked_to_stop() -> None:
    # 16 MiB at 1 MB/s would wait 16 s before the part's cancel is seen.
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = BandwidthLimiter(1_000_000, clock=lambda: now[0], sleep=sleep)
    asked = [False]

    def interrupted() -> bool:
        if sum(slept) >= 1.0:
            asked[0] = True  # a cancel arrives a second into the wait
        return asked[0]

    waited = limiter.consume(16 * 1024 * 1024, interrupted=interrupted)
    assert 1.0 <= waited <= 1.0 + WAIT_SLICE
    # The bytes never sent are not owed: the next part waits for its own bytes only.
    slept.clear()
    assert limiter.consume(500_000) <= 0.5 + WAIT_SLICE


def test_bandwidth_limiter_paces_without_real_sleeping() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = BandwidthLimiter(1000, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.consume(500)
    # 2,500 bytes at 1,000 B/s, no burst: 2.5 s of waiting.
    assert sum(slept) == pytest.approx(2.5)


def test_a_small_request_waits_only_for_its_own_bytes() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = BandwidthLimiter(1000, clock=lambda: now[0], sleep=sleep, small_request=100)
    limiter.consume(5000)  # a large part: 5 s of debt
    assert slept == [5.0]
    limiter.consume(10)
    assert slept[-1] == pytest.approx(0.01)  # not the 5 s of debt before it
    limiter.consume(1000)
    assert slept[-1] == pytest.approx(6.01)  # the large one after it pays


def test_no_stretch_of_time_sends_more_than_the_limit_the_first_second_included() -> None:
    """30 files of 10 MB at 25 MB/s: the bytes sent by any moment are at most what
    the limit allows since the start plus the one file just paid for, so the
    first file waits too, and time nobody sent in is not saved up for a burst."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    rate, size = 25_000_000, 10_000_000
    limiter = BandwidthLimiter(rate, clock=lambda: now[0], sleep=sleep)
    sent = 0
    for _ in range(30):
        limiter.consume(size)
        sent += size  # goes out the moment it is paid for: the worst case
        assert sent <= rate * now[0] + 1e-6 * rate
    assert now[0] == pytest.approx(30 * size / rate)
    now[0] += 60.0  # a minute with nothing to send
    assert limiter.consume(size) == pytest.approx(size / rate)
