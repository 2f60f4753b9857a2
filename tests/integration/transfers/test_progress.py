"""Progress counted as the connection takes the bytes, against a real weed mini.

Through the fault proxy (tests/faults.py), a server that stops taking a
part's body part-way is seen as such: the count stops inside the part (not at
a part's end), the events say a request is out, and the upload goes on when
the server does.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desktop_app.core.model.events import TransferProgress
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from tests.faults import Fault, FaultProxy, is_part_upload, is_put
from tests.integration.transfers.test_engine import write_random

MIB = 1024 * 1024


@pytest.fixture
def proxied_ferry(proxy_profile: Callable[..., None], ferry_env: Environment) -> Iterator[Ferry]:
    proxy_profile(part_size=32 * MIB, concurrency=1, memory_budget=64 * MIB)
    app = Ferry.open(ferry_env)
    yield app
    app.close()


class Recorder:
    """Progress events with the time each was published."""

    def __init__(self) -> None:
        self.events: list[tuple[float, TransferProgress]] = []
        self.lock = threading.Lock()

    def __call__(self, event: object) -> None:
        if isinstance(event, TransferProgress):
            with self.lock:
                self.events.append((time.monotonic(), event))


def test_a_server_that_stops_taking_a_part_stops_the_count_inside_the_part(
    proxied_ferry: Ferry, proxy: FaultProxy, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    write_random(path, 64 * MIB, 1)
    stall = 4.0
    proxy.faults.append(Fault(is_part_upload, "stall", delay=stall, after=MIB))
    recorder = Recorder()
    proxied_ferry.bus.subscribe(recorder)
    [record] = proxied_ferry.upload([path])
    assert record.state is TransferState.DONE, record.error
    events = [e for _t, e in recorder.events]
    # The first part is counted as it goes, not when it is answered: the count
    # stood inside it while the server took nothing (the socket buffers full),
    # a request out all along, and went on when the server did.
    times = [t for t, _e in recorder.events]
    gap, at = max((b - a, n) for n, (a, b) in enumerate(itertools.pairwise(times)))
    assert gap >= stall - 1.0, "the count did not stop"
    stood = events[at]
    assert stood.sending
    assert 0 < stood.bytes_done < 32 * MIB
    assert events[at + 1].bytes_done > stood.bytes_done
    last = events[-1]
    assert last.bytes_done == last.bytes_total == 64 * MIB
    assert not last.sending


def test_a_request_not_answered_takes_its_bytes_back(
    proxied_ferry: Ferry, proxy: FaultProxy, tmp_path: Path
) -> None:
    path = tmp_path / "small.bin"
    write_random(path, 3 * MIB, 2)
    proxy.faults.append(Fault(is_put, "reset", times=1000))
    recorder = Recorder()
    proxied_ferry.bus.subscribe(recorder)
    [record] = proxied_ferry.upload([path])
    assert record.state is TransferState.FAILED
    events = [e for _t, e in recorder.events]
    assert events
    assert events[-1].bytes_done == 0
    assert not events[-1].sending
