"""Keep part buffers from piling up in glibc's heap.

glibc raises its mmap threshold after a large block is freed, so later 16 MiB
part buffers come from per-thread heaps that keep freed memory: with eight
upload threads the process held ~280 MiB for a 64 MiB buffer budget. Fixing
the threshold at 1 MiB sends every part buffer to mmap, returned to the
system when freed (measured: 278 -> 189 MiB peak for a 1 GiB upload).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3


def fix_mmap_threshold(threshold: int = 1024 * 1024) -> bool:
    """Best effort; True when glibc accepted it. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False
