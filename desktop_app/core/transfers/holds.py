"""One owner per transfer: the registry every actor goes through before touching one.

A transfer is held by at most one actor at a time:

- a **worker** holds it from the moment the scheduler picks it until its
  attempt has ended and the journal says how (the scheduler takes the hold
  before it hands the transfer to the pool, so there is no instant at which
  a picked transfer is unheld);
- a **person's action** (cancel, pause, retry, unpause) holds it while it
  reads and changes the transfer. If a worker holds it, the action is not run
  beside the worker: it raises that attempt's flag and the worker carries it
  out at its next check (a pause stops within one part, keeping what was
  sent; a cancel compensates). Otherwise the action runs under the hold, so
  no worker can start the transfer meanwhile; a second person's action on
  the same transfer waits for the first.

The end of a person's action is announced to ``on_released`` (the scheduler
looks again: what the person held may be runnable now, and a worker skipped
it meanwhile); every release wakes :meth:`TransferHolds.wait_released`.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from desktop_app.core.transfers.control import TransferControl


class Holder(enum.Enum):
    WORKER = "worker"
    PERSON = "person"


@dataclass(frozen=True)
class Hold:
    holder: Holder
    control: TransferControl
    small: bool = False  # a worker's: the file is sent in one request


@dataclass
class PersonsTurn:
    """What a person's action may do, per transfer: act itself, or flag the running attempt."""

    mine: list[int] = field(default_factory=list)  # held for the action: act on these now
    running: dict[int, TransferControl] = field(default_factory=dict)  # a worker's attempt


class TransferHolds:
    """Who acts on each transfer now; thread-safe."""

    def __init__(self, on_released: Callable[[], None] | None = None) -> None:
        self._held: dict[int, Hold] = {}
        self._changed = threading.Condition()
        self.on_released = on_released

    # -- workers ------------------------------------------------------------

    def take_for_worker(self, transfer_id: int, *, small: bool = False) -> TransferControl | None:
        """Hold the transfer for one attempt; None when anyone holds it already."""
        with self._changed:
            if transfer_id in self._held:
                return None
            control = TransferControl()
            self._held[transfer_id] = Hold(Holder.WORKER, control, small)
            return control

    def release(self, transfer_id: int) -> None:
        """A worker's attempt has ended and the journal says how."""
        with self._changed:
            self._held.pop(transfer_id, None)
            self._changed.notify_all()

    # -- people -------------------------------------------------------------

    @contextmanager
    def for_person(self, transfer_ids: Iterable[int]) -> Iterator[PersonsTurn]:
        """Hold each transfer for a person's action, or hand over its running attempt's control.

        Transfers another person's action holds are waited for. Every hold
        taken here is released on leaving, whatever happened inside.
        """
        turn = PersonsTurn()
        try:
            # In one order for everyone: two people's actions on overlapping
            # transfers cannot each hold one the other waits for.
            for transfer_id in sorted(set(transfer_ids)):
                with self._changed:
                    while (
                        found := self._held.get(transfer_id)
                    ) is not None and found.holder is Holder.PERSON:
                        self._changed.wait()
                    if found is not None:
                        turn.running[transfer_id] = found.control
                    else:
                        self._held[transfer_id] = Hold(Holder.PERSON, TransferControl())
                        turn.mine.append(transfer_id)
            yield turn
        finally:
            if turn.mine:
                with self._changed:
                    for transfer_id in turn.mine:
                        self._held.pop(transfer_id, None)
                    self._changed.notify_all()
                if self.on_released is not None:
                    self.on_released()

    def wait_released(self, transfer_ids: Iterable[int], timeout: float) -> bool:
        """Wait until no worker holds any of these; False if one still does after ``timeout``."""
        wanted = set(transfer_ids)
        with self._changed:
            return self._changed.wait_for(lambda: not wanted & self._held.keys(), timeout)

    # -- what is held ---------------------------------------------------------

    def worker_controls(self) -> dict[int, TransferControl]:
        """The running attempts, by transfer id."""
        with self._changed:
            return {
                transfer_id: hold.control
                for transfer_id, hold in self._held.items()
                if hold.holder is Holder.WORKER
            }

    def ids(self) -> set[int]:
        with self._changed:
            return set(self._held)

    def working(self) -> tuple[int, int]:
        """How many workers hold a transfer now: (all, those sending a large file)."""
        with self._changed:
            workers = [h for h in self._held.values() if h.holder is Holder.WORKER]
            return len(workers), sum(1 for h in workers if not h.small)

    def pause_running(self) -> None:
        """Raise every running attempt's pause flag."""
        for control in self.worker_controls().values():
            control.pause.set()
