"""Where the small-file threads run (#35): one shared core, every core around a multipart upload.

The placement tests use the kernel's own calls (``sched_setaffinity``) and
read back what it holds for each thread; on a machine that gives this process
one CPU they check that nothing changed. One test goes through a real upload.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_app.core.model.states import TransferState
from desktop_app.core.model.threads import TransferThread
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.transfers.cores import LOOK_EVERY, CoreSharing, CpuTimes, LinuxAffinity
from tests.conftest import MemoryKeyring, environment_at, open_moto_ferry

MIB = 1024 * 1024
EVERY = frozenset(os.sched_getaffinity(0))
TRANSFER_NAMES = (
    "ferry-file_0",
    "ferry-file_1",
    "ferry-scheduler",
    "ferry-journal",
    "ferry-catalog",
)
OTHER_NAMES = ("ferry-part_0", "ferry-hash-ahead", "ferry-control")


def write_small_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = [folder / f"small-{n}.txt" for n in range(count)]
    for n, path in enumerate(paths):
        path.write_bytes(b"small %d" % n)
    return paths


def kind(thread_name: str) -> str:
    """A pool's thread name without its number ("ferry-file_3" -> "ferry-file")."""
    return thread_name.rstrip("_0123456789")


def on_cpus(threads: list[threading.Thread]) -> dict[str, frozenset[int]]:
    """The CPUs the kernel allows each started thread, by name."""
    return {t.name: frozenset(os.sched_getaffinity(t.native_id)) for t in threads if t.native_id}


