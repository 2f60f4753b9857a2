"""How a command reaches Ferry: handed to the one running, or with one of its own.

A command that works on transfers first looks for a running Ferry (the
window's, or `ferry watch`) and hands its work over (:func:`handed_off`);
only when none runs does it open one (:func:`with_ferry`), which shows upload
progress on stderr while it works and is closed when the command ends.
:func:`environment` is where every command's paths, variables and keyring
come from.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from desktop_app.cli.rendering import is_success, report_transfers, say
from desktop_app.core.journal.records import TransferRecord
from desktop_app.core.model.events import EngineEvent, TransferProgress
from desktop_app.core.model.sizes import MIB
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.settings.paths import FerryPaths
from desktop_app.core.settings.secrets import SecretStore

# What only the commands that upload, delete, list, check or watch need (boto3,
# SQLAlchemy, Alembic, the engine) is imported inside them: `ferry status`
# loads none of it (tests/unit/cli/test_cli_entry.py).
if TYPE_CHECKING:
    from desktop_app.core.runtime.control import RunningFerry
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import RunMode
    from desktop_app.core.transfers.prepass import HashesAhead


log = logging.getLogger("ferry")


def environment() -> Environment:
    """The paths, variables and keyring a command runs with."""
    return Environment(FerryPaths.from_environment(os.environ), os.environ, SecretStore())


class _ProgressLine:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._done: dict[int, int] = {}
        self._total: dict[int, int] = {}
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        if not self.enabled or not isinstance(event, TransferProgress):
            return
        with self._lock:
            self._done[event.transfer_id] = event.bytes_done
            self._total[event.transfer_id] = event.bytes_total
            done, total = sum(self._done.values()), sum(self._total.values())
        sys.stderr.write(f"\r{done / MIB:10.1f} / {total / MIB:.1f} MiB ")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self._done:
            sys.stderr.write("\n")


def with_ferry(
    args: argparse.Namespace,
    work: Callable[[Ferry], int],
    mode: RunMode | None = None,
    *,
    read_only: bool = False,
    hashes_ahead: HashesAhead | None = None,
) -> int:
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import RunMode

    env = environment()
    ferry = Ferry.open(
        env,
        args.profile,
        mode=mode or RunMode.ONE_SHOT,
        read_only=read_only,
        hashes_ahead=hashes_ahead,
    )
    source = env.describe_profile_source(ferry.profile)
    if source is not None:
        say(f"{source} S3 credentials from {ferry.credential_source.value}.")
    progress = _ProgressLine()
    unsubscribe = ferry.bus.subscribe(progress)
    try:
        return work(ferry)
    finally:
        unsubscribe()
        progress.finish()
        ferry.close()


def find_running(args: argparse.Namespace) -> RunningFerry | None:
    """The running Ferry (the window's, or `ferry watch`) to hand this command to;
    None when none runs and the command runs on its own."""
    from desktop_app.core.runtime.control import RunningFerry, endpoint_address

    address = endpoint_address(FerryPaths.from_environment(os.environ).data_dir)
    running = RunningFerry.find(address, args.profile)
    if running is not None:
        log.info("Handed to the running Ferry at %s", address)
    return running


def handed_off(
    args: argparse.Namespace,
    act: Callable[[RunningFerry], list[TransferRecord]],
    *,
    wait: bool,
    succeeded: Callable[[TransferRecord], bool] = is_success,
) -> int | None:
    """Do ``act`` in a running Ferry (waiting, if asked, as a command alone would) and
    print the transfers it touched, judged by ``succeeded``; None when none runs."""
    running = find_running(args)
    if running is None:
        return None
    return hand_to(running, args, act, wait=wait, succeeded=succeeded)


def hand_to(
    running: RunningFerry,
    args: argparse.Namespace,
    act: Callable[[RunningFerry], list[TransferRecord]],
    *,
    wait: bool,
    succeeded: Callable[[TransferRecord], bool] = is_success,
) -> int:
    """:func:`handed_off` to a running Ferry already found."""
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import ONE_SHOT_PATIENCE

    records = act(running)
    ids = [r.id for r in records]
    if wait:
        records = running.call(Ferry.wait, ids, patience=ONE_SHOT_PATIENCE)
    history = running.call(Ferry.attempts, ids)
    return report_transfers(records, args.json, history, succeeded=succeeded)


def report_with_history(
    ferry: Ferry,
    records: Sequence[TransferRecord],
    as_json: bool,
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Print the transfers, each with its attempts when ``--json`` asks for them."""
    history = ferry.attempts([r.id for r in records]) if as_json else None
    return report_transfers(records, as_json, history, extra)
