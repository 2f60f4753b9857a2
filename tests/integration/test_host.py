"""The window's engine process, driven over its pipes without a window."""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desktop_app.core import host
from desktop_app.core.app import Environment
from desktop_app.core.journal import TransferState
from tests.conftest import WeedServer


class HostProcess:
    def __init__(self, env: Environment) -> None:
        context = multiprocessing.get_context("spawn")
        command_reader, self.commands = context.Pipe(duplex=False)
        self.messages, message_writer = context.Pipe(duplex=False)
        self.process = context.Process(
            target=host.host_main, args=(command_reader, message_writer, env, None), daemon=True
        )
        self.process.start()
        command_reader.close()
        message_writer.close()
        self.received: list[host.HostMessage] = []

    def send(self, command: host.Command) -> None:
        self.commands.send(command)

    def wait_for(self, wanted: Callable[[host.HostMessage], bool], timeout: float = 60) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.messages.poll(0.2):
                message = self.messages.recv()
                self.received.append(message)
                if isinstance(message, host.HostFailed):
                    pytest.fail(f"the host failed: {message.title}: {message.message}")
                if wanted(message):
                    return message
        pytest.fail(f"not received in {timeout} s; got {[type(m).__name__ for m in self.received]}")


@pytest.fixture
def running_host(
    weed_profile: Callable[..., None], ferry_env: Environment
) -> Iterator[HostProcess]:
    weed_profile()
    started = HostProcess(ferry_env)
    yield started
    if started.process.is_alive():
        started.process.kill()
    started.process.join(timeout=10)


def _done_keys(messages: list[host.HostMessage]) -> set[str]:
    return {
        s.key
        for m in messages
        if isinstance(m, host.EngineUpdate)
        for s in m.snapshots
        if s.state is TransferState.DONE
    }


def test_host_uploads_what_it_is_told_and_stops_when_asked(
    running_host: HostProcess, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    opened = running_host.wait_for(lambda m: isinstance(m, host.HostOpened))
    assert isinstance(opened, host.HostOpened) and opened.profile.bucket == bucket
    files = []
    for n in range(3):
        path = tmp_path / f"minutes-{n}.txt"
        path.write_bytes(f"meeting {n}\n".encode() * 5000)
        files.append(path)
    running_host.send(host.AddPaths(tuple(files)))
    running_host.wait_for(lambda _m: _done_keys(running_host.received) >= {p.name for p in files})
    for path in files:
        body = weed.client().get_object(Bucket=bucket, Key=path.name)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    running_host.send(host.Stop())
    running_host.wait_for(lambda m: isinstance(m, host.HostStopped))
    running_host.process.join(timeout=30)
    assert running_host.process.exitcode == 0


def test_host_stops_cleanly_when_the_window_disappears(running_host: HostProcess) -> None:
    running_host.wait_for(lambda m: isinstance(m, host.HostOpened))
    running_host.commands.close()  # what a killed window leaves behind: a closed pipe
    running_host.process.join(timeout=60)
    assert running_host.process.exitcode == 0
