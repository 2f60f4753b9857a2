"""CRC64NVME, the full-object checksum S3 servers verify and keep (awscrt's, in C)."""

from __future__ import annotations

import base64

from awscrt import checksums


def crc64nvme(data: bytes | bytearray | memoryview, previous: int = 0) -> int:
    """The CRC64NVME of ``data`` (continuing ``previous``), as S3 computes it."""
    return int(checksums.crc64nvme(data, previous))


def crc64nvme_base64(value: int) -> str:
    """A CRC64NVME as S3 writes it in ``x-amz-checksum-crc64nvme``: 8 bytes, big-endian."""
    return base64.b64encode(value.to_bytes(8, "big")).decode("ascii")