class IdleMachine(LinuxAffinity):
    """The kernel's placement on a machine whose CPUs are busy a tenth of the time:
    what these tests see does not hang on how busy the machine running them is."""

    def __init__(self) -> None:
        self.ticks = 0

    def cpu_times(self) -> CpuTimes:
        self.ticks += 1000
        return CpuTimes(busy=self.ticks // 10, total=self.ticks)


class Waiting:
    """Real threads of these names, each waiting until the test ends."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.release = threading.Event()
        self.threads = [
            threading.Thread(target=self.release.wait, name=name, daemon=True) for name in names
        ]
        for thread in self.threads:
            thread.start()

    def cpus(self) -> dict[str, frozenset[int]]:
        return on_cpus(self.threads)

    def stop(self) -> None:
        self.release.set()
        for thread in self.threads:
            thread.join()


@pytest.fixture
def transfer_threads() -> Iterator[Waiting]:
    waiting = Waiting(TRANSFER_NAMES)
    yield waiting
    waiting.stop()


@pytest.fixture
def other_threads() -> Iterator[Waiting]:
    waiting = Waiting(OTHER_NAMES)
    yield waiting
    waiting.stop()


def test_a_small_files_attempt_puts_the_transfer_threads_on_one_core_and_no_other_thread(
    transfer_threads: Waiting, other_threads: Waiting
) -> None:
    sharing = CoreSharing(IdleMachine(), threads=lambda: transfer_threads.threads)
    try:
        with sharing.attempt(spreads=False):
            placed = transfer_threads.cpus()
            untouched = other_threads.cpus()
            main = frozenset(os.sched_getaffinity(0))
        if len(EVERY) < 2:  # one CPU: nothing to share, nothing changed
            assert sharing.core is None
            assert set(placed.values()) == {EVERY}
        else:
            assert sharing.core in EVERY
            assert set(placed.values()) == {frozenset({sharing.core})}
        assert set(untouched.values()) == {EVERY}
        assert main == EVERY
    finally:
        sharing.close()
    assert set(transfer_threads.cpus().values()) == {EVERY}  # close gives every CPU back


def test_a_multipart_attempt_gives_the_transfer_threads_every_core_while_it_runs(
    transfer_threads: Waiting,
) -> None:
    sharing = CoreSharing(IdleMachine(), threads=lambda: transfer_threads.threads)
    try:
        with sharing.attempt(spreads=False):
            pass
        with sharing.attempt(spreads=True):
            with sharing.attempt(spreads=False):  # a small file beside it places nothing
                during = transfer_threads.cpus()
            assert sharing.core is None
        assert set(during.values()) == {EVERY}
        with sharing.attempt(spreads=False):  # after it, the next small file places them again
            again = transfer_threads.cpus()
        if len(EVERY) >= 2:
            assert sharing.core is not None
            assert set(again.values()) == {frozenset({sharing.core})}
    finally:
        sharing.close()


def test_a_thread_started_by_a_placed_thread_is_born_on_its_core() -> None:
    """The scheduler starts file workers as the window grows: they need no placing."""
    placed = threading.Event()
    born: list[frozenset[int]] = []

    def start_one() -> None:
        placed.wait()
        child = threading.Thread(target=lambda: born.append(frozenset(os.sched_getaffinity(0))))
        child.start()
        child.join()

    scheduler = threading.Thread(target=start_one, name="ferry-scheduler")
    scheduler.start()
    sharing = CoreSharing(IdleMachine(), threads=lambda: [scheduler])
    try:
        with sharing.attempt(spreads=False):
            placed.set()
            scheduler.join()
        assert born == [frozenset({sharing.core}) if len(EVERY) >= 2 else EVERY]
    finally:
        sharing.close()


class RecordingAffinity:
    """This process's two CPUs as a test sees them; what was placed where, a thread
    that ends before it is placed, and how busy the CPUs were since each look."""

    def __init__(self, gone: frozenset[int] = frozenset(), refusal: int = errno.ESRCH) -> None:
        self.placed: list[tuple[int, frozenset[int]]] = []
        self.gone = set(gone)
        self.refusal = refusal
        self.busy_share = 0.1
        self.times = CpuTimes(0, 0)

    def cpu_times(self) -> CpuTimes:
        busy, total = self.times
        self.times = CpuTimes(busy + int(1000 * self.busy_share), total + 1000)
        return self.times

    def allowed(self) -> frozenset[int]:
        return frozenset({0, 1})

    def current_cpu(self) -> int | None:
        return 1

    def place(self, native_id: int, cpus: frozenset[int]) -> None:
        if native_id in self.gone:
            raise OSError(self.refusal, os.strerror(self.refusal))
        self.placed.append((native_id, cpus))


@pytest.mark.parametrize("refusal", [errno.ESRCH, errno.EINVAL, errno.EPERM])
def test_a_thread_that_cannot_be_placed_is_passed_over_and_tried_again(
    transfer_threads: Waiting, refusal: int
) -> None:
    """Ended (ESRCH), its CPU gone from the set (EINVAL), or not ours to move (EPERM)."""
    scheduler = next(t for t in transfer_threads.threads if t.name == "ferry-scheduler")
    assert scheduler.native_id is not None
    affinity = RecordingAffinity(gone=frozenset({scheduler.native_id}), refusal=refusal)
    sharing = CoreSharing(affinity, threads=lambda: transfer_threads.threads)
    with sharing.attempt(spreads=False):
        pass
    placed = {native_id for native_id, cpus in affinity.placed if cpus == {1}}
    others = {t.native_id for t in transfer_threads.threads if t is not scheduler}
    assert placed == others
    affinity.gone.clear()
    with sharing.attempt(spreads=False):
        pass
    assert affinity.placed[-1] == (scheduler.native_id, frozenset({1}))  # only it, this time


def test_nothing_is_placed_on_one_cpu_or_without_thread_affinity(
    transfer_threads: Waiting,
) -> None:
    class OneCpu(RecordingAffinity):
        def allowed(self) -> frozenset[int]:
            return frozenset({0})

    one = OneCpu()
    for sharing in (
        CoreSharing(one, threads=lambda: transfer_threads.threads),
        CoreSharing(None, threads=lambda: transfer_threads.threads),
    ):
        with sharing.attempt(spreads=False), sharing.attempt(spreads=True):
            pass
        sharing.close()
        assert sharing.core is None
    assert one.placed == []


def test_a_machine_with_no_core_to_spare_leaves_every_core_to_the_transfer_threads(
    transfer_threads: Waiting,
) -> None:
    """20 Ferrys on two cores: each on a core of its own choosing, the kernel could not
    even them out (bench-team was 5-10 % slower so)."""
    affinity = RecordingAffinity()
    clock = [0.0]
    sharing = CoreSharing(
        affinity, threads=lambda: transfer_threads.threads, monotonic=lambda: clock[0]
    )
    ids = {t.native_id for t in transfer_threads.threads}

    def attempt(busy_share: float) -> set[frozenset[int]]:
        affinity.busy_share = busy_share
        clock[0] += LOOK_EVERY
        affinity.placed.clear()
        with sharing.attempt(spreads=False):
            pass
        assert {native_id for native_id, _cpus in affinity.placed} in (set(), ids)
        return {cpus for _id, cpus in affinity.placed}

    assert attempt(0.95) == set()  # busy: nothing placed
    assert attempt(0.4) == {frozenset({1})}  # room: on the attempt's core
    assert attempt(0.5) == set()  # placed already
    assert attempt(0.99) == {frozenset({0, 1})}  # busy again: every core back
    clock[0] += LOOK_EVERY / 10  # between looks, the last look holds
    affinity.busy_share = 0.1
    with sharing.attempt(spreads=False):
        pass
    assert sharing.core is None


def test_how_busy_the_machine_is_comes_from_the_kernel() -> None:
    kernel = LinuxAffinity()
    before = kernel.cpu_times()
    deadline = time.thread_time() + 0.2
    while time.thread_time() < deadline:
        pass
    after = kernel.cpu_times()
    assert before is not None
    assert after is not None
    assert 0 <= before.busy <= before.total
    assert after.busy - before.busy >= 10  # 0.2 s of this thread: 20 ticks of 10 ms
    assert after.total - after.busy >= before.total - before.busy  # idle never shrinks


class Spy(IdleMachine):
    """The kernel's placement, with each call's thread name and CPUs written down."""

    calls: list[tuple[str, frozenset[int]]]

    def place(self, native_id: int, cpus: frozenset[int]) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        self.calls.append((names.get(native_id, "(ended)"), cpus))
        super().place(native_id, cpus)


def test_an_upload_runs_small_files_on_one_core_and_a_multipart_file_on_every_core(
    ferry_env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Spy.calls = []
    monkeypatch.setattr("desktop_app.core.runtime.ferry.system_affinity", Spy)
    files = write_small_files(tmp_path, 6)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * MIB))
    with open_moto_ferry(ferry_env, tmp_path) as app:
        first = app.upload(files[:3])
        second = app.upload([big])
        third = app.upload(files[3:])
    assert {r.state for r in [*first, *second, *third]} == {TransferState.DONE}
    if len(EVERY) < 2:
        assert Spy.calls == []
        return
    one_core = [(name, cpus) for name, cpus in Spy.calls if len(cpus) == 1]
    every = [(name, cpus) for name, cpus in Spy.calls if cpus == EVERY]
    # Every kind of thread that sends small files was placed, and nothing else; the
    # parts' and hashes' threads only ever took every CPU.
    placed_kinds = {kind(name) for name, _cpus in one_core}
    assert placed_kinds == {member.value for member in TransferThread}
    others = {name for name, _cpus in Spy.calls if not TransferThread.owns(name)}
    assert {kind(name) for name in others} == {"ferry-part", "ferry-md5-"}
    assert {cpus for name, cpus in Spy.calls if name in others} == {EVERY}
    # The multipart upload gave them every core, the small files after it took one again,
    # and closing gave every core back.
    first_spread = Spy.calls.index(every[0])
    assert any(len(cpus) == 1 for _name, cpus in Spy.calls[:first_spread])
    assert any(len(cpus) == 1 for _name, cpus in Spy.calls[first_spread:])
    assert Spy.calls[-1][1] == EVERY


def test_a_proc_file_of_another_shape_is_unknown_not_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No error of placement reaches a transfer: /proc read otherwise than expected is 'unknown'."""
    monkeypatch.setattr(Path, "read_bytes", lambda _self: b"1 (ferry) S 2")
    monkeypatch.setattr(
        "desktop_app.core.transfers.cores.open",
        lambda *_args, **_kwargs: io.BytesIO(b"cpu  12 x\n"),
        raising=False,
    )
    kernel = LinuxAffinity()
    assert kernel.current_cpu() is None
    assert kernel.cpu_times() is None


def test_a_file_that_grew_past_one_part_is_hashed_and_sent_on_every_core(
    ferry_env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued small, sent in parts from a placed worker: the parts' and hashes' threads it
    starts take every CPU (found by a review: they stayed on the shared core for good)."""
    monkeypatch.setattr("desktop_app.core.runtime.ferry.system_affinity", IdleMachine)
    small = write_small_files(tmp_path, 3)
    grown = tmp_path / "grown.bin"
    grown.write_bytes(b"tiny")
    with open_moto_ferry(ferry_env, tmp_path) as app:
        queued = app.queue([*small, grown])
        grown.write_bytes(os.urandom(11 * MIB))  # after it was queued, before its attempt
        done = app.wait([r.id for r in queued])
        pools = on_cpus(
            [t for t in threading.enumerate() if t.name.startswith(("ferry-part", "ferry-md5"))]
        )
    assert {r.state for r in done} == {TransferState.DONE}
    assert {kind(name) for name in pools} == {"ferry-part", "ferry-md5-"}
    assert set(pools.values()) == {EVERY}


def test_a_multipart_attempt_that_fails_still_ends_its_spreading(
    transfer_threads: Waiting,
) -> None:
    affinity = RecordingAffinity()
    sharing = CoreSharing(affinity, threads=lambda: transfer_threads.threads)
    with pytest.raises(RuntimeError), sharing.attempt(spreads=True):
        raise RuntimeError("disk full")
    with sharing.attempt(spreads=False):
        pass
    assert sharing.core == 1


def test_the_cpu_a_thread_runs_on_is_read_from_the_kernel() -> None:
    last = max(EVERY)
    seen: list[int | None] = []

    def held_to_the_last_cpu() -> None:
        os.sched_setaffinity(0, {last})
        seen.append(LinuxAffinity().current_cpu())

    thread = threading.Thread(target=held_to_the_last_cpu)
    thread.start()
    thread.join()
    assert seen == [last]


def test_the_spreading_lasts_while_the_parts_are_sent(
    ferry_env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("desktop_app.core.runtime.ferry.system_affinity", IdleMachine)
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"small")
    big.write_bytes(os.urandom(11 * MIB))
    with open_moto_ferry(ferry_env, tmp_path) as app:
        cores = app.engine.cores
        upload_part = app.storage.upload_part
        while_sent: list[int | None] = []

        def spy(*args: Any, **kwargs: Any) -> Any:
            with cores.attempt(spreads=False):  # a small file's attempt beside the parts
                while_sent.append(cores.core)
            return upload_part(*args, **kwargs)

        monkeypatch.setattr(app.storage, "upload_part", spy)
        assert app.upload([small])[0].state is TransferState.DONE
        placed = cores.core
        assert app.upload([big])[0].state is TransferState.DONE
    assert len(while_sent) == 3
    assert set(while_sent) == {None}  # every core while each part went
    assert placed is not None or len(EVERY) < 2


def test_counters_that_step_back_start_a_new_look(transfer_threads: Waiting) -> None:
    """/proc/stat's sums can step back (a CPU unplugged): the verdict must not freeze."""
    affinity = RecordingAffinity()
    clock = [0.0]
    sharing = CoreSharing(
        affinity, threads=lambda: transfer_threads.threads, monotonic=lambda: clock[0]
    )
    affinity.busy_share = 0.95
    clock[0] += LOOK_EVERY
    with sharing.attempt(spreads=False):
        pass
    assert sharing.core is None  # busy
    affinity.times = CpuTimes(0, 0)  # the sums start again lower
    affinity.busy_share = 0.01
    for _look in range(2):
        clock[0] += LOOK_EVERY
        with sharing.attempt(spreads=False):
            pass
    assert sharing.core == 1  # idle again: placed


def test_a_ferry_places_its_own_threads_and_not_another_ferrys_in_the_same_process(
    ferry_env: Environment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    """Threads are found through their owner, not their name: the second Ferry here
    never places anything, and the first's small files leave its threads alone."""
    affinities: list[LinuxAffinity | None] = [IdleMachine(), None]
    monkeypatch.setattr("desktop_app.core.runtime.ferry.system_affinity", lambda: affinities.pop(0))
    with open_moto_ferry(ferry_env, tmp_path) as first:
        other_env = environment_at(tmp_path / "other-home", memory_keyring)
        other_env.profiles.save(
            dataclasses.replace(
                first.profile, catalog_url=f"sqlite:///{tmp_path / 'other.sqlite3'}"
            ),
            make_default=True,
        )
        with Ferry.open(other_env) as second:
            done = second.upload(write_small_files(tmp_path / "second", 4))
            done += first.upload(write_small_files(tmp_path / "first", 4))
            mine = on_cpus(first.transfer_threads())
            theirs = on_cpus(second.transfer_threads())
    assert {r.state for r in done} == {TransferState.DONE}
    assert {kind(name) for name in mine} == {member.value for member in TransferThread}
    assert {kind(name) for name in theirs} == {member.value for member in TransferThread}
    if len(EVERY) >= 2:
        assert len(set(mine.values())) == 1
        assert len(next(iter(mine.values()))) == 1
    assert set(theirs.values()) == {EVERY}
