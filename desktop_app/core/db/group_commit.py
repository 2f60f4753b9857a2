"""Group commit: the writes of many threads share one transaction and one commit.

Journal and catalog both write a little for every file; alone, each write is
a transaction with its own commit (and, for SQLite, its own fsync), which
for thousands of small files costs more than sending them. A
:class:`GroupCommitter` has one writer thread that takes every request
waiting and runs them in one transaction. Promises:

- nothing is reported before it is committed: a caller waits for the commit
  of the transaction that holds its request;
- a request's outcome is the one it would have had alone: if anything in a
  shared transaction fails (one request's error, a lost connection, a busy
  database), the whole transaction is rolled back and every request in it
  runs again alone through ``run_alone``, so each gets its own answer and no
  request's partial writes are committed with the others';
- but a request whose work raises :class:`Refusal` (a verdict it reached
  before writing anything: a key taken by someone else, say) costs the
  others nothing: its caller gets the verdict, and the group goes on. Where
  one client in a team meets the others' keys, a refusal in most groups
  made each of them run again alone;
- requests run in the order of their ``order`` string (the key they lock),
  so that two clients' groups take per-key locks in the same order;
- a request that finds the queue empty runs at once: grouping adds no wait.

A :class:`WriterConnection` is the one database connection such a writer
thread keeps across its transactions.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

T = TypeVar("T")
Tx = TypeVar("Tx")


class Refusal(Exception):
    """Raised by a request's work that wrote nothing in the transaction and
    refuses: its caller gets ``error``, and the work shared with it goes on."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Request(Generic[Tx]):
    label: str  # what the request does, for errors of its own transaction
    order: str
    work: Callable[[Tx], Any]
    future: Future[Any] = field(default_factory=Future)


class GroupCommitter(Generic[Tx]):
    """One writer thread running requests of many threads in shared transactions."""

    def __init__(
        self,
        begin: Callable[[], AbstractContextManager[Tx]],
        run_alone: Callable[[str, Callable[[Tx], Any]], Any],
        *,
        name: str,
        most: int,
    ) -> None:
        """``begin`` opens one transaction (committed when its block ends without error);
        ``run_alone`` runs one request in a transaction of its own, raising its error."""
        self._begin = begin
        self._run_alone = run_alone
        self._most = most
        self._queue: queue.SimpleQueue[_Request[Tx] | None] = queue.SimpleQueue()
        # Started by the first request: a catalog opened only to read needs no thread.
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._start_lock = threading.Lock()

    def run(self, work: Callable[[Tx], T], *, label: str = "", order: str = "") -> T:
        """Run ``work`` in a shared transaction; its result once committed, or its error."""
        if self._thread.ident is None:
            with self._start_lock:
                if self._thread.ident is None:
                    self._thread.start()
        request: _Request[Tx] = _Request(label, order, work)
        self._queue.put(request)
        try:
            result: T = request.future.result()
        except Refusal as refusal:
            raise refusal.error from None
        return result

    @property
    def thread(self) -> threading.Thread:
        """The writer thread (not started until the first request)."""
        return self._thread

    def stop(self) -> None:
        """Finish what was asked, then end the writer thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self._most:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            group.sort(key=lambda request: request.order)
            self._run_group(group)
            if stop:
                return

    def _run_group(self, group: list[_Request[Tx]]) -> None:
        if len(group) > 1:
            try:
                with self._begin() as transaction:
                    outcomes = [_outcome(request, transaction) for request in group]
            except Exception:  # noqa: BLE001 - one of them failed: each is run alone below
                pass
            else:
                for request, (result, refusal) in zip(group, outcomes, strict=True):
                    if refusal is None:
                        request.future.set_result(result)
                    else:
                        request.future.set_exception(refusal)
                return
        for request in group:
            try:
                request.future.set_result(self._run_alone(request.label, request.work))
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                request.future.set_exception(exc)


def _outcome(request: _Request[Tx], transaction: Tx) -> tuple[Any, Refusal | None]:
    try:
        return request.work(transaction), None
    except Refusal as refusal:
        return None, refusal


class WriterConnection:
    """The one connection a writer thread keeps across its transactions.

    Taking a pooled connection and giving it back (with the pool's reset)
    for every group cost more CPU than the statements of a small file's
    write. Promises: each ``begin`` block is one transaction, committed when
    the block ends without error; after any error the connection is closed
    and the next block opens a new one, so a broken connection is never
    reused. Only the writer thread uses it; ``close`` is for after that
    thread has ended.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        if self._connection is None:
            self._connection = self._engine.connect()
        connection = self._connection
        try:
            with connection.begin():
                yield connection
        except BaseException:
            self._connection = None
            connection.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
