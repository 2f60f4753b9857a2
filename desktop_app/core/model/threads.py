"""The names of the threads that run a small file's Python, defined once.

Each is the name (or, for a pool, the name's prefix) its owner gives the
thread; :mod:`desktop_app.core.transfers.cores` finds them by it to place
them on one core (tests/unit/transfers/test_cores.py checks they are there
while a file is sent).
"""

import enum


class TransferThread(enum.Enum):
    """A thread that takes turns on the GIL while small files are sent."""

    FILE_WORKER = "ferry-file"  # the scheduler's pool: one attempt at a time each
    SCHEDULER = "ferry-scheduler"
    JOURNAL_WRITER = "ferry-journal"
    CATALOG_WRITER = "ferry-catalog"

    @classmethod
    def owns(cls, thread_name: str) -> bool:
        """Is a thread of this name one of these (a pool's threads: the prefix and a number)?"""
        return thread_name.startswith(tuple(member.value for member in cls))
