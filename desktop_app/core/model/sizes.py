"""Sizes in bytes, and the limits S3's multipart protocol puts on parts.

Defined once here: the profile's checks, the part plan, the pre-pass and the
progress meter all speak of the same mebibyte and the same limits.
"""

import math

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # every part but the last (S3's rule)
MAX_PART_SIZE = 5 * 1024 * MIB  # 5 GiB
MAX_PARTS = 10_000


def choose_part_size(size: int, preferred: int) -> int:
    """The preferred part size, doubled until the file needs at most 10,000 parts."""
    part_size = preferred
    while math.ceil(size / part_size) > MAX_PARTS:
        part_size *= 2
    return min(part_size, MAX_PART_SIZE)
