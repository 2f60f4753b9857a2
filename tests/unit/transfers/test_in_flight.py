"""The window of single-request files in flight: it climbs while it pays and backs off
when the server says slow down (a clock and a throttle count of the test's own)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from desktop_app.core.transfers.in_flight import (
    SmallFileWindow,
    WindowChange,
    WindowOptions,
    WindowStep,
)


@dataclass
class World:
    now: float = 0.0
    throttled: int = 0


def window(world: World, **options: Any) -> SmallFileWindow:
    defaults = WindowOptions(floor=8, start=8, ceiling=64, least_sample=10, least_seconds=0.0)
    return SmallFileWindow(
        dataclasses.replace(defaults, **options),
        monotonic=lambda: world.now,
        throttled=lambda: world.throttled,
    )


def sample(
    world: World, subject: SmallFileWindow, rate: float, *, full: bool = True, sent: bool = True
) -> list[WindowChange]:
    """Files end at ``rate`` per second until the window judges a sample."""
    changes: list[WindowChange] = []
    size = subject.size
    for _ in range(max(10, size) + 1):
        if full:
            subject.full()
        world.now += 1 / rate
        change = subject.finished(sent=sent)
        if change is not None:
            changes.append(change)
            break
    return changes


def test_it_starts_at_its_start_and_doubles_while_files_wait_up_to_the_ceiling() -> None:
    world = World()
    subject = window(world, start=32)
    assert subject.size == 32
    subject.finished(sent=True)  # the first file starts the clock
    [grew] = sample(world, subject, 100)
    assert (grew.step, grew.size) == (WindowStep.GREW, 64)
    [kept] = sample(world, subject, 100)
    assert (kept.step, subject.size) == (WindowStep.KEPT, 64)


def test_the_profiles_concurrency_is_the_least_it_starts_at() -> None:
    assert window(World(), floor=40, start=32).size == 40


def test_it_does_not_grow_when_no_file_waited_for_a_place() -> None:
    world = World()
    subject = window(world)
    subject.finished(sent=True)
    for _ in range(3):
        [change] = sample(world, subject, 100, full=False)
        assert change.step is WindowStep.KEPT
    assert subject.size == 8


def test_a_step_within_the_noise_is_kept_and_one_slow_sample_undoes_nothing() -> None:
    world = World()
    subject = window(world)
    subject.finished(sent=True)
    sample(world, subject, 100)  # 8 -> 16
    sample(world, subject, 95)  # within a tenth: kept, 16 -> 32
    assert subject.size == 32
    [one_slow] = sample(world, subject, 50)
    assert (one_slow.step, subject.size) == (WindowStep.KEPT, 32)


def test_two_clearly_slower_samples_in_a_row_go_back_to_the_last_size_kept() -> None:
    world = World()
    subject = window(world, settle=5.0)
    subject.finished(sent=True)
    sample(world, subject, 100)  # 8 -> 16
    sample(world, subject, 100)  # 16 -> 32
    sample(world, subject, 60)
    [back] = sample(world, subject, 60)
    assert (back.step, back.size) == (WindowStep.STEPPED_BACK, 16)
    # It rests there: no step up before the settle time has passed ...
    [rest] = sample(world, subject, 100)
    assert (rest.step, subject.size) == (WindowStep.KEPT, 16)
    world.now += 5.0
    # ... then it measures again and tries above.
    [again] = sample(world, subject, 100)
    assert (again.step, again.size) == (WindowStep.GREW, 32)


def test_the_server_slowing_it_down_halves_it_once_a_second_below_the_floor() -> None:
    world = World()
    subject = window(world, start=32, calm=10.0)
    subject.finished(sent=True)
    world.throttled = 3  # a burst of SlowDown answers
    halved = subject.finished(sent=True)
    assert halved is not None
    assert (halved.step, halved.size) == (WindowStep.HALVED, 16)
    world.throttled = 5
    world.now += 0.5
    assert subject.finished(sent=True) is None  # the same burst: once
    assert subject.size == 16
    for _ in range(3):
        world.now += 1.0
        world.throttled += 1
        subject.finished(sent=True)
    assert subject.size == 2  # below the profile's 8: the server asked for it
    # No growth while the server may still be busy ...
    [calm] = sample(world, subject, 100)
    assert (calm.step, subject.size) == (WindowStep.KEPT, 2)
    world.now += 10.0
    # ... then it climbs again.
    [grew] = sample(world, subject, 100)
    assert (grew.step, grew.size) == (WindowStep.GREW, 4)


def test_the_time_before_the_first_file_ends_is_not_counted() -> None:
    world = World()
    subject = window(world)
    world.now = 30.0  # a slow start: imports, the catalog's first connection
    subject.finished(sent=True)
    [grew] = sample(world, subject, 100)
    assert abs(grew.files_per_second - 100.0) < 1.0


def test_an_idle_hour_between_files_is_not_counted_as_a_slow_window() -> None:
    world = World()
    subject = window(world)
    subject.finished(sent=True)
    sample(world, subject, 100)  # 8 -> 16, best 100 files/s
    for _ in range(2):
        # A few files, then nobody drops anything for an hour, then a folder.
        for _ in range(5):
            world.now += 0.01
            subject.finished(sent=True)
        world.now += 3600.0
        [change] = sample(world, subject, 100)
        assert change.step is WindowStep.GREW
    assert subject.size == 64


def test_files_that_fail_fast_say_nothing_of_the_speed() -> None:
    world = World()
    subject = window(world)
    subject.finished(sent=True)
    # The network is gone: files fail at 1,000 a second.
    assert sample(world, subject, 1000, sent=False) == []
    assert subject.size == 8


def test_a_slow_down_answered_before_a_quiet_spell_is_not_held_against_the_next_files() -> None:
    world = World()
    subject = window(world, start=32)
    subject.finished(sent=True)
    world.throttled = 1  # a part of a large file, say, at 10:00
    world.now += 4 * 3600.0  # the next small file at 14:00
    assert subject.finished(sent=True) is None
    assert subject.size == 32


def test_slow_downs_while_the_first_files_are_sent_halve_it() -> None:
    world = World()
    subject = window(world, start=32)
    world.throttled = 6  # the first PUTs answered SlowDown, retried by botocore
    world.now += 0.2
    change = subject.finished(sent=True)
    assert change is not None
    assert (change.step, subject.size) == (WindowStep.HALVED, 16)
