"""A check's disagreements confirmed on a few threads, beside the walk and after it.

The walk over the merged streams meets a disagreement as a
:class:`~desktop_app.core.check.judge.Disagreement`: it may be cleared by a
fresh HEAD (the registered object is there after all), and its repair may
depend on a local copy of the file whose bytes still have the row's
SHA-256. :class:`Confirmations` does that I/O on a small pool of threads
while the walk goes on, and :meth:`Confirmations.resolve` turns each into
its :class:`~desktop_app.core.check.findings.Finding`.

Promises: the findings come back in the walk's order; the journal (the
``local_copies`` look-up, once for every disagreement left after its HEAD)
is read on the walking thread only; an error of a
HEAD or a read is raised from :meth:`Confirmations.resolve`; no thread is
started for a check without disagreements.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from desktop_app.core.catalog.records import FileRecord
from desktop_app.core.check.findings import Finding
from desktop_app.core.check.judge import Disagreement, confirm, still_registered
from desktop_app.core.model.bucket_objects import ObjectInfo

T = TypeVar("T")


@dataclass(frozen=True)
class Unconfirmed:
    """A disagreement met by the walk, its fresh HEAD (if it needs one) under way."""

    disagreement: Disagreement
    fresh: Future[ObjectInfo | None] | None


class Confirmations:
    """Disagreements confirmed on a few threads, beside the walk and after it.

    During the walk a disagreement without a listed object gets its fresh
    HEAD on the pool. :meth:`resolve` then, on the walking thread and in the
    walk's order, drops each one its HEAD cleared (the registered object is
    there after all), asks the journal once for the others' local copies (the
    journal is read on this thread only: a read-only one may live in its
    memory alone), has the copies hashed on the pool, and writes each finding
    in its place. An error of a HEAD or a read is raised there.
    """

    def __init__(
        self,
        head: Callable[[str], ObjectInfo | None],
        local_copies: Callable[[list[str]], dict[str, Path]],
        unchanged: Callable[[Path, FileRecord], Path | None],
        threads: int,
    ) -> None:
        self._head = head
        self._local_copies = local_copies
        self._unchanged = unchanged
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None  # started by the first disagreement

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="ferry-confirm")
        return self._pool.submit(fn, *args)

    def submit(self, disagreement: Disagreement) -> Unconfirmed:
        needs_head = disagreement.needs_head
        fresh = self._submit(self._head, disagreement.key) if needs_head else None
        return Unconfirmed(disagreement, fresh)

    def resolve(self, walked: Iterable[Finding | Unconfirmed]) -> list[Finding]:
        staged: list[Finding | tuple[Disagreement, ObjectInfo | None]] = []
        for item in walked:
            if isinstance(item, Finding):
                staged.append(item)
                continue
            disagreement, obj = item.disagreement, item.disagreement.object
            if item.fresh is not None:
                obj = item.fresh.result()
                if still_registered(obj, disagreement.row):
                    continue
            staged.append((disagreement, obj))
        unsure = [item[0].key for item in staged if not isinstance(item, Finding)]
        copies = self._local_copies(unsure) if unsure else {}
        hashed = [
            item if isinstance(item, Finding) else (*item, self._copy_checked(item[0], copies))
            for item in staged
        ]
        return [
            item if isinstance(item, Finding) else confirm(item[0], item[1], item[2].result())
            for item in hashed
        ]

    def _copy_checked(
        self, disagreement: Disagreement, copies: dict[str, Path]
    ) -> Future[Path | None]:
        """The local copy, once hashed on the pool, if its bytes still have the row's SHA-256."""
        copy = copies.get(disagreement.key)
        return self._submit(self._unchanged, copy, disagreement.row) if copy else _NO_COPY

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


_NO_COPY: Future[Path | None] = Future()
_NO_COPY.set_result(None)


def unchanged(path: Path, row: FileRecord) -> Path | None:
    """The local file, if its bytes still have the row's SHA-256."""
    try:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(8 * 1024 * 1024):
                digest.update(chunk)
    except OSError:
        return None
    return path if digest.hexdigest() == row.sha256 else None
