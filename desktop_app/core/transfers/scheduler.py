"""The scheduler: the one owner of running transfers in a running Ferry.

A long-lived pool of file workers fed continuously from the journal. Every
entry point (``ferry upload``, a drop on the window, a watched folder, Retry,
a repair, resume at start) only writes the journal and calls :meth:`wake`;
nothing else runs a transfer. Promises:

- a one-shot Ferry runs only the transfers someone waits for: those it was
  given :class:`~desktop_app.core.transfers.handles.TransferHandle` s for by
  :meth:`submit` and has not let go; a resident one runs every runnable one;
- a transfer is handed to at most one worker at a time, and never while a
  person's action holds it: the scheduler takes the transfer's hold in the
  engine's one registry (:mod:`desktop_app.core.transfers.holds`) before it
  hands it to a worker, and the worker reads it only then;
- only the transfers of this scheduler's profile are run (the journal's
  ``runnable`` query filters by profile, the engine refuses the others);
- small files never wait behind large ones: a share of the workers is kept
  for files sent in one request, and large files may not take them;
- how many files sent in one request are in flight follows the network
  (:mod:`desktop_app.core.transfers.in_flight`): never fewer than ``workers``
  unless the server asks to slow down, up to
  :data:`~desktop_app.core.transfers.in_flight.SMALL_FILES_CEILING`; large
  files take at most their share of ``workers``, as before, and all files
  together at most the larger of the window and ``workers``;
- a transfer that failed transiently is tried again by itself when its next
  try time comes, at once when a cheap probe sees the endpoint come back
  after it was unreachable, and at once after the machine wakes from sleep
  (a jump between the monotonic and the wall clock);
- :meth:`stop` interrupts running transfers (they resume at the next start)
  and joins every thread it started.

How many failed attempts a run makes before it leaves a transfer for the
next Ferry is the engine's :class:`~desktop_app.core.transfers.retry.RetryPolicy`
(``give_up_after``), the one policy for delays and giving up.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from desktop_app.core.journal.records import TransferRecord
from desktop_app.core.model.errors import FerryError
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.threads import TransferThread
from desktop_app.core.transfers.control import TransferControl
from desktop_app.core.transfers.engine import TransferEngine
from desktop_app.core.transfers.handles import HandleRegistry, ReadAgain, TransferHandle
from desktop_app.core.transfers.in_flight import SmallFileWindow, WindowOptions, log_change
from desktop_app.core.transfers.retry import RetryPolicy

log = logging.getLogger(__name__)
_FULL_READ_INTERVAL = 2.0  # seconds between a waiter's reads of every unsettled transfer
_RETRY_LOOK_INTERVAL = 1.0  # seconds between the probe's looks for transfers waiting to retry
_SENT = frozenset({TransferState.DONE, TransferState.DUPLICATE})
# Candidates passed over (their kind's places taken) before a dispatch stops looking.
_LOOKAHEAD = 64


class HoldBackReason(enum.Enum):
    """Why no upload may run for now, whatever the journal holds."""

    METERED = "metered"

    @property
    def description(self) -> str:
        return "this computer is on a metered connection"


class Runs(enum.Enum):
    """Which runnable transfers a scheduler hands to its workers."""

    EVERY_RUNNABLE = "every_runnable"  # the window, `ferry watch`
    AWAITED = "awaited"  # a command that ends: those it holds handles for


@dataclass(frozen=True)
class SchedulerOptions:
    workers: int = 8
    small_share: float = 0.25  # of the workers, kept for files sent in one request
    probe_interval: float = 15.0  # seconds between endpoint probes while something waits
    idle_poll: float = 30.0  # look at the journal at least this often
    runs: Runs = Runs.EVERY_RUNNABLE
    sleep_jump: float = 30.0  # wall clock ahead of monotonic by this much: the machine slept
    keep_alive_interval: float = 30.0  # seconds between touches of running uploads' rows
    # Files sent in one request in flight at once; its floor is ``workers``.
    small_files: WindowOptions | None = None


class Scheduler:
    """Runs the profile's runnable transfers on a pool of workers until stopped."""

    def __init__(
        self,
        engine: TransferEngine,
        options: SchedulerOptions,
        *,
        probe: Callable[[], bool] | None = None,
        on_error: Callable[[FerryError], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.journal = engine.journal
        self.options = options
        self.profiles = (engine.profile_name,)
        self.probe = probe
        self.on_error = on_error
        self._monotonic = monotonic
        self._wall = wall
        self._small_slots = max(1, round(options.workers * options.small_share))
        self._large_slots = max(1, options.workers - self._small_slots)
        window_options = options.small_files or WindowOptions()
        window_options = dataclasses.replace(
            window_options,
            floor=options.workers,
            ceiling=max(options.workers, window_options.ceiling),
        )
        self.small_files = SmallFileWindow(
            window_options, monotonic=monotonic, throttled=lambda: engine.storage.throttled.count
        )
        self._lock = threading.Lock()
        self.owners = engine.holds
        # A person's action skipped by dispatch meanwhile may be runnable now.
        self.owners.on_released = self.wake
        self._failures: collections.Counter[int] = collections.Counter()  # in this run
        self._refused: set[int] = set()
        # The transfers someone waits for (a long-running window waits for none).
        self._handles = HandleRegistry(self._lock, self.wait)
        self._wake = threading.Event()
        self._fresh = threading.Event()  # the journal may hold new work: read it again
        self._candidates: list[tuple[int, int]] = []  # (id, size) from the last reading
        self._stopping = threading.Event()
        # Threads are started as work comes: the ceiling costs nothing until used.
        # Each notes itself as its first step (appending is atomic: no lock).
        self._workers: list[threading.Thread] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(options.workers, window_options.ceiling),
            thread_name_prefix=TransferThread.FILE_WORKER.value,
            initializer=lambda: self._workers.append(threading.current_thread()),
        )
        self._thread = threading.Thread(
            target=self._loop, name=TransferThread.SCHEDULER.value, daemon=True
        )
        self.halted: FerryError | None = None  # nothing can be recorded (disk full): stop
        self._held_back_for: set[HoldBackReason] = set()
        self._last_probe = -float("inf")
        self._last_retry_look = -float("inf")
        self._last_keep_alive = monotonic()
        self._endpoint_down = False
        self._clock_gap = wall() - monotonic()

    # -- life -------------------------------------------------------------------

    def start(self) -> None:
        """Start running (once; a second call does nothing)."""
        if self._thread.ident is not None:
            return
        # What waited for its next try when Ferry last stopped is tried now.
        self.retry_waiting_now()
        self._thread.start()
        self.wake()

    def threads(self) -> list[threading.Thread]:
        """The threads this scheduler runs: its own and its file workers' (as started yet)."""
        return [self._thread, *self._workers]

    def retry_waiting_now(self) -> int:
        """Transfers waiting for their next try time are tried at the next look; how many."""
        return self.journal.retry_now(self.profiles, _now(self._wall))

    def submit(self, transfer_ids: Iterable[int]) -> list[TransferHandle]:
        """A handle on each transfer, to wait on; a one-shot scheduler runs them
        until every handle on them is let go (:meth:`let_go`)."""
        handles = self._handles.issue(transfer_ids)
        self.wake()
        return handles

    def let_go(self, handles: Iterable[TransferHandle]) -> None:
        """No longer wait for these (a one-shot scheduler stops starting them)."""
        self._handles.let_go(handles)

    def wake(self) -> None:
        """Look at the journal now: something was queued, retried, paused or cancelled."""
        self._fresh.set()
        self._wake.set()
        self._handles.tell_everyone_to_read()

    def stop(self, patience: float | None = None) -> bool:
        """Interrupt the running transfers (they resume at the next start) and stop.

        Without ``patience``, waits for every worker to end. With it, waits at
        most that many seconds: a worker still in a step then (a part on the
        wire, a request to a slow server) is left running, and False says so:
        the process should end now; the journal resumes that transfer from its
        last confirmed step.
        """
        self._stopping.set()
        self._wake.set()
        self.engine.interrupt()
        deadline = None if patience is None else time.monotonic() + patience
        if self._thread.is_alive():
            self._thread.join(timeout=120 if deadline is None else patience)
        if deadline is None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            stopped = True
        else:
            # Not cancelled: a transfer handed over but not begun ends at once
            # (interrupted) and gives its hold back, so the wait below sees it.
            self._pool.shutdown(wait=False)
            working = self.owners.worker_controls()
            left = max(0.0, deadline - time.monotonic())
            stopped = self.owners.wait_released(working, left) and not self._thread.is_alive()
        self._handles.tell_everyone_to_read()
        return stopped

    def hold_back(self, reason: HoldBackReason, holding: bool) -> bool:
        """Hold every upload back for a reason (running ones stop at their next check
        and keep what they sent), or let them go again. True when this changed."""
        with self._lock:
            changed = (reason in self._held_back_for) != holding
            if holding:
                self._held_back_for.add(reason)
            else:
                self._held_back_for.discard(reason)
        if holding:
            self.engine.pause_running()
        self.wake()
        return changed

    @property
    def held_back_for(self) -> frozenset[HoldBackReason]:
        with self._lock:
            return frozenset(self._held_back_for)

    def held(self) -> set[int]:
        """The transfers a worker or a person's action holds now."""
        return self.owners.ids()

    # -- waiting for outcomes ---------------------------------------------------

    def settled(self, record: TransferRecord, patience: int | None = None) -> bool:
        """Whether a waiter should stop waiting for the transfer: finished, paused,
        failed for a reason only a person can act on, or failed ``patience``
        times in this run (default: the retry policy's ``give_up_after``)."""
        if record.state.finished or record.paused:
            return True
        with self._lock:
            if record.id in self._refused:
                return True
        if record.state is not TransferState.FAILED:
            return False
        if not record.failure_kind.retries_on_its_own:
            return True
        policy = self.engine.options.retry
        if patience is not None:
            policy = dataclasses.replace(policy, give_up_after=patience)
        with self._lock:
            return policy.gave_up(self._failures[record.id])

    def wait(
        self,
        handles: list[TransferHandle],
        timeout: float | None = None,
        *,
        patience: int | None = None,
    ) -> list[TransferRecord]:
        """Block until each handle's transfer is settled (or ``timeout`` seconds
        passed); returns them as they then are.

        Raises the journal's error if the scheduler had to halt (disk full):
        then nothing can be recorded, and the transfers stay as the journal
        last knew them, to resume when space is back.
        """
        deadline = None if timeout is None else self._monotonic() + timeout
        waited_for = {h.transfer_id for h in handles}
        settled: dict[int, TransferRecord] = {}
        latest: dict[int, TransferRecord] = {}
        last_full_read = -float("inf")
        while True:
            if self.halted is not None and not self.held():
                raise self.halted
            # A transfer changes while a worker holds it; between workers only a
            # person (pause, cancel, retry: they wake the scheduler) changes it,
            # and a read every few seconds catches what came another way.
            remaining = None if deadline is None else deadline - self._monotonic()
            over = self._stopping.is_set() or (remaining is not None and remaining <= 0)
            full = over or self._monotonic() - last_full_read >= _FULL_READ_INTERVAL
            if full:
                last_full_read = self._monotonic()
            heard = self._take_news([h for h in handles if h.transfer_id not in settled], full)
            # Read after the news: a release after this read brings news, looked at next time.
            held = self.held()
            for record in self._records(heard):
                latest[record.id] = record
                if self.settled(record, patience) and record.id not in held:
                    settled[record.id] = record
            if not latest or len(latest) < len(waited_for):
                # The first read found no such transfer: there is nothing to wait for.
                waited_for = set(latest)
            if len(settled) == len(waited_for) or over:
                return [latest[h.transfer_id] for h in handles if h.transfer_id in latest]
            with self._handles.changed:
                self._handles.changed.wait(0.5 if remaining is None else min(0.5, remaining))
            # Woken by every finished transfer: gather a few before reading.
            self._stopping.wait(0.05)

    @staticmethod
    def _take_news(
        handles: list[TransferHandle], everything: bool
    ) -> dict[int, TransferRecord | ReadAgain]:
        """What each handle heard; with ``everything``, those that heard nothing
        are read again too."""
        heard: dict[int, TransferRecord | ReadAgain] = {}
        for handle in handles:
            news = handle.take()
            if news is not None or everything:
                heard[handle.transfer_id] = ReadAgain.JOURNAL if news is None else news
        return heard

    def _records(self, heard: dict[int, TransferRecord | ReadAgain]) -> list[TransferRecord]:
        known = [news for news in heard.values() if isinstance(news, TransferRecord)]
        wanted = [i for i, news in heard.items() if news is ReadAgain.JOURNAL]
        return [*known, *self.journal.get_many(wanted)]

    # -- the loop -----------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            if not self._wake.wait(timeout=self._next_look()):
                self._fresh.set()  # a try time may have come
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._notice_sleep()
                self._maybe_probe()
                self._maybe_keep_alive()
                self._dispatch()
            except FerryError as exc:
                log.error("The scheduler could not read the journal: %s", exc.message)
                if self.on_error is not None:
                    self.on_error(exc)
                self._stopping.wait(1.0)
            except Exception:
                log.exception("The scheduler failed; it goes on")
                self._stopping.wait(1.0)

    def _next_look(self) -> float:
        if self.held():
            return 1.0  # a worker finishing wakes the loop anyway
        waits = [self.options.idle_poll]
        next_try = self.journal.next_retry_at(self.profiles)
        if next_try is not None:
            waits.append((next_try - _now(self._wall)).total_seconds())
            if self.probe is not None:
                waits.append(self._last_probe + self.options.probe_interval - self._monotonic())
        return max(0.05, min(waits))

    def _notice_sleep(self) -> None:
        gap = self._wall() - self._monotonic()
        if gap - self._clock_gap > self.options.sleep_jump:
            log.info("The machine woke from sleep: waiting transfers are tried now")
            self.retry_waiting_now()
        self._clock_gap = gap

    def _maybe_probe(self) -> None:
        if self.probe is None:
            return
        now = self._monotonic()
        if now - self._last_probe < self.options.probe_interval:
            return
        # The loop wakes at every finished file: asking the journal each time
        # whether anything waits was a tenth of a busy upload's CPU.
        if now - self._last_retry_look < min(_RETRY_LOOK_INTERVAL, self.options.probe_interval):
            return
        self._last_retry_look = now
        if self.journal.next_retry_at(self.profiles) is None:
            self._endpoint_down = False
            return
        self._last_probe = self._monotonic()
        answered = self.probe()
        if answered and self._endpoint_down:
            moved = self.retry_waiting_now()
            log.info("The endpoint answers again: %d waiting transfer(s) tried now", moved)
        self._endpoint_down = not answered

    def _maybe_keep_alive(self) -> None:
        if self._monotonic() - self._last_keep_alive < self.options.keep_alive_interval:
            return
        self._last_keep_alive = self._monotonic()
        if self.held():
            self.engine.keep_alive()

    def _dispatch(self) -> None:
        if self.halted is not None or self.held_back_for:
            return
        if self._fresh.is_set() or not self._candidates:
            # A worker that finished only frees a place: the candidates read
            # last time still serve (the engine re-reads each one before it runs).
            self._fresh.clear()
            self._candidates = self.journal.runnable_sizes(self.profiles, _now(self._wall))
        runnable, self._candidates = self._candidates, []
        policy = self.engine.options.retry
        window = self.small_files.size
        small_waiting = False
        with self._lock:
            if self._held_back_for:
                # Held back while the journal was read: hold_back changes the
                # reasons under this lock, so nothing is taken after it returns.
                self._candidates = runnable
                return
            running, large_running = self.owners.working()
            small_running = running - large_running
            passed_over = 0  # candidates left because their kind's places are taken
            for position, (transfer_id, size) in enumerate(runnable):
                small_full = small_running >= window
                large_full = large_running >= self._large_slots
                every_place_taken = running >= max(window, self._small_slots + self._large_slots)
                if every_place_taken or (small_full and large_full) or passed_over > _LOOKAHEAD:
                    # The rest wait as they are: looking at each of 10,000
                    # candidates at every finished file was quadratic in the
                    # queue's length, so one kind's places being taken bounds
                    # how far the other kind is looked for.
                    rest = runnable[position:]
                    self._candidates.extend(rest)
                    small_waiting = small_waiting or any(
                        self.engine.is_small(waiting) for _id, waiting in rest[:_LOOKAHEAD]
                    )
                    break
                if not self._may_run(transfer_id, policy):
                    continue
                small = self.engine.is_small(size)
                # Small files take places up to the window; large ones only theirs.
                if (small and small_full) or (not small and large_full):
                    self._candidates.append((transfer_id, size))
                    passed_over += 1
                    small_waiting = small_waiting or small
                    continue
                control = self.owners.take_for_worker(transfer_id, small=small)
                if control is None:
                    continue  # running already, or a person acts on it: woken after
                running += 1
                large_running += not small
                small_running += small
                try:
                    self._pool.submit(self._work, transfer_id, control, small)
                except RuntimeError:  # the pool is shut down: stopping
                    self.owners.release(transfer_id)
                    return
        if small_waiting:
            self.small_files.full()

    def _may_run(self, transfer_id: int, policy: RetryPolicy) -> bool:
        """Not refused, awaited if this Ferry ends, and not given up on in this run."""
        if transfer_id in self._refused:
            return False
        if self.options.runs is Runs.AWAITED and not self._handles.awaited(transfer_id):
            return False
        return not policy.gave_up(self._failures[transfer_id])

    def _work(self, transfer_id: int, control: TransferControl, small: bool) -> None:
        outcome: TransferRecord | None = None
        try:
            outcome = self.engine.run_held(transfer_id, control)
        except FerryError as exc:
            if not exc.halts:
                # Refused before it started (another profile's bucket, say):
                # not again in this run, or the scheduler would spin on it.
                log.error("Transfer %s could not run: %s", transfer_id, exc.message)
                with self._lock:
                    self._refused.add(transfer_id)
                return
            # Without the journal nothing may be sent (a fact must be recorded
            # before anything depends on it): stop everything, say it once.
            with self._lock:
                first = self.halted is None
                self.halted = self.halted or exc
            if first:
                # Shown by whoever waits (the command's error, the window's
                # dialog through on_error), so logged here without repeating.
                log.info("Transfers stopped: %s", exc.message)
                self.engine.interrupt()
                if self.on_error is not None:
                    self.on_error(exc)
        except Exception:
            log.exception("Transfer %s could not run", transfer_id)
        finally:
            # Counted before the hold goes: a dispatch in between would read the old count.
            if outcome is not None and outcome.state is TransferState.FAILED:
                with self._lock:
                    self._failures[transfer_id] += 1
            self.owners.release(transfer_id)
            self._handles.tell(transfer_id, ReadAgain.JOURNAL if outcome is None else outcome)
            if small:
                sent = outcome is not None and outcome.state in _SENT
                log_change(self.small_files.finished(sent=sent))
            self._wake.set()  # a worker is free: look again


def _now(wall: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(wall(), UTC)
