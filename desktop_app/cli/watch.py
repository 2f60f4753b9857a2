"""`ferry watch`: upload what is saved into folders, until interrupted.

A resident Ferry (it answers other commands, as the window does) that prints
one line on stdout per file it settled; the periodic check runs when the
profile sets an interval.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from desktop_app.cli.rendering import EXIT_OK, say
from desktop_app.cli.session import with_ferry
from desktop_app.core.model.errors import FerryError
from desktop_app.core.model.events import EngineEvent, TransferChanged
from desktop_app.core.model.states import TransferState

# The engine is imported inside the handlers, for start-up (see session.py).
if TYPE_CHECKING:
    from desktop_app.core.runtime.ferry import Ferry


def cmd_watch(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.run_mode import RunMode
    from desktop_app.core.runtime.watcher import WatchedFolder

    def work(ferry: Ferry) -> int:
        folders = [
            WatchedFolder(
                Path(d).expanduser().absolute(), prefix=args.prefix or ferry.profile.prefix
            )
            for d in args.dirs
        ]
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        ferry.scheduler.on_error = lambda exc: say(f"ferry: {exc.title}: {exc.message}")
        ferry.bus.subscribe(_print_outcome)
        watcher = ferry.watch(folders, settle_seconds=args.settle, force_polling=args.polling)
        server = ferry.listen()
        for status in watcher.status.values():
            say(f"Watching {status.folder.path} ({status.mode}); Ctrl-C stops.")
        interval = ferry.profile.check_interval  # the periodic check is off unless set
        try:
            while not stop.wait(interval or None):
                try:
                    report = ferry.check()
                except FerryError as exc:
                    say(f"ferry: the periodic check failed: {exc.message}")
                    continue
                say(f"Check: {sum(report.counts.values())} finding(s); see `ferry check`.")
        finally:
            server.stop()
            watcher.stop()
            say("Stopped watching; unfinished transfers resume at the next start.")
        return EXIT_OK

    return with_ferry(args, work, RunMode.RESIDENT)


_print_lock = threading.Lock()


def _print_outcome(event: EngineEvent) -> None:
    """One line per file that `ferry watch` settled (called on engine threads)."""
    if not isinstance(event, TransferChanged):
        return
    transfer = event.transfer
    if transfer.state is TransferState.DONE:
        line = f"stored     {transfer.key} ({transfer.size:,} bytes, verified)"
    elif transfer.state is TransferState.DUPLICATE:
        line = f"unchanged  {transfer.key} (already stored as {transfer.duplicate_of})"
    elif transfer.state is TransferState.FAILED and transfer.error is not None:
        line = f"failed     {transfer.key}: {transfer.error.title}. {transfer.error.message}"
    else:
        return
    with _print_lock:
        print(line, flush=True)
