"""Stand-ins for NetworkManager and logind on a private D-Bus bus.

A real ``dbus-daemon`` (Debian's) carries the messages; this stub owns the
names ``org.freedesktop.NetworkManager`` and ``org.freedesktop.login1`` and
answers what Ferry asks: the ``Metered`` property (with ``PropertiesChanged``
when a test changes it) and ``Inhibit``, which hands out one end of a pipe,
as logind hands out a descriptor whose closing ends the lock.
"""

from __future__ import annotations

import os
import select
import threading
from typing import Any

from jeepney import (
    DBusAddress,
    HeaderFields,
    MessageType,
    message_bus,
    new_error,
    new_method_return,
    new_signal,
)
from jeepney.io.blocking import open_dbus_connection

NM_PATH = "/org/freedesktop/NetworkManager"
NM_INTERFACE = "org.freedesktop.NetworkManager"
LOGIN_PATH = "/org/freedesktop/login1"
METERED_YES, METERED_NO = 1, 2


class SystemServicesStub:
    def __init__(self, bus_address: str) -> None:
        self.bus_address = bus_address
        self.metered = METERED_NO
        self.inhibit_calls: list[tuple[str, ...]] = []
        self._locks: list[int] = []  # read ends of the pipes handed out
        self._connection = open_dbus_connection(bus=bus_address, enable_fds=True)
        for name in ("org.freedesktop.NetworkManager", "org.freedesktop.login1"):
            self._connection.send_and_get_reply(message_bus.RequestName(name), timeout=5)
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def set_metered(self, metered: bool) -> None:
        """Change the property and announce it, as NetworkManager does."""
        self.metered = METERED_YES if metered else METERED_NO
        emitter = DBusAddress(NM_PATH, interface="org.freedesktop.DBus.Properties")
        signal = new_signal(
            emitter,
            "PropertiesChanged",
            "sa{sv}as",
            (NM_INTERFACE, {"Metered": ("u", self.metered)}, []),
        )
        with self._send_lock:
            self._connection.send(signal)

    def locks_held(self) -> int:
        """How many sleep locks are still held (their other end not closed)."""
        held = 0
        for fd in list(self._locks):
            readable, _, _ = select.select([fd], [], [], 0)
            if readable and os.read(fd, 1) == b"":
                self._locks.remove(fd)
                os.close(fd)
            else:
                held += 1
        return held

    def stop(self) -> None:
        self._stop.set()
        self._connection.close()
        self._thread.join(timeout=5)
        for fd in self._locks:
            os.close(fd)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._connection.receive(timeout=0.2)
            except TimeoutError:
                continue
            except (OSError, ValueError):
                return
            if message.header.message_type is not MessageType.method_call:
                continue
            reply, handed_out = self._answer(message)
            with self._send_lock:
                self._connection.send(reply)
            if handed_out is not None:
                # The message carried a copy of the descriptor: only Ferry's keeps the lock.
                os.close(handed_out)

    def _answer(self, message: Any) -> tuple[Any, int | None]:
        fields = message.header.fields
        member = fields.get(HeaderFields.member)
        path = fields.get(HeaderFields.path)
        if path == NM_PATH and member == "Get" and message.body == (NM_INTERFACE, "Metered"):
            return new_method_return(message, "v", (("u", self.metered),)), None
        if path == LOGIN_PATH and member == "Inhibit":
            self.inhibit_calls.append(tuple(message.body))
            read_end, write_end = os.pipe()
            self._locks.append(read_end)
            return new_method_return(message, "h", (write_end,)), write_end
        return new_error(message, "org.freedesktop.DBus.Error.UnknownMethod", "s", ("no",)), None
