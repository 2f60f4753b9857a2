"""The pre-pass: one read gives the SHA-256, the MD5 and CRC64NVME of every planned
part and the CRC64NVME of the whole file."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from awscrt import checksums

from desktop_app.core.model.errors import SourceError
from desktop_app.core.transfers.limits import ByteBudget
from desktop_app.core.transfers.part_plan import part_plan
from desktop_app.core.transfers.prepass import PrePass, crc64nvme, crc64nvme_base64

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
