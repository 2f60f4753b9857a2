"""Keeps the engine going in the background while anything is runnable.

Used by the window and by ``ferry watch``: producers queue transfers and call
:meth:`wake`; one runner thread runs every runnable transfer and sleeps until
woken again. ``stop()`` interrupts running transfers (they stay in the journal
and resume at the next start) and joins the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from desktop_app.core.engine import TransferEngine
from desktop_app.core.errors import FerryError

log = logging.getLogger(__name__)


class TransferRunner:
    def __init__(
        self,
        engine: TransferEngine,
        *,
        on_error: Callable[[FerryError], None] | None = None,
        idle_poll: float = 1.0,
    ) -> None:
        self.engine = engine
        self.on_error = on_error
        self.idle_poll = idle_poll
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ferry-runner", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.wake()

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is runnable (for tests and headless use)."""
        return self._idle.wait(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=self.idle_poll)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                runnable = self.engine.runnable()
                if runnable:
                    self.engine.run([r.id for r in runnable])
                    self._wake.set()  # look again: more may have come meanwhile
                else:
                    self._idle.set()
            except FerryError as exc:
                log.error("Transfers stopped: %s", exc.message)
                if self.on_error is not None:
                    self.on_error(exc)
            except Exception:
                log.exception("The transfer runner failed")

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self.engine.interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout=120)
