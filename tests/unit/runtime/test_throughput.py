"""Speed from accepted-byte lumps: true under a steady limit, falling in a stall."""

from __future__ import annotations

import pytest

from desktop_app.core.model.events import TransferProgress
from desktop_app.core.runtime.throughput import Rate, RateWindow, Throughput

MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_steady_parts_give_the_true_rate_whenever_it_is_read() -> None:
    window = RateWindow()
    rate = 4_000_000.0
    gap = 8 * MIB / rate
    for n in range(12):
        window.add(n * gap, 8 * MIB)
    for moment in (11 * gap, 11 * gap + gap / 2, 11 * gap + gap * 0.99):
        assert window.rate(moment) == pytest.approx(rate, rel=0.01)


def test_a_stall_makes_the_speed_fall_and_then_vanish() -> None:
    window = RateWindow()
    for n in range(5):
        window.add(float(n), 1_000_000)
    assert window.rate(4.5) == pytest.approx(1_000_000)
    rate = window.rate(10.0)
    assert rate is not None
    assert rate < 500_000  # nothing for six usual gaps
    assert window.rate(100.0) is None  # all of it is stale


def test_one_lump_is_no_speed() -> None:
    window = RateWindow()
    window.add(0.0, 5_000_000)
    assert window.rate(2.0) is None


def test_bytes_stored_in_an_earlier_run_are_not_speed_now() -> None:
    clock = Clock()
    throughput = Throughput(clock)
    total = 100 * MIB
    throughput.observe(TransferProgress(1, 60 * MIB, total, bytes_at_start=50 * MIB))
    for step in range(1, 5):
        clock.now += 2.0
        throughput.observe(TransferProgress(1, (60 + 10 * step) * MIB, total, 50 * MIB))
    rate = throughput.of_transfer(1, remaining=0)
    assert rate.bytes_per_second == pytest.approx(5 * MIB)
    assert throughput.overall(remaining=10 * MIB) == Rate(5 * MIB, 2.0)


def test_row_and_total_agree_for_one_transfer_and_add_up_for_two() -> None:
    clock = Clock()
    throughput = Throughput(clock)
    for step in range(6):
        throughput.observe(TransferProgress(1, step * MIB, 100 * MIB, 0))
        throughput.observe(TransferProgress(2, step * 2 * MIB, 100 * MIB, 0))
        clock.now += 1.0
    one = throughput.of_transfer(1, 0).bytes_per_second
    two = throughput.of_transfer(2, 0).bytes_per_second
    overall = throughput.overall(0).bytes_per_second
    assert one is not None
    assert two is not None
    assert overall is not None
    assert one == pytest.approx(MIB)
    assert two == pytest.approx(2 * MIB)
    assert overall == pytest.approx(one + two, rel=0.25)
    throughput.forget(1)
    assert throughput.of_transfer(1, 0) == Rate(None, None)
