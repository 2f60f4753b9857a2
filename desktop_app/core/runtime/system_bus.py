"""What the operating system says and is told over D-Bus: metered network, sleep.

Linux only, through the system bus (``DBUS_SYSTEM_BUS_ADDRESS``, else the
standard socket), with jeepney (pure Python, no Qt):

- :class:`MeteredWatch` reads NetworkManager's ``Metered`` property and
  follows its ``PropertiesChanged`` signal (read again at least every few
  seconds, should a signal be missed), calling back on every change;
- :class:`SleepInhibitor` takes a logind ``Inhibit("sleep")`` lock, which
  lasts exactly as long as Ferry holds the file descriptor logind returned,
  and lets it go.

Where there is no bus, or no NetworkManager or logind on it, each says so once
(:attr:`unavailable`) and does nothing: uploads are never stopped for it.
Other systems: sleep is held with ``SetThreadExecutionState`` (Windows) or
``caffeinate`` (macOS); a metered connection is not detected there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from jeepney import DBusAddress, MatchRule, Properties, message_bus, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import DBusErrorResponse, unwrap_msg

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"
NETWORK_MANAGER = DBusAddress(
    "/org/freedesktop/NetworkManager",
    bus_name="org.freedesktop.NetworkManager",
    interface="org.freedesktop.NetworkManager",
)
LOGIND = DBusAddress(
    "/org/freedesktop/login1",
    bus_name="org.freedesktop.login1",
    interface="org.freedesktop.login1.Manager",
)
# NMMetered: 1 yes, 3 guessed yes; 0 unknown, 2 no, 4 guessed no.
_METERED_VALUES = frozenset({1, 3})


def system_bus_address(environ: Mapping[str, str]) -> str:
    return environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


def _connect(address: str, *, enable_fds: bool = False) -> DBusConnection:
    return open_dbus_connection(bus=address, enable_fds=enable_fds, auth_timeout=2.0)


class MeteredWatch:
    """Follows whether the network in use is metered; ``on_change(metered)`` on each change.

    The first reading is reported too. Runs on a thread of its own until :meth:`stop`.
    """

    def __init__(
        self,
        on_change: Callable[[bool], None],
        *,
        bus_address: str,
        reread_interval: float = 5.0,
    ) -> None:
        self.on_change = on_change
        self.bus_address = bus_address
        self.reread_interval = reread_interval
        self.unavailable: str | None = None
        self.metered: bool | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferry-metered", daemon=True)

    def start(self, timeout: float = 5.0) -> None:
        """Start following; returns once the first reading was made (or failed)."""
        self._thread.start()
        self._started.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.reread_interval + 2)

    def _run(self) -> None:
        try:
            connection = _connect(self.bus_address)
        except (OSError, ValueError, TimeoutError, StopIteration) as exc:
            self._give_up(f"no D-Bus system bus ({type(exc).__name__})")
            return
        try:
            rule = MatchRule(
                type="signal",
                interface="org.freedesktop.DBus.Properties",
                member="PropertiesChanged",
                path=NETWORK_MANAGER.object_path,
            )
            connection.send_and_get_reply(message_bus.AddMatch(rule), timeout=2)
            with connection.filter(rule, bufsize=16) as signals:
                while not self._stop.is_set():
                    self._read(connection)
                    self._started.set()
                    if self.unavailable is not None:
                        return
                    with contextlib.suppress(TimeoutError):
                        connection.recv_until_filtered(signals, timeout=self.reread_interval)
                        signals.clear()
        except (OSError, ConnectionError) as exc:
            self._give_up(f"the D-Bus connection broke ({type(exc).__name__})")
        finally:
            connection.close()
            self._started.set()

    def _read(self, connection: DBusConnection) -> None:
        try:
            body: Any = unwrap_msg(
                connection.send_and_get_reply(Properties(NETWORK_MANAGER).get("Metered"), timeout=2)
            )
        except DBusErrorResponse:
            self._give_up("NetworkManager does not answer on the system bus")
            return
        except TimeoutError:
            return  # read again at the next turn
        _signature, value = body[0]
        metered = int(value) in _METERED_VALUES
        if metered != self.metered:
            self.metered = metered
            log.info("The network connection is %s", "metered" if metered else "not metered")
            self.on_change(metered)

    def _give_up(self, why: str) -> None:
        self.unavailable = why
        log.info("Pause on a metered connection is off: %s", why)
        self._started.set()


class SleepInhibitor:
    """Keeps the machine awake while held; :meth:`release` lets it sleep again."""

    def __init__(self, *, bus_address: str, platform: str = sys.platform) -> None:
        self.bus_address = bus_address
        self.platform = platform
        self.unavailable: str | None = None
        self._lock = threading.Lock()
        self._held: Any = None  # the inhibitor: a file descriptor, or a process

    @property
    def holding(self) -> bool:
        return self._held is not None

    def hold(self, why: str) -> bool:
        """Take the lock (once; holding already is fine). False when this system has none."""
        with self._lock:
            if self._held is not None:
                return True
            if self.unavailable is not None:
                return False
            try:
                self._held = self._take(why)
            except (OSError, ValueError, TimeoutError, StopIteration, DBusErrorResponse) as exc:
                self.unavailable = f"{type(exc).__name__}: {exc}"
                log.info("Keeping the computer awake is off: %s", self.unavailable)
                return False
            log.info("Keeping the computer awake while uploads run")
            return True

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, None
        if held is None:
            return
        if isinstance(held, subprocess.Popen):
            held.terminate()
            held.wait(timeout=5)
        elif isinstance(held, int) and self.platform == "win32":
            _windows_execution_state(awake=False)
        else:
            held.close()  # logind's lock ends when its last descriptor closes
        log.info("The computer may sleep again")

    def _take(self, why: str) -> Any:
        if self.platform == "win32":
            _windows_execution_state(awake=True)
            return 1
        if self.platform == "darwin":
            # caffeinate -i holds an IOKit assertion for as long as it runs.
            return subprocess.Popen(["caffeinate", "-i", "-w", str(os.getpid())])
        connection = _connect(self.bus_address, enable_fds=True)
        try:
            call = new_method_call(LOGIND, "Inhibit", "ssss", ("sleep", "Ferry", why, "block"))
            descriptor = unwrap_msg(connection.send_and_get_reply(call, timeout=2))[0]
            return descriptor.to_file("rb") if hasattr(descriptor, "to_file") else descriptor
        finally:
            connection.close()


def _windows_execution_state(*, awake: bool) -> None:
    import ctypes

    continuous, system_required = 0x80000000, 0x00000001
    flags = continuous | (system_required if awake else 0)
    ctypes.windll.kernel32.SetThreadExecutionState(flags)  # type: ignore[attr-defined]


class AwakeWhileBusy:
    """Holds a :class:`SleepInhibitor` while ``busy()`` says uploads run, and lets it
    go after ``idle_release`` seconds without any (not between two small files)."""

    def __init__(
        self,
        inhibitor: SleepInhibitor,
        busy: Callable[[], bool],
        *,
        interval: float = 1.0,
        idle_release: float = 10.0,
    ) -> None:
        self.inhibitor = inhibitor
        self.busy = busy
        self.interval = interval
        self.idle_release = idle_release
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferry-awake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        self.inhibitor.release()

    def _run(self) -> None:
        idle_for = 0.0
        while not self._stop.wait(self.interval):
            if self.busy():
                idle_for = 0.0
                self.inhibitor.hold("Uploading files")  # once; nothing where there is none
                continue
            idle_for += self.interval
            if self.inhibitor.holding and idle_for >= self.idle_release:
                self.inhibitor.release()
