"""The names of the threads that run a small file's Python, defined once.

Each is the name (or, for a pool, the name's prefix) its owner gives the
thread, so that a person reading a stack dump, ``top -H`` or
``/proc/PID/task`` knows them, and tests can tell them from the rest. Their
owners list them for :mod:`desktop_app.core.transfers.cores`, which places
them on one core (``Ferry.transfer_threads``): by owner, not by name, as one
process may run several Ferrys.
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
