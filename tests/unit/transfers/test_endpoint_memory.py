"""What endpoints showed a probe: kept in one file, learnt once, probed again when told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop_app.core.model.errors import StorageError, StorageErrorKind
from desktop_app.core.transfers.endpoint_memory import EndpointMemory, LearntOnce


def bool_memory(file: Path | None) -> EndpointMemory[bool]:
    return EndpointMemory[bool](
        file, format=1, encode=lambda v: {"v": v}, decode=lambda e: bool(e["v"])
    )


def test_the_file_is_kept_whole_and_another_format_is_read_as_nothing(tmp_path: Path) -> None:
    file = tmp_path / "facts.json"
    bool_memory(file).put("a:1", True)
    bool_memory(file).put("b:2", False)
    assert json.loads(file.read_text()) == {
        "format": 1,
        "endpoints": {"a:1": {"v": True}, "b:2": {"v": False}},
    }
    assert bool_memory(file).get("b:2") is False
    other = EndpointMemory[bool](file, format=2, encode=lambda v: {"v": v}, decode=bool)
    assert other.get("a:1") is None  # a Ferry whose probe asked something else
    file.write_text("{ not json")
    assert bool_memory(file).get("a:1") is None  # unreadable: probed again
    assert not list(tmp_path.glob(".*.tmp"))


class Probe:
    def __init__(self, *answers: bool | StorageError) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, StorageError):
            raise answer
        return answer


def learnt(probe: Probe, memory: EndpointMemory[bool], now: list[float]) -> LearntOnce[bool]:
    failures: list[StorageError] = []
    return LearntOnce[bool](
        recall=lambda: memory.get("e"),
        probe=probe,
        keep=lambda fact: memory.put("e", fact),
        may_probe=lambda: True,
        failed=failures.append,
        retry_after=60.0,
        monotonic=lambda: now[0],
    )


@pytest.mark.parametrize(
    ("kind", "again_after_a_minute"),
    [(StorageErrorKind.TRANSIENT, True), (StorageErrorKind.PERMANENT, False)],
)
def test_a_failed_probe_is_not_remembered_and_tried_again_only_when_transient(
    kind: StorageErrorKind, again_after_a_minute: bool
) -> None:
    now = [0.0]
    memory = bool_memory(None)
    probe = Probe(StorageError("no answer", kind=kind), True)
    fact = learnt(probe, memory, now)
    assert fact.get() is None
    assert fact.get() is None  # not again at once
    assert probe.calls == 1
    assert memory.get("e") is None
    now[0] = 61.0
    assert fact.get() is (True if again_after_a_minute else None)
    assert probe.calls == (2 if again_after_a_minute else 1)


def test_what_is_known_is_not_probed_and_forgetting_probes_again() -> None:
    now = [0.0]
    memory = bool_memory(None)
    memory.put("e", False)
    probe = Probe(True)
    fact = learnt(probe, memory, now)
    assert fact.get() is False  # from the memory: no probe
    assert probe.calls == 0
    assert fact.forget() is False
    memory.forget("e")
    assert fact.get() is True
    assert probe.calls == 1
    assert memory.get("e") is True
