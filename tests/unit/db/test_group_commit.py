"""Group commit on a real SQLite file: shared commits, and each request's own outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text

from desktop_app.core.db.group_commit import GroupCommitter, Refusal, WriterConnection


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with made.begin() as connection:
        connection.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    yield made
    made.dispose()


def run_alone(_label: str, work: object, engine: Engine) -> object:
    with engine.begin() as connection:
        return work(connection)  # type: ignore[operator]


def insert(key: str, *, then_fail: bool = False, pause: float = 0.0) -> Callable[[Connection], str]:
    def work(connection: Connection) -> str:
        time.sleep(pause)
        connection.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": key})
        if then_fail:
            raise ValueError(f"{key} refused after writing")
        return key

    return work


def keys(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(text("SELECT k FROM t"))}


def submit_while_busy(
    committer: GroupCommitter[Connection], works: Sequence[Callable[[Connection], object]]
) -> list[object]:
    """One slow request holds the writer while the others queue up behind it."""
    outcomes: list[object] = [None] * len(works)

    def call(index: int) -> None:
        try:
            outcomes[index] = committer.run(works[index])
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test reads
            outcomes[index] = exc

    first = threading.Thread(target=committer.run, args=(insert("slow", pause=0.5),))
    first.start()
    time.sleep(0.1)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in [first, *threads]:
        thread.join()
    return outcomes


def test_requests_waiting_together_share_one_commit(engine: Engine) -> None:
    commits: list[int] = []
    event.listen(engine, "commit", lambda _connection: commits.append(1))
    committer = GroupCommitter(
        engine.begin, lambda label, work: run_alone(label, work, engine), name="t", most=64
    )
    try:
        outcomes = submit_while_busy(committer, [insert(f"k{n}") for n in range(10)])
    finally:
        committer.stop()
    assert outcomes == [f"k{n}" for n in range(10)]
    assert keys(engine) == {"slow", *(f"k{n}" for n in range(10))}
    assert len(commits) == 2  # the slow one alone, then the ten together


def test_one_requests_error_is_its_own_and_its_writes_are_not_kept(engine: Engine) -> None:
    committer = GroupCommitter(
        engine.begin, lambda label, work: run_alone(label, work, engine), name="t", most=64
    )
    works = [insert(f"k{n}", then_fail=n == 4) for n in range(8)]
    try:
        outcomes = submit_while_busy(committer, works)
    finally:
        committer.stop()
    assert isinstance(outcomes[4], ValueError)
    assert [o for n, o in enumerate(outcomes) if n != 4] == [f"k{n}" for n in range(8) if n != 4]
    assert keys(engine) == {"slow", *(f"k{n}" for n in range(8) if n != 4)}


def refuse(key: str) -> Callable[[Connection], str]:
    def work(connection: Connection) -> str:
        connection.execute(text("SELECT k FROM t WHERE k = :k"), {"k": key})
        raise Refusal(LookupError(f"{key} is taken"))

    return work


def test_a_refusal_is_its_own_and_the_others_share_their_commit(engine: Engine) -> None:
    """A request that refuses before writing costs the others nothing: they are
    committed together, not run again one by one, and its caller gets its verdict."""
    commits: list[int] = []
    alone: list[str] = []
    event.listen(engine, "commit", lambda _connection: commits.append(1))

    def run_alone_counted(label: str, work: object) -> object:
        alone.append(label)
        return run_alone(label, work, engine)

    committer = GroupCommitter(engine.begin, run_alone_counted, name="t", most=64)
    works = [refuse("k3") if n == 3 else insert(f"k{n}") for n in range(8)]
    try:
        outcomes = submit_while_busy(committer, works)
    finally:
        committer.stop()
    assert isinstance(outcomes[3], LookupError)
    assert str(outcomes[3]) == "k3 is taken"
    assert [o for n, o in enumerate(outcomes) if n != 3] == [f"k{n}" for n in range(8) if n != 3]
    assert keys(engine) == {"slow", *(f"k{n}" for n in range(8) if n != 3)}
    assert len(commits) == 2  # the slow one alone, then the seven together
    assert alone == [""]  # the slow one only: the seven and the refusal were not run again


def test_the_writer_keeps_one_connection_and_drops_it_after_an_error(engine: Engine) -> None:
    checkouts: list[int] = []
    event.listen(engine, "checkout", lambda *_args: checkouts.append(1))
    writer = WriterConnection(engine)
    committer = GroupCommitter(
        writer.begin,
        lambda _label, work: run_alone_with(writer, work),
        name="t",
        most=64,
    )
    try:
        for n in range(5):
            committer.run(insert(f"k{n}"))
        with pytest.raises(ValueError, match="refused after writing"):
            committer.run(insert("refused", then_fail=True))
        committer.run(insert("after"))
    finally:
        committer.stop()
        writer.close()
    # Every committed write is seen by another connection; the refused one was rolled back.
    assert keys(engine) == {"after", *(f"k{n}" for n in range(5))}
    # One connection for the first six transactions, a new one after the error.
    assert len(checkouts) == 2 + 1  # the writer's two, and keys()'s


def run_alone_with(writer: WriterConnection, work: object) -> object:
    with writer.begin() as connection:
        return work(connection)  # type: ignore[operator]
