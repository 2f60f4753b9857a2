"""The window's engine process, driven over its pipes without a window."""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from desktop_app.core.check.findings import CheckReport
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime import host
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.facade import FacadeCall
from desktop_app.core.runtime.ferry import Ferry
from tests.conftest import WeedServer


class HostProcess:
    def __init__(self, env: Environment, target: Callable[..., None] = host.host_main) -> None:
        context = multiprocessing.get_context("spawn")
        command_reader, self.commands = context.Pipe(duplex=False)
        self.messages, message_writer = context.Pipe(duplex=False)
        self.process = context.Process(
            target=target, args=(command_reader, message_writer, env, None), daemon=True
        )
        self.process.start()
        command_reader.close()
        message_writer.close()
        self.received: list[host.HostMessage] = []
        self._calls = 0

    def send(self, command: host.Command) -> None:
        self.commands.send(command)

    def call(self, method: Callable[..., object], *args: Any, **kwargs: Any) -> int:
        """Post a call of a facade method as the window does; its call id."""
        self._calls += 1
        self.send(host.HostCall(self._calls, FacadeCall.of(method, *args, **kwargs)))
        return self._calls

    def answer(self, call_id: int, timeout: float = 60) -> object:
        """The value the call returned (a failure fails the test)."""
        answered = self.wait_for(
            lambda m: isinstance(m, host.CallReturned | host.CallFailed) and m.call_id == call_id,
            timeout,
        )
        if isinstance(answered, host.CallFailed):
            pytest.fail(f"the call failed: {answered.title}: {answered.message}")
        assert isinstance(answered, host.CallReturned)
        return answered.value

    def wait_for(self, wanted: Callable[[host.HostMessage], bool], timeout: float = 60) -> object:
        for message in self.received:
            if wanted(message):
                return message
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
def host_process(ferry_env: Environment) -> Iterator[Callable[..., HostProcess]]:
    started: list[HostProcess] = []

    def start(target: Callable[..., None] = host.host_main) -> HostProcess:
        started.append(HostProcess(ferry_env, target))
        return started[-1]

    yield start
    for process in started:
        if process.process.is_alive():
            process.process.kill()
        process.process.join(timeout=10)


@pytest.fixture
def running_host(
    weed_profile: Callable[..., None], host_process: Callable[..., HostProcess]
) -> HostProcess:
    weed_profile()
    return host_process()


def _states(messages: list[host.HostMessage]) -> dict[str, TransferState]:
    return {
        s.key: s.state for m in messages if isinstance(m, host.EngineUpdate) for s in m.snapshots
    }


def _done_keys(messages: list[host.HostMessage]) -> set[str]:
    return {key for key, state in _states(messages).items() if state is TransferState.DONE}


def test_host_uploads_what_it_is_told_and_stops_when_asked(
    running_host: HostProcess, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    opened = running_host.wait_for(lambda m: isinstance(m, host.HostOpened))
    assert isinstance(opened, host.HostOpened)
    assert opened.profile.bucket == bucket
    files = []
    for n in range(3):
        path = tmp_path / f"minutes-{n}.txt"
        path.write_bytes(f"meeting {n}\n".encode() * 5000)
        files.append(path)
    queued = running_host.answer(running_host.call(Ferry.queue, files))
    assert [r.source_path for r in queued] == [str(p) for p in files]  # type: ignore[attr-defined]
    running_host.wait_for(lambda _m: _done_keys(running_host.received) >= {p.name for p in files})
    for path in files:
        body = weed.client().get_object(Bucket=bucket, Key=path.name)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    running_host.send(host.Stop())
    running_host.wait_for(lambda m: isinstance(m, host.HostStopped))
    running_host.process.join(timeout=30)
    assert running_host.process.exitcode == 0


def test_a_call_of_what_the_facade_does_not_offer_is_answered_with_a_failure(
    running_host: HostProcess,
) -> None:
    running_host.wait_for(lambda m: isinstance(m, host.HostOpened))
    for name in ("_resumable", "close", "journal"):
        running_host.send(host.HostCall(7, FacadeCall(name)))
        failed = running_host.wait_for(lambda m: isinstance(m, host.CallFailed | host.CallReturned))
        assert isinstance(failed, host.CallFailed)
        assert failed.title == "Not a Ferry request"
        running_host.received.clear()
    assert running_host.answer(running_host.call(Ferry.pause, None)) == 0  # still answering


RELEASE_CHECK = "release-the-check"


def _host_with_a_long_check(
    commands: Connection, messages: Connection, env: Environment, profile: str | None
) -> None:
    """The host, with a check that lasts until a file appears (as a check of a
    bucket of millions would): every other call must still be answered meanwhile."""
    from desktop_app.core.check import checker as reconcile

    check = reconcile.ConsistencyChecker.check
    release = env.paths.data_dir / RELEASE_CHECK

    def long_check(self: reconcile.ConsistencyChecker, options: Any) -> CheckReport:
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return check(self, options)

    reconcile.ConsistencyChecker.check = long_check  # type: ignore[method-assign]
    host.host_main(commands, messages, env, profile)


def test_a_cancel_from_the_window_is_carried_out_while_a_check_runs(
    weed_profile: Callable[..., None],
    host_process: Callable[..., HostProcess],
    ferry_env: Environment,
    tmp_path: Path,
) -> None:
    weed_profile(bandwidth_limit=1_000_000)  # 1 MB/s: the upload lasts half a minute
    engine = host_process(_host_with_a_long_check)
    engine.wait_for(lambda m: isinstance(m, host.HostOpened))
    check = engine.call(Ferry.run_check)
    big = tmp_path / "scan.bin"
    big.write_bytes(b"\x5a" * (30 << 20))

    queued = engine.answer(engine.call(Ferry.queue, [big]))
    assert isinstance(queued, list)
    [record] = queued
    engine.wait_for(lambda _m: _states(engine.received).get("scan.bin") is TransferState.UPLOADING)
    engine.answer(engine.call(Ferry.cancel, [record.id]), timeout=20)
    # A running attempt is flagged: it stops, compensates, and the transfer ends cancelled.
    engine.wait_for(
        lambda _m: _states(engine.received).get("scan.bin") is TransferState.CANCELLED, timeout=20
    )

    assert not any(
        isinstance(m, host.CallReturned | host.CallFailed) and m.call_id == check
        for m in engine.received
    ), "the check was over before the cancel: it proves nothing"
    (ferry_env.paths.data_dir / RELEASE_CHECK).touch()
    report = engine.answer(check)
    assert isinstance(report, CheckReport)


def test_host_stops_cleanly_when_the_window_disappears(running_host: HostProcess) -> None:
    running_host.wait_for(lambda m: isinstance(m, host.HostOpened))
    running_host.commands.close()  # what a killed window leaves behind: a closed pipe
    running_host.process.join(timeout=60)
    assert running_host.process.exitcode == 0
