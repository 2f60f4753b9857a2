"""The pre-pass: one read gives the SHA-256, the MD5 and CRC64NVME of every planned
part and the CRC64NVME of the whole file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from awscrt import checksums

from desktop_app.core.model.errors import SourceError
from desktop_app.core.model.transfer_records import SourceIdentity
from desktop_app.core.transfers.limits import ByteBudget
from desktop_app.core.transfers.part_plan import part_plan
from desktop_app.core.transfers.prepass import (
    FileHashes,
    HashesAhead,
    PrePass,
    ReadStopped,
    crc64nvme,
    crc64nvme_base64,
)

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "part_size"),
    [
        (0, 5 * MIB),
        (1, 5 * MIB),
        (5 * MIB, 5 * MIB),  # the end on a part boundary
        (5 * MIB + 1, 5 * MIB),
        (48 * MIB, 16 * MIB),  # parts of two chunks, ring reused
        (30 * MIB + 3, 12 * MIB),  # a chunk and a remainder per part
    ],
)
def test_the_hashes_are_those_of_the_bytes_of_each_planned_part(
    tmp_path: Path, size: int, part_size: int
) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    budget = ByteBudget(64 * MIB)
    prepass = PrePass(budget)
    try:
        hashes = prepass.hash_file(str(path), part_size)
        whole = prepass.hash_file(str(path), None)
    finally:
        prepass.close()
    expected = [hashlib.md5(data[o : o + s]).digest() for _n, o, s in part_plan(size, part_size)]
    assert hashes.sha256 == whole.sha256 == hashlib.sha256(data).hexdigest()
    assert list(hashes.part_md5s) == expected
    assert whole.part_md5s == ()
    plan = part_plan(size, part_size)
    assert hashes.crc64nvme == checksums.crc64nvme(data)
    assert list(hashes.part_crc64nvmes) == [
        checksums.crc64nvme(data[o : o + s]) for _n, o, s in plan
    ]
    assert budget.peak <= 4 * 8 * MIB, "the ring of buffers, not the file, bounds memory"


def test_a_small_budget_gets_a_smaller_ring_and_the_same_hashes(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(21 * MIB)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    budget = ByteBudget(12 * MIB)
    prepass = PrePass(budget)
    try:
        hashes = prepass.hash_file(str(path), 5 * MIB)
    finally:
        prepass.close()
    assert hashes.sha256 == hashlib.sha256(data).hexdigest()
    assert len(hashes.part_md5s) == 5
    assert hashes.part_md5s[-1] == hashlib.md5(data[20 * MIB :]).digest()
    assert budget.peak <= 12 * MIB


def test_an_unreadable_file_is_named_in_the_error(tmp_path: Path) -> None:
    prepass = PrePass(ByteBudget(64 * MIB))
    try:
        with pytest.raises(SourceError, match=r"gone\.bin"):
            prepass.hash_file(str(tmp_path / "gone.bin"), 5 * MIB)
    finally:
        prepass.close()


def test_crc64nvme_is_the_one_s3_computes() -> None:
    # The check value of CRC-64/NVME (the CRC catalogue) and its S3 header form.
    assert crc64nvme(b"123456789") == 0xAE8B14860A799888
    assert crc64nvme(b"6789", crc64nvme(b"12345")) == 0xAE8B14860A799888
    assert crc64nvme_base64(0xAE8B14860A799888) == "rosUhgp5mIg="


class _HeldPrePass(PrePass):
    """A pre-pass that holds each read until let go (or stopped), saying which it began."""

    def __init__(self) -> None:
        super().__init__(ByteBudget(64 * MIB))
        self.begun: list[str] = []
        self.reading = threading.Event()
        self.let_go = threading.Event()
        self.fails: BaseException | None = None

    def hash_file(
        self, path: str, part_size: int | None, *, stop: threading.Event | None = None
    ) -> FileHashes:
        self.begun.append(Path(path).name)
        self.reading.set()
        if self.fails is not None:
            raise self.fails
        while not self.let_go.wait(0.01):
            if stop is not None and stop.is_set():
                raise SourceError("stopped")  # as a real read gives up: nothing found
        return super().hash_file(path, part_size, stop=stop)


def _seen(path: Path) -> SourceIdentity:
    return SourceIdentity.of(os.stat(path))


def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def _read_ahead(ahead: HashesAhead, path: Path) -> None:
    """Wait until the read ahead of ``path`` has ended, its after-stat taken."""
    _until(lambda: str(path) in ahead._found, f"{path.name} was never read ahead")


def _write_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """Another program rewrites the file and sets its mtime back: only ctime moves."""
    before = os.stat(path)
    time.sleep(0.02)  # ctime's clock ticks coarsely
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (
        before.st_size,
        before.st_mtime_ns,
    )


def test_hashes_read_ahead_are_the_pre_pass_of_the_file_and_handed_over_once(
    tmp_path: Path,
) -> None:
    data = random.Random(7).randbytes(11 * MIB)
    big, small = tmp_path / "big.bin", tmp_path / "small.txt"
    big.write_bytes(data)
    small.write_bytes(b"one request")
    (tmp_path / "folder").mkdir()
    named = [str(p) for p in (small, tmp_path / "folder", tmp_path / "gone.bin", big, big)]
    held = _HeldPrePass()
    held.let_go.set()
    ahead = HashesAhead.of_paths(named, part_size=5 * MIB, threshold=5 * MIB, prepass=held)
    prepass = PrePass(ByteBudget(64 * MIB))
    try:
        _read_ahead(ahead, big)
        found = ahead.take(str(big), 5 * MIB, _seen(big))
        again = ahead.take(str(big), 5 * MIB, _seen(big))
        own = prepass.hash_file(str(big), 5 * MIB)
    finally:
        ahead.close()
        prepass.close()
    # Only the file sent in parts is read ahead, once however often it is named:
    # a small one, a folder or a missing path is left to the engine.
    assert held.begun == ["big.bin"]
    assert found == own
    assert found is not None
    assert found.sha256 == hashlib.sha256(data).hexdigest()
    assert len(found.part_md5s) == 3
    assert again is None, "handed over once"


@contextlib.contextmanager
def _one_file_read_ahead(tmp_path: Path) -> Iterator[tuple[Path, HashesAhead]]:
    """A 6 MiB file read ahead in 5 MiB parts, the read ended."""
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(1).randbytes(6 * MIB))
    held = _HeldPrePass()
    held.let_go.set()
    ahead = HashesAhead([(str(big), 5 * MIB)], prepass=held)
    try:
        _read_ahead(ahead, big)
        yield big, ahead
    finally:
        ahead.close()


def test_a_file_rewritten_after_it_was_read_ahead_is_not_handed_over(tmp_path: Path) -> None:
    with _one_file_read_ahead(tmp_path) as (big, ahead):
        _write_keeping_size_and_mtime(big, random.Random(2).randbytes(6 * MIB))
        found = ahead.take(str(big), 5 * MIB, _seen(big))
    assert found is None, "the engine reads the new bytes itself"


def test_hashes_of_another_part_size_are_not_taken(tmp_path: Path) -> None:
    with _one_file_read_ahead(tmp_path) as (big, ahead):
        assert ahead.take(str(big), 6 * MIB, _seen(big)) is None
        assert ahead.take(str(big), 5 * MIB, _seen(big)) is None, "asked once, gone"


def test_the_engine_waits_for_a_file_being_read_ahead_and_no_other_is_begun(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    for path in (first, second):
        path.write_bytes(random.Random(path.name).randbytes(6 * MIB))
    held = _HeldPrePass()
    ahead = HashesAhead([(str(first), 5 * MIB), (str(second), 5 * MIB)], prepass=held)
    taken: list[FileHashes | None] = []
    engine = threading.Thread(
        target=lambda: taken.append(ahead.take(str(first), 5 * MIB, _seen(first)))
    )
    try:
        assert held.reading.wait(10)
        engine.start()
        _until(lambda: ahead._no_more, "the engine never asked")
        engine.join(0.2)
        assert engine.is_alive(), "the engine waits for the read in progress"
        held.let_go.set()
        engine.join(10)
    finally:
        held.let_go.set()
        ahead.close()
    assert taken[0] is not None
    assert taken[0].sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    assert held.begun == ["first.bin"], "once the engine asks, nothing more is read ahead"


def test_a_read_ahead_that_fails_unexpectedly_is_left_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed: list[threading.ExceptHookArgs] = []  # what Python would print on the terminal
    monkeypatch.setattr(threading, "excepthook", printed.append)
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(1).randbytes(6 * MIB))

    broken = _HeldPrePass()
    broken.fails = MemoryError()  # a bug's error, or none this module expects
    ahead = HashesAhead([(str(big), 5 * MIB)], prepass=broken)
    try:
        _until(lambda: not ahead._thread.is_alive(), "the thread never ended")
        assert ahead.take(str(big), 5 * MIB, _seen(big)) is None
    finally:
        ahead.close()
    assert printed == []


def test_closing_gives_up_a_read_in_progress(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(1).randbytes(6 * MIB))
    held = _HeldPrePass()  # never let go: only the stop ends its read
    ahead = HashesAhead([(str(big), 5 * MIB)], prepass=held)
    assert held.reading.wait(10)
    closing = threading.Thread(target=ahead.close)
    closing.start()
    closing.join(10)
    assert not closing.is_alive()
    assert ahead.take(str(big), 5 * MIB, _seen(big)) is None


def test_a_read_stops_between_two_chunks_once_asked(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(1).randbytes(6 * MIB))
    stop = threading.Event()
    stop.set()
    prepass = PrePass(ByteBudget(64 * MIB))
    try:
        with pytest.raises(ReadStopped):
            prepass.hash_file(str(big), 5 * MIB, stop=stop)
    finally:
        prepass.close()
