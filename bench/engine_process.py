"""Peak memory of the window's engine process, fed one file.

The window spawns :func:`desktop_app.core.runtime.host.host_main` and talks to it over
two pipes; this does the same without Qt (the process, its allocator setting
and its engine are the window's own), adds one file, waits until its transfer
has finished and reads the process's peak RSS (``VmHWM``) before stopping it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from rss import high_water_mib

from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime import host
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.facade import FacadeCall
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.settings.paths import FerryPaths
from desktop_app.core.settings.secrets import SecretStore


def measure_engine_process(path: Path, env: dict[str, str]) -> tuple[float, float, bool]:
    """Wall seconds from the file being added to its transfer ending, peak RSS (MiB), done?"""
    os.environ.update(env)  # the spawned child reads its keyring backend from here
    environment = Environment(FerryPaths.from_environment(env), env, SecretStore())
    context = multiprocessing.get_context("spawn")
    command_reader, commands = context.Pipe(duplex=False)
    messages, message_writer = context.Pipe(duplex=False)
    process = context.Process(
        target=host.host_main, args=(command_reader, message_writer, environment, None)
    )
    process.start()
    command_reader.close()
    message_writer.close()
    done = False
    try:
        while not isinstance(message := messages.recv(), host.HostOpened):
            if isinstance(message, host.HostFailed) and message.fatal:
                raise RuntimeError(message.message)
        started = time.perf_counter()
        commands.send(host.HostCall(1, FacadeCall.of(Ferry.queue, [path])))
        deadline = started + 900
        while time.perf_counter() < deadline:
            if not messages.poll(1):
                continue
            message = messages.recv()
            if isinstance(message, host.EngineUpdate):
                ended = [
                    s
                    for s in message.snapshots
                    if s.state.finished or s.state is TransferState.FAILED
                ]
                if ended:
                    done = all(s.state is TransferState.DONE for s in ended)
                    break
        seconds = time.perf_counter() - started
        peak = high_water_mib(process.pid or 0) or 0.0
    finally:
        commands.send(host.Stop())
        process.join(60)
        if process.is_alive():
            process.kill()
    return seconds, peak, done
