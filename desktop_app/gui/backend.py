"""The window's handle on Ferry's engine, which runs in a child process.

``start()`` spawns :func:`desktop_app.core.runtime.host.host_main` (multiprocessing,
``spawn``) with two one-way pipes. A view asks the engine for anything through
one door, :meth:`Backend.call` with a method of the
:class:`~desktop_app.core.runtime.ferry.Ferry` facade and its arguments; the answer
(that method's typed result) comes back to the callback it chose, on the GUI
thread, and a failure to its failure callback or to the ``failed`` signal.
A sender thread writes the calls; a reader thread receives the host's
messages, turns what the host pushes unasked into typed Qt signals, and feeds
engine updates to the EngineBridge. The GUI thread only posts calls and
receives signals: no I/O, and no engine thread competing with it for the GIL.
``stop()`` asks the host to stop (transfers are interrupted and resume at the
next start), waits for it and for both threads.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import shiboken6
from PySide6.QtCore import QObject, Signal

from desktop_app.core.runtime import host
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.facade import FacadeCall
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.watcher import FolderStatus
from desktop_app.core.settings.profiles import Profile
from desktop_app.gui.bridge import EngineBridge

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M")  # a kind of message the host sends
STOP_TIMEOUT = 90.0  # seconds the host may take to interrupt transfers and close


class Pending(Generic[R]):
    """A call under way; :meth:`then` says what to do with its answer (on the GUI thread)."""

    def __init__(self) -> None:
        self.done: Callable[[R], None] | None = None
        self.failed: Callable[[str, str], None] | None = None  # title, message

    def then(
        self, done: Callable[[R], None], failed: Callable[[str, str], None] | None = None
    ) -> None:
        """Call ``done`` with the result, or ``failed`` (else the window's warning) with
        the error. Attach at once, on the GUI thread: answers are delivered by its loop."""
        self.done, self.failed = done, failed


@dataclass(frozen=True)
class _Answer:
    pending: Pending[Any]
    message: host.CallReturned | host.CallFailed


def _alive(callback: Callable[..., None]) -> bool:
    """False for a method of a widget closed since the call was made (a dialog)."""
    owner = getattr(callback, "__self__", None)
    return not isinstance(owner, QObject) or shiboken6.isValid(owner)


class Backend(QObject):
    opened = Signal(str)  # a line for the status bar
    failed = Signal(str, str)  # title, message
    notice = Signal(str)
    # Why uploads are held back by the system ("" when they are not).
    heldBack = Signal(str)
    checkProgress = Signal(int, int)  # objects, rows scanned so far
    foldersChanged = Signal()
    historyLoaded = Signal(int)  # highest transfer id already in the journal at start
    _answered = Signal(_Answer)  # to the GUI thread, where the callbacks run

    def __init__(
        self,
        env: Environment,
        profile_name: str | None,
        bridge: EngineBridge,
        *,
        create_sandbox: bool = False,
    ) -> None:
        super().__init__()
        self.env = env
        self.profile_name = profile_name
        self.bridge = bridge
        self.create_sandbox = create_sandbox
        self.profile: Profile | None = None  # the profile in use, once open
        self._folder_statuses: tuple[FolderStatus, ...] = ()
        self._ready = threading.Event()
        self._commands: queue.Queue[host.Command | None] = queue.Queue()
        self._link: _HostLink | None = None
        self._restarting = threading.Lock()
        self._calls = itertools.count(1)
        self._waiting: dict[int, Pending[Any]] = {}  # by call id, until answered
        self._waiting_lock = threading.Lock()
        self._answered.connect(self._deliver)
        # What the reader thread does with each kind of message the host sends.
        self._handlers: dict[type, Callable[[Any], None]] = {}
        self._handle(host.CallReturned, self._on_answer)
        self._handle(host.CallFailed, self._on_answer)
        self._handle(host.EngineUpdate, self._on_update)
        self._handle(host.HostOpened, self._on_opened)
        self._handle(host.HostFailed, self._on_host_failed)
        self._handle(host.HostNotice, self._on_notice)
        self._handle(host.UploadsHeld, self._on_uploads_held)
        self._handle(host.CheckProgressed, self._on_check_progressed)
        self._handle(host.FoldersUpdate, self._on_folders)

    def start(self) -> None:
        """Spawn the engine process and the threads that talk to it."""
        env = Environment(self.env.paths, dict(self.env.environ), self.env.secrets)
        self._link = _HostLink(env, self.profile_name, self.create_sandbox)
        self._link.start(self._send_loop, self._read_loop)

    def restart(self) -> None:
        """Stop the engine and start it again with the saved profile, off the GUI thread.

        Running transfers are interrupted and resume at once in the new engine;
        commands posted meanwhile wait in the queue and go to the new one.
        """

        def work() -> None:
            with self._restarting:
                self._ready.clear()
                self.profile = None
                self._stop_link()
                self.create_sandbox = False  # a sandbox profile starts its server itself
                self.start()

        threading.Thread(target=work, name="ferry-restart", daemon=True).start()

    @property
    def ready(self) -> bool:
        """True once Ferry opened in the engine process, or failed to."""
        return self._ready.is_set()

    # -- calls the window posts -------------------------------------------------

    def call(
        self, method: Callable[Concatenate[Ferry, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Pending[R]:
        """Ask the engine's Ferry to run ``method`` (``Ferry.cancel``, ...) with these
        arguments; the answer goes where :meth:`Pending.then` says, a failure without a
        failure callback to the ``failed`` signal."""
        pending: Pending[R] = Pending()
        call_id = next(self._calls)
        with self._waiting_lock:
            self._waiting[call_id] = pending
        self._commands.put(host.HostCall(call_id, FacadeCall.of(method, *args, **kwargs)))
        return pending

    def _deliver(self, answer: _Answer) -> None:
        pending, message = answer.pending, answer.message
        if isinstance(message, host.CallFailed):
            if pending.failed is None:
                self.failed.emit(message.title, message.message)
            elif _alive(pending.failed):
                pending.failed(message.title, message.message)
        elif pending.done is not None and _alive(pending.done):
            pending.done(message.value)

    def folder_statuses(self) -> list[FolderStatus]:
        """The latest status of the watched folders the host sent (no I/O)."""
        return list(self._folder_statuses)

    # -- threads ----------------------------------------------------------------------

    def _send_loop(self, link: _HostLink) -> None:
        while True:
            command = self._commands.get()
            if command is None:
                return
            try:
                link.command_writer.send(command)
            except (BrokenPipeError, OSError):
                return  # the host is gone; the reader says so

    def _read_loop(self, link: _HostLink) -> None:
        while True:
            try:
                message = link.message_reader.recv()
            except (EOFError, OSError):
                if not self._ready.is_set() or link.process.exitcode not in (0, None):
                    self.failed.emit(
                        "Ferry's engine stopped",
                        "The part of Ferry that uploads stopped unexpectedly. Close and "
                        "start Ferry again: unfinished transfers resume. The log has details.",
                    )
                self._ready.set()
                return
            if isinstance(message, host.HostStopped):
                return
            self._dispatch(message)

    def _dispatch(self, message: host.HostMessage) -> None:
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(message)

    def _handle(self, kind: type[M], handler: Callable[[M], None]) -> None:
        """Have ``handler`` take the host's messages of this type (typed: a handler
        receives only its own kind)."""
        self._handlers[kind] = handler

    def _on_answer(self, message: host.CallReturned | host.CallFailed) -> None:
        with self._waiting_lock:
            pending = self._waiting.pop(message.call_id, None)
        if pending is not None:
            self._answered.emit(_Answer(pending, message))

    def _on_update(self, message: host.EngineUpdate) -> None:
        self.bridge.accept(message.snapshots, message.progress)

    def _on_opened(self, message: host.HostOpened) -> None:
        self.profile = message.profile
        self.profile_name = message.profile.name
        self.bridge.accept(message.history)
        self.historyLoaded.emit(max((s.id for s in message.history), default=0))
        self._ready.set()
        self.opened.emit(message.description)

    def _on_host_failed(self, message: host.HostFailed) -> None:
        if message.fatal:
            self._ready.set()
        self.failed.emit(message.title, message.message)

    def _on_notice(self, message: host.HostNotice) -> None:
        self.notice.emit(message.text)

    def _on_uploads_held(self, message: host.UploadsHeld) -> None:
        if not message.reasons:  # while held, the lasting label says it (not twice)
            self.notice.emit(message.text)
        self.heldBack.emit("; ".join(reason.description for reason in message.reasons))

    def _on_check_progressed(self, message: host.CheckProgressed) -> None:
        self.checkProgress.emit(message.objects, message.rows)

    def _on_folders(self, message: host.FoldersUpdate) -> None:
        self._folder_statuses = message.statuses
        if message.changed:
            self.foldersChanged.emit()

    def stop(self) -> None:
        """Interrupt transfers (they resume next start), stop the host, join everything."""
        self.bridge.stop()
        with self._restarting:
            self._stop_link()

    def _stop_link(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        self._commands.put(host.Stop())
        self._commands.put(None)
        link.stop()


class _HostLink:
    """One engine process with its two pipes and the two threads that use them."""

    def __init__(self, env: Environment, profile_name: str | None, sandbox: bool) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a Qt process
        command_reader, self.command_writer = context.Pipe(duplex=False)
        self.message_reader, message_writer = context.Pipe(duplex=False)
        self._child_ends = (command_reader, message_writer)
        self.process = context.Process(
            target=host.host_main,
            args=(command_reader, message_writer, env, profile_name),
            kwargs={"sandbox": sandbox},
            name="ferry-engine",
            daemon=True,
        )
        self._threads: list[threading.Thread] = []

    def start(
        self,
        send_loop: Callable[[_HostLink], None],
        read_loop: Callable[[_HostLink], None],
    ) -> None:
        self.process.start()
        for end in self._child_ends:  # the child holds its own copies now
            end.close()
        for name, loop in (("ferry-send", send_loop), ("ferry-read", read_loop)):
            thread = threading.Thread(target=loop, args=(self,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Wait for the host to stop after Stop was queued; kill it if it hangs."""
        sender, reader = self._threads
        sender.join(timeout=10)
        self.process.join(timeout=STOP_TIMEOUT)
        if self.process.is_alive():
            log.warning("The engine process did not stop in %s s; killing it", STOP_TIMEOUT)
            self.process.kill()
            self.process.join(timeout=10)
        reader.join(timeout=10)
        self.command_writer.close()
        self.message_reader.close()
