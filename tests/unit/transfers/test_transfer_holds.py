"""The one registry of who acts on a transfer: a worker or a person, never both."""

from __future__ import annotations

import threading

from desktop_app.core.transfers.holds import TransferHolds


def test_a_worker_hold_is_taken_once_and_a_person_then_gets_its_control() -> None:
    holds = TransferHolds()
    control = holds.take_for_worker(7, small=False)
    assert control is not None
    assert holds.take_for_worker(7) is None  # a second worker is refused
    with holds.for_person([7, 8]) as turn:
        assert turn.running == {7: control}  # the running attempt is flagged, not run beside
        assert turn.mine == [8]
        assert holds.take_for_worker(8) is None  # no worker starts what a person acts on
    assert holds.working() == (1, 1)
    holds.release(7)
    assert holds.ids() == set()
    assert holds.take_for_worker(8) is not None


def test_the_end_of_a_persons_action_wakes_the_scheduler_and_a_workers_does_not() -> None:
    woken: list[bool] = []
    holds = TransferHolds(on_released=lambda: woken.append(True))
    assert holds.take_for_worker(1) is not None
    holds.release(1)
    assert woken == []
    with holds.for_person([1]):
        pass
    assert woken == [True]


def test_a_second_persons_action_on_the_same_transfer_waits_for_the_first() -> None:
    holds = TransferHolds()
    order: list[str] = []
    second_done = threading.Event()

    def second() -> None:
        with holds.for_person([3, 2]) as turn:
            order.append(f"second {turn.mine}")
        second_done.set()

    with holds.for_person([2]) as turn:
        assert turn.mine == [2]
        worker = threading.Thread(target=second)
        worker.start()
        # The second action cannot finish while the first holds transfer 2.
        assert not second_done.wait(0.2)
        order.append("first")
    worker.join(10)
    assert order == ["first", "second [2, 3]"]


def test_waiting_for_a_running_attempt_ends_when_it_is_released() -> None:
    holds = TransferHolds()
    assert holds.take_for_worker(5) is not None
    assert holds.wait_released([5], timeout=0) is False
    releaser = threading.Timer(0.05, holds.release, args=(5,))
    releaser.start()
    assert holds.wait_released([5], timeout=10) is True
    holds.pause_running()  # nothing runs: nothing to flag, no error
