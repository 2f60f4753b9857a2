"""Sizes in bytes, and the limits S3's multipart protocol puts on parts.

Defined once here: the profile's checks, the part plan, the pre-pass and the
progress meter all speak of the same mebibyte and the same limits.
"""

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # every part but the last (S3's rule)
MAX_PART_SIZE = 5 * 1024 * MIB  # 5 GiB
MAX_PARTS = 10_000
