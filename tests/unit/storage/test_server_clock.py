"""The S3 server's clock as its Date headers tell it (server_clock.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from desktop_app.core.storage.server_clock import ServerClock

LOCAL = datetime(2026, 12, 2, 12, 0, 0, 600_000, tzinfo=UTC)


def clock_seeing(server: datetime) -> ServerClock:
    clock = ServerClock(local=lambda: LOCAL)
    clock.observe({"Date": format_datetime(server, usegmt=True)})
    return clock


def test_a_server_ten_minutes_behind_is_the_time_bucket_ages_are_judged_by() -> None:
    clock = clock_seeing(LOCAL - timedelta(minutes=10))
    assert abs(clock.now() - (LOCAL - timedelta(minutes=10))) < timedelta(seconds=1)
    said = clock.notable_offset() or ""
    assert "clock is 10 min ahead of the S3 server's" in said


def test_a_date_within_its_one_second_resolution_is_no_offset() -> None:
    clock = clock_seeing(LOCAL)  # the header drops the 0.6 s
    assert clock.offset is not None
    assert clock.offset < timedelta(0)
    assert clock.now() == LOCAL
    assert clock.notable_offset() is None


def test_an_answer_without_a_date_teaches_nothing() -> None:
    clock = ServerClock(local=lambda: LOCAL)
    clock.observe({})
    clock.observe({"Date": "not a date"})
    assert clock.offset is None
    assert clock.now() == LOCAL
    assert clock_seeing(LOCAL + timedelta(seconds=40)).notable_offset() is None
    behind = clock_seeing(LOCAL + timedelta(minutes=3)).notable_offset() or ""
    assert "3 min behind" in behind
