"""What a resident Ferry follows of the system it runs on.

Uploads are held while the network is metered (if the profile says so), the
computer is kept awake while they run (unless the profile says not), and a
sandbox server this Ferry started is started again should it stop. Promises:
each change is told in words (``announce``) with the reasons holding uploads
now; started once however often :meth:`SystemFollower.start` is called; after
:meth:`SystemFollower.stop` nothing starts the sandbox server again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from desktop_app.core.runtime.sandbox import SandboxKeeper, SandboxServer
from desktop_app.core.runtime.system_bus import (
    AwakeWhileBusy,
    MeteredWatch,
    SleepInhibitor,
    system_bus_address,
)
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.transfers.scheduler import HoldBackReason, Scheduler


class SystemFollower:
    """The system watches of one resident Ferry; thread-safe."""

    def __init__(
        self,
        *,
        profile: Profile,
        environ: Mapping[str, str],
        scheduler: Scheduler,
        sandbox: SandboxServer | None,
        announce: Callable[[str], None],
    ) -> None:
        self._profile = profile
        self._environ = environ
        self._scheduler = scheduler
        self._sandbox = sandbox
        self._announce = announce
        self._lock = threading.Lock()
        self._watches: list[MeteredWatch | AwakeWhileBusy] = []
        self._keeper: SandboxKeeper | None = None

    def start(self) -> None:
        """Follow the network, sleep and this Ferry's own sandbox server (once)."""
        with self._lock:
            if not self._watches:
                self._watch_system()
            if self._sandbox is not None and self._sandbox.owned and self._keeper is None:
                self._keeper = SandboxKeeper(self._sandbox, self._sandbox_restarted)
                self._keeper.start()

    def stop(self) -> None:
        with self._lock:
            if self._keeper is not None:
                self._keeper.stop()  # first: nothing may start the server again now
            for watch in self._watches:
                watch.stop()

    def _sandbox_restarted(self, text: str) -> None:
        self._announce(text)
        # What failed while the server was away is tried at once, not at its time.
        self._scheduler.retry_waiting_now()
        self._scheduler.wake()

    def _watch_system(self) -> None:
        bus = system_bus_address(self._environ)
        if self._profile.pause_on_metered:
            metered = MeteredWatch(self._metered_changed, bus_address=bus)
            metered.start()
            self._watches.append(metered)
            if metered.unavailable is not None:
                self._announce(f"Pause on a metered connection is off: {metered.unavailable}.")
        if self._profile.keep_awake:
            awake = AwakeWhileBusy(
                SleepInhibitor(bus_address=bus), lambda: bool(self._scheduler.held())
            )
            awake.start()
            self._watches.append(awake)

    def _metered_changed(self, metered: bool) -> None:
        if not self._scheduler.hold_back(HoldBackReason.METERED, metered):
            return
        if metered:
            self._announce(
                f"Uploads paused: {HoldBackReason.METERED.description}. They go on by themselves "
                "when it is not (Settings: pause on a metered connection)."
            )
        else:
            self._announce("The connection is no longer metered: uploads go on.")
