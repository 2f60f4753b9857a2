"""Metered networks and sleep, with a real dbus-daemon and NetworkManager/logind stand-ins.

A resident Ferry (as the window and `ferry watch` run it) uploads to weed mini
at a limited rate; the stand-in NetworkManager turns the connection metered
and back, and the stand-in logind shows whether Ferry holds a sleep lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from desktop_app.core.model.events import TransferProgress
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.run_mode import RunMode
from desktop_app.core.transfers.scheduler import HoldBackReason
from tests.conftest import SystemBus, WeedServer
from tests.faults import FaultProxy

MIB = 1024 * 1024


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def on_bus(ferry_env: Environment, address: str) -> Environment:
    return dataclasses.replace(
        ferry_env, environ={**ferry_env.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}
    )


def test_uploads_pause_while_metered_and_go_on_by_themselves_with_the_computer_kept_awake(
    ferry_env: Environment,
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    weed: WeedServer,
    bucket: str,
    system_bus: SystemBus,
    tmp_path: Path,
) -> None:
    proxy_profile(part_size=5 * MIB, concurrency=2, bandwidth_limit=4 * MIB, pause_on_metered=True)
    data = os.urandom(30 * MIB)
    (tmp_path / "video.bin").write_bytes(data)
    notices: list[tuple[str, frozenset[HoldBackReason]]] = []
    done_bytes = [0]
    app = Ferry.open(on_bus(ferry_env, system_bus.address), mode=RunMode.RESIDENT)
    app.on_system_notice = lambda text, holds: notices.append((text, holds))
    app.bus.subscribe(
        lambda e: (
            done_bytes.__setitem__(0, e.bytes_done) if isinstance(e, TransferProgress) else None
        )
    )
    try:
        app.start()
        [record] = app.queue([tmp_path / "video.bin"])
        wait_for(lambda: done_bytes[0] >= 5 * MIB, 30, "the first part")
        wait_for(lambda: system_bus.services.locks_held() == 1, 5, "a sleep lock")
        assert system_bus.services.inhibit_calls[0][0] == "sleep"

        system_bus.services.set_metered(True)
        wait_for(
            lambda: HoldBackReason.METERED in app.scheduler.held_back_for, 5, "the metered pause"
        )
        wait_for(lambda: not app.scheduler.held(), 10, "the running parts to stop")
        paused_at = done_bytes[0]
        # A fixed span on purpose: what is checked is that nothing happens in it
        # (no byte goes out while metered), which no condition can signal.
        time.sleep(3)
        assert done_bytes[0] == paused_at, "bytes went out on a metered connection"
        assert app.journal.get(record.id).state is not TransferState.DONE
        assert any("Uploads paused" in text for text, _ in notices), notices

        system_bus.services.set_metered(False)
        wait_for(lambda: app.journal.get(record.id).state is TransferState.DONE, 60, "done")
        assert any("no longer metered" in text and not holds for text, holds in notices)
        # Idle again: the lock goes (after the 10 s that bridge gaps between files).
        wait_for(lambda: system_bus.services.locks_held() == 0, 20, "the lock's release")
    finally:
        app.close()
    body = weed.client().get_object(Bucket=bucket, Key="video.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    # What was sent before the pause was kept: at most the parts cut short go again.
    assert proxy.bytes_put() <= len(data) + 2 * 5 * MIB, proxy.bytes_put()


def test_without_d_bus_both_are_off_with_one_line_and_uploads_go_on(
    ferry_env: Environment,
    weed_profile: Callable[..., None],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile(pause_on_metered=True)
    (tmp_path / "a.txt").write_text("alpha")
    notices: list[str] = []
    env = on_bus(ferry_env, f"unix:path={tmp_path / 'no-bus-here'}")
    app = Ferry.open(env, mode=RunMode.RESIDENT)
    app.on_system_notice = lambda text, _holds: notices.append(text)
    try:
        app.start()
        [record] = app.queue([tmp_path / "a.txt"])
        wait_for(lambda: app.journal.get(record.id).state is TransferState.DONE, 30, "done")
    finally:
        app.close()
    assert [n for n in notices if "metered" in n] == [
        "Pause on a metered connection is off: no D-Bus system bus (FileNotFoundError)."
    ]
    body = weed.client().get_object(Bucket=bucket, Key="a.txt")["Body"].read()
    assert body == b"alpha"
