"""Handles: a waiter's claim on the outcome of the transfers it waits for.

:meth:`Scheduler.submit <desktop_app.core.transfers.scheduler.Scheduler.submit>`
gives one :class:`TransferHandle` per transfer; a one-shot command runs only
the transfers someone holds a handle for, and waits on its own handles.
Promises:

- news is never lost: the worker that lets a transfer go tells each of its
  handles the record it ended with, and a person's action (which may change
  a transfer no worker holds) tells them to read the journal again; a handle
  told twice before it looks keeps "read again" over an outcome, since a
  read sees both;
- a waiter looks only at the transfers it heard of (and, rarely, at all of
  them), so waiting for 10,000 files does not read 10,000 rows at each
  finished file;
- a handle is counted as waiting until it is let go, so a one-shot run
  dispatches exactly the transfers someone still waits for.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterable

from desktop_app.core.journal.records import TransferRecord
from desktop_app.core.model.errors import FerryError


class ReadAgain(enum.Enum):
    """What a handle heard when only the journal knows what happened."""

    JOURNAL = "journal"


Heard = TransferRecord | ReadAgain
Waiter = Callable[[list["TransferHandle"], float | None], list[TransferRecord]]


class TransferHandle:
    """One waiter's claim on one transfer: what it has heard since it last looked."""

    def __init__(self, transfer_id: int, waiter: Waiter) -> None:
        self.transfer_id = transfer_id
        self._waiter = waiter
        self._lock = threading.Lock()
        self._heard: Heard | None = ReadAgain.JOURNAL  # nothing read yet: read it

    def result(self, timeout: float | None = None) -> TransferRecord:
        """Wait until the transfer is settled (or ``timeout`` seconds have passed);
        the transfer as it then is."""
        records = self._waiter([self], timeout)
        if not records:
            raise FerryError(
                f"Transfer {self.transfer_id} is not in the journal: it was never queued "
                "or has been removed. Queue the file again.",
                title="No such transfer",
            )
        return records[0]

    def tell(self, heard: Heard) -> None:
        with self._lock:
            if self._heard is ReadAgain.JOURNAL:
                return  # a read of the journal is due already: it sees this too
            self._heard = heard

    def take(self) -> Heard | None:
        """What was heard since the last take (None: nothing), forgetting it."""
        with self._lock:
            heard, self._heard = self._heard, None
            return heard


class HandleRegistry:
    """The handles given out and not yet let go, by transfer; and the condition
    their waiters sleep on."""

    def __init__(self, lock: threading.Lock, waiter: Waiter) -> None:
        self._waiter = waiter
        self._by_transfer: dict[int, list[TransferHandle]] = {}
        self.changed = threading.Condition(lock)  # shared with the scheduler's lock

    def issue(self, transfer_ids: Iterable[int]) -> list[TransferHandle]:
        handles = [TransferHandle(i, self._waiter) for i in transfer_ids]
        with self.changed:
            for handle in handles:
                self._by_transfer.setdefault(handle.transfer_id, []).append(handle)
        return handles

    def let_go(self, handles: Iterable[TransferHandle]) -> None:
        with self.changed:
            for handle in handles:
                kept = [h for h in self._by_transfer.get(handle.transfer_id, ()) if h is not handle]
                if kept:
                    self._by_transfer[handle.transfer_id] = kept
                else:
                    self._by_transfer.pop(handle.transfer_id, None)

    def awaited(self, transfer_id: int) -> bool:
        """Whether someone holds a handle for it (call with the lock held)."""
        return transfer_id in self._by_transfer

    def tell(self, transfer_id: int, heard: Heard) -> None:
        """A worker let the transfer go: its waiters hear how it ended."""
        with self.changed:
            for handle in self._by_transfer.get(transfer_id, ()):
                handle.tell(heard)
            self.changed.notify_all()

    def tell_everyone_to_read(self) -> None:
        """Something may have changed any transfer: every waiter reads its own again."""
        with self.changed:
            for handles in self._by_transfer.values():
                for handle in handles:
                    handle.tell(ReadAgain.JOURNAL)
            self.changed.notify_all()
