"""Ferry's engine in a process of its own, for the window.

The window must answer within 100 ms while thousands of files are queued and
uploaded. In one process that cannot hold: the engine's threads run Python and
the GUI thread waits for the GIL (measured: three quarters of a 350 ms stall).
So the window starts this host in a child process (``multiprocessing`` with
``spawn``, no fork of a Qt process) and talks to it over two one-way pipes:

- the window sends :class:`HostCall` objects, each a
  :class:`~desktop_app.core.runtime.facade.FacadeCall` of a public method of the
  :class:`~desktop_app.core.runtime.ferry.Ferry` facade (the allow-list of
  :mod:`desktop_app.core.runtime.facade`, as for other `ferry` commands). The host's
  main thread reads them and hands each to the thread of its
  :class:`~desktop_app.core.runtime.facade.Lane`, which carries its calls out in
  order: a person's Cancel, Pause or Retry never waits behind a check, a
  repair or the queuing of a large folder;
- the host sends :data:`HostMessage` objects back on a second pipe: the answer
  to each call (:class:`CallReturned` with the method's result, or
  :class:`CallFailed`), and what it pushes unasked. Engine events are coalesced
  (latest snapshot and latest progress per transfer) and sent every 50 ms in
  one :class:`EngineUpdate`, never one message per event; check progress,
  notices and folder statuses go as they come.

The pipe joins two processes of one program (spawned, never forked), so its
messages are pickled objects; the local endpoint for other commands, which
any process of the user may reach, speaks JSON only (:mod:`desktop_app.core.runtime.control`).

Promises: every call is answered (its result, or its error's title and message);
:class:`Stop` interrupts transfers (they resume at the next start), stops the
watcher, runner and sandbox, sends :class:`HostStopped` and ends the process,
within ``QUIT_PATIENCE`` seconds plus the sandbox server's own stop: a call or
an upload still under way then (a part on the wire) is cut off with the
process, as a crash would cut it, which the journal makes safe.
If the pipe closes or the parent process changes (the window died, however),
the host stops the same way and exits hard after ``ORPHAN_PATIENCE`` seconds
whatever is still running: an engine never outlives its window for long.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

from desktop_app.core.model.errors import FerryError
from desktop_app.core.model.events import LatestPerTransfer, TransferProgress, TransferSnapshot
from desktop_app.core.runtime.control import ControlServer
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.facade import FacadeCall, Lane, invoke
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.run_mode import RunMode
from desktop_app.core.runtime.sandbox import SandboxServer
from desktop_app.core.runtime.sandbox_profile import start_sandbox
from desktop_app.core.runtime.watcher import FolderStatus
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.transfers.scheduler import HoldBackReason

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 0.05  # seconds between engine updates sent to the window
FOLDER_STATUS_INTERVAL = 1.0
ORPHAN_PATIENCE = 3.0  # seconds an engine whose window died may take to stop
# Seconds calls and uploads under way get to end at their next check when the
# window quits (a person waits for the window to go; measured in DECISIONS.md).
QUIT_PATIENCE = 0.2
FINISHED_KEPT = 1000  # finished transfers a window shows; the journal keeps them all


# -- commands: window -> host ---------------------------------------------------------


@dataclass(frozen=True)
class HostCall:
    """A call of a facade method; answered with :class:`CallReturned` or :class:`CallFailed`."""

    call_id: int  # the window's own number, to match the answer
    call: FacadeCall


@dataclass(frozen=True)
class Stop:
    pass


Command = HostCall | Stop


# -- messages: host -> window -----------------------------------------------------------


@dataclass(frozen=True)
class HostOpened:
    description: str  # a line for the status bar
    profile: Profile
    history: tuple[TransferSnapshot, ...]  # unfinished, and the newest finished not cleared


@dataclass(frozen=True)
class HostNotice:
    text: str


@dataclass(frozen=True)
class HostFailed:
    title: str
    message: str
    fatal: bool = False  # Ferry could not open: nothing else will come


@dataclass(frozen=True)
class EngineUpdate:
    snapshots: tuple[TransferSnapshot, ...]
    progress: tuple[TransferProgress, ...]


@dataclass(frozen=True)
class CallReturned:
    call_id: int
    value: object  # what the facade method returned


@dataclass(frozen=True)
class CallFailed:
    call_id: int
    title: str
    message: str


@dataclass(frozen=True)
class CheckProgressed:
    objects: int
    rows: int


@dataclass(frozen=True)
class FoldersUpdate:
    statuses: tuple[FolderStatus, ...]
    changed: bool  # the folder list itself changed (not only their status)


@dataclass(frozen=True)
class UploadsHeld:
    """The system holds uploads back (a metered connection), or let them go."""

    text: str  # what happened, in words
    reasons: tuple[HoldBackReason, ...]  # every reason holding them now; empty: they run


@dataclass(frozen=True)
class HostStopped:
    pass


HostMessage = (
    HostOpened
    | HostNotice
    | HostFailed
    | EngineUpdate
    | CallReturned
    | CallFailed
    | CheckProgressed
    | FoldersUpdate
    | UploadsHeld
    | HostStopped
)


class EngineHost:
    """The child's side: owns Ferry (with its watcher) and the runner; answers calls."""

    def __init__(
        self,
        commands: Connection,
        messages: Connection,
        env: Environment,
        profile_name: str | None,
        sandbox: bool,
    ) -> None:
        self.commands = commands
        self.messages = messages
        self.env = env
        self.profile_name = profile_name
        self.create_sandbox = sandbox
        self._send_lock = threading.Lock()
        self._pending = LatestPerTransfer()
        self._lanes: dict[Lane, queue.Queue[HostCall | None]] = {
            lane: queue.Queue() for lane in Lane
        }
        self._opened = threading.Event()  # open finished, or failed
        self._stopping = threading.Event()
        self.ferry: Ferry | None = None
        self._sandbox: SandboxServer | None = None
        self._control: ControlServer | None = None
        self._status_lock = threading.Lock()
        self._last_statuses: tuple[FolderStatus, ...] = ()

    # -- the pipe -----------------------------------------------------------------

    def send(self, message: HostMessage) -> None:
        with self._send_lock:
            try:
                self.messages.send(message)
            except (BrokenPipeError, EOFError, OSError):
                self._stopping.set()  # the window is gone

    def _flush_loop(self) -> None:
        since_status = 0.0
        parent = os.getppid()
        while not self._stopping.wait(FLUSH_INTERVAL):
            if os.getppid() != parent:
                # The window died but the pipe stayed open (an inherited copy):
                # the same end as a closed pipe.
                log.warning("The window's process is gone; the engine stops")
                _exit_after(ORPHAN_PATIENCE)
                self.commands.close()
                self._stopping.set()
                return
            self._flush()
            since_status += FLUSH_INTERVAL
            if since_status >= FOLDER_STATUS_INTERVAL:
                since_status = 0.0
                self._send_folder_statuses()

    def _flush(self) -> None:
        snapshots, progress = self._pending.take()
        if snapshots or progress:
            self.send(EngineUpdate(snapshots, progress))

    def _send_folder_statuses(self, *, force: bool = False) -> None:
        ferry = self.ferry
        with self._status_lock:
            statuses = tuple(ferry.folder_statuses()) if ferry is not None else ()
            last, self._last_statuses = self._last_statuses, statuses
            changed = [s.folder for s in statuses] != [s.folder for s in last]
            if force or changed or statuses != last:
                self.send(FoldersUpdate(statuses, changed or force))

    # -- life -----------------------------------------------------------------------

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._open_and_start, name="ferry-host-open", daemon=True),
            threading.Thread(target=self._flush_loop, name="ferry-host-flush", daemon=True),
        ]
        threads += [
            threading.Thread(
                target=self._lane_loop, args=(lane,), name=f"ferry-host-{lane.value}", daemon=True
            )
            for lane in Lane
        ]
        for thread in threads:
            thread.start()
        opener, flusher, *lanes = threads
        try:
            while not self._stopping.is_set():
                try:
                    command = self.commands.recv()
                except (EOFError, OSError):
                    # The window is gone, however it ended: stop as if asked, but
                    # never outlive it for long (the journal makes a hard end safe).
                    _exit_after(ORPHAN_PATIENCE)
                    break
                if isinstance(command, Stop):
                    break
                self._lanes[command.call.lane].put(command)
        finally:
            deadline = time.monotonic() + QUIT_PATIENCE
            self._stop_lanes(opener, lanes, deadline)
            self._shut_down(deadline)
            self._stopping.set()
            flusher.join(timeout=5)
            self._flush()
            self.send(HostStopped())

    def _stop_lanes(
        self, opener: threading.Thread, lanes: list[threading.Thread], deadline: float
    ) -> None:
        """Drop calls not begun (nobody waits for them), stop a running check, give
        the calls under way until ``deadline`` to end."""
        for jobs in self._lanes.values():
            with contextlib.suppress(queue.Empty):
                while True:
                    jobs.get_nowait()
            jobs.put(None)
        if self.ferry is not None:
            self.ferry.cancel_check()  # a running check must not delay quitting
        for thread in (opener, *lanes):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _open(self) -> Ferry:
        if self.create_sandbox:
            self._sandbox, _state, profile = start_sandbox(self.env)
            self.profile_name = profile.name
        ferry = Ferry.open(self.env, self.profile_name, mode=RunMode.RESIDENT)
        ferry.bus.subscribe(self._pending.add)
        history = ferry.window_history(FINISHED_KEPT)
        resuming = sum(1 for r in history if r.state.in_progress and not r.paused)
        log.info("Connected: profile %s, bucket %s", ferry.profile.name, ferry.profile.bucket)
        self.send(
            HostOpened(
                description=(
                    f"Profile {ferry.profile.name}: bucket {ferry.profile.bucket} at "
                    f"{ferry.profile.endpoint_url or 'AWS S3'} (credentials from "
                    f"{ferry.credential_source.value})"
                ),
                profile=ferry.profile,
                history=tuple(TransferSnapshot.of(r) for r in history),
            )
        )
        if resuming:
            self.send(HostNotice(f"Resuming {resuming} transfer(s)."))
        return ferry

    def _open_and_start(self) -> None:
        try:
            self._start(self._open())
        except FerryError as exc:
            self.send(HostFailed(exc.title, exc.message, fatal=True))
        except Exception as exc:  # shown, not swallowed: the window must say why
            log.exception("Opening Ferry failed")
            self.send(HostFailed("Could not start", f"{type(exc).__name__}: {exc}", fatal=True))
        finally:
            self._opened.set()  # lanes wait no longer (without a Ferry they refuse)

    def _start(self, ferry: Ferry) -> None:
        self.ferry = ferry
        ferry.scheduler.on_error = lambda exc: self.send(HostFailed(exc.title, exc.message))
        ferry.on_system_notice = lambda text, holds: self.send(
            UploadsHeld(text, tuple(sorted(holds, key=lambda h: h.value)))
        )
        ferry.on_check_progress = lambda objects, rows: self.send(CheckProgressed(objects, rows))
        ferry.start()
        try:
            self._control = ferry.listen()
        except OSError as exc:  # the window works without; the command line then waits
            log.warning("Other ferry commands cannot reach this one: %s", exc)
        try:
            ferry.watch_saved_folders()
        except FerryError as exc:
            self.send(HostFailed(exc.title, exc.message))
        self._send_folder_statuses(force=True)

    def _lane_loop(self, lane: Lane) -> None:
        """Carry out, in order, the calls of one lane: a long check on one lane never
        keeps a person's Cancel on another waiting."""
        jobs = self._lanes[lane]
        while (job := jobs.get()) is not None:
            self._opened.wait()
            self.send(self._carry_out(job))
            self._send_folder_statuses()  # a call may have changed them: said at once

    def _carry_out(self, job: HostCall) -> CallReturned | CallFailed:
        ferry = self.ferry
        if ferry is None:
            return CallFailed(job.call_id, "Ferry is not open", "Ferry could not open; see above.")
        try:
            return CallReturned(job.call_id, invoke(ferry, job.call))
        except FerryError as exc:
            return CallFailed(job.call_id, exc.title, exc.message)
        except Exception as exc:
            log.exception("A call from the window failed: %s", job.call.method)
            return CallFailed(job.call_id, "Unexpected error", f"{type(exc).__name__}: {exc}")

    def _shut_down(self, deadline: float) -> None:
        if self._control is not None:
            self._control.stop()
        if self.ferry is not None:
            if not self.ferry.close(patience=max(0.0, deadline - time.monotonic())):
                log.info("Uploads still under way were cut off by quitting; they resume next time")
            self.ferry = None
        if self._sandbox is not None:
            self._sandbox.stop()


def _exit_after(seconds: float) -> None:
    """End this process after ``seconds`` whatever is still running."""

    def end() -> None:
        log.warning("The engine did not stop within %s s of the window's end; exiting", seconds)
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()


def host_main(
    commands: Connection,
    messages: Connection,
    env: Environment,
    profile_name: str | None,
    *,
    sandbox: bool = False,
) -> None:
    """Entry point of the child process (a module-level function, as spawn needs)."""
    from desktop_app.core.runtime.allocator import fix_mmap_threshold
    from desktop_app.core.runtime.logs import configure_logging

    # This process holds the part buffers: the same allocator setting as the CLI.
    fix_mmap_threshold()
    # Ctrl-C in a terminal reaches the whole process group; the window decides
    # how to stop (it sends Stop), so the engine must not die half-way on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    with contextlib.suppress(OSError):  # the window reports log trouble; uploads go on
        configure_logging(env.paths.log_file, stderr_level=None)
    EngineHost(commands, messages, env, profile_name, sandbox).run()
    # Ends here, not in the interpreter's teardown: that joins every pool thread
    # (an upload cut off above would hold it) and took 0.4-0.5 s even when all
    # had ended. Everything that must be closed was closed by run().
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
