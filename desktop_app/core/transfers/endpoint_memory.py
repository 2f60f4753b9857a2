"""What each endpoint showed a probe, kept by endpoint in one small JSON file.

The write-protection probe and the checksum probe each learn a fact about a
server once and keep it in the data dir, so that later runs and other
profiles on the same server probe nothing. This is the one place that file
is read and written. Promises:

- the file is replaced whole (written beside it, then renamed): another Ferry
  reading it never sees half of it;
- a file of another ``format`` (written by a Ferry whose probe asked
  something else), or one that cannot be read, is read as nothing learnt: the
  endpoints are probed again, never trusted on a guess;
- a file that cannot be written costs only the memory: a warning, and the
  fact is still known for this run;
- with no file (tests, tools), the facts are kept in memory.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from desktop_app.core.model.errors import StorageError, StorageErrorKind

log = logging.getLogger(__name__)
Fact = TypeVar("Fact")


class EndpointMemory(Generic[Fact]):
    """One fact per endpoint; ``encode``/``decode`` turn a fact into its JSON entry."""

    def __init__(
        self,
        file: Path | None,
        *,
        format: int,
        encode: Callable[[Fact], dict[str, Any]],
        decode: Callable[[dict[str, Any]], Fact],
    ) -> None:
        self.file = file
        self.format = format
        self._encode = encode
        self._decode = decode
        self._lock = threading.Lock()
        self._memory: dict[str, Fact] = {}

    def _read(self) -> dict[str, Fact]:
        if self.file is None:
            return dict(self._memory)
        try:
            raw = json.loads(self.file.read_text())
            if raw.get("format") != self.format:
                log.info("%s was written by another Ferry; endpoints are probed again", self.file)
                return {}
            return {str(k): self._decode(v) for k, v in raw.get("endpoints", {}).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s cannot be read (%s); endpoints are probed again", self.file, exc)
            return {}

    def _write(self, found: dict[str, Fact]) -> None:
        if self.file is None:
            self._memory = dict(found)
            return
        document = {
            "format": self.format,
            "endpoints": {k: self._encode(v) for k, v in sorted(found.items())},
        }
        temporary = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(document, indent=2))
            os.replace(temporary, self.file)  # never half a file for another Ferry to read
        except OSError as exc:
            log.warning("What the endpoints showed could not be kept in %s: %s", self.file, exc)

    def get(self, endpoint: str) -> Fact | None:
        with self._lock:
            return self._read().get(endpoint)

    def put(self, endpoint: str, fact: Fact) -> None:
        with self._lock:
            found = self._read()
            found[endpoint] = fact
            self._write(found)

    def forget(self, endpoint: str) -> None:
        with self._lock:
            found = self._read()
            if found.pop(endpoint, None) is not None:
                self._write(found)


class LearntOnce(Generic[Fact]):
    """One fact about an endpoint, found out by a probe at most once; thread-safe.

    Promises: what this run or the memory already knows is answered without a
    probe; a probe that failed on a transient error is tried again after
    ``retry_after`` seconds, after any other failure not again in this run (and
    neither failure is remembered); where ``may_probe`` says no (a bucket under
    Object Lock, whose probe object could not be deleted), nothing is probed in
    this run. None means "not known": the caller takes the cautious path.
    """

    def __init__(
        self,
        *,
        recall: Callable[[], Fact | None],
        probe: Callable[[], Fact],
        keep: Callable[[Fact], None],
        may_probe: Callable[[], bool],
        failed: Callable[[StorageError], None],
        retry_after: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._recall = recall
        self._probe = probe
        self._keep = keep
        self._may_probe = may_probe
        self._failed = failed
        self._retry_after = retry_after
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._known: Fact | None = None
        self._next_probe = -float("inf")

    def get(self) -> Fact | None:
        known = self._known
        if known is not None:
            # Every file asks; once known, 64 workers need not queue on the lock
            # (one of them losing the GIL while holding it stalled the rest).
            return known
        with self._lock:
            if self._known is not None:
                return self._known
            self._known = self._recall()
            if self._known is not None or self._monotonic() < self._next_probe:
                return self._known
            if not self._may_probe():
                self._next_probe = float("inf")
                return None
            try:
                found = self._probe()
            except StorageError as exc:
                transient = exc.kind is StorageErrorKind.TRANSIENT
                self._next_probe = (
                    self._monotonic() + self._retry_after if transient else float("inf")
                )
                self._failed(exc)
                return None
            self._keep(found)
            self._known = found
            return found

    def forget(self) -> Fact | None:
        """Know nothing again (the next :meth:`get` probes); what was known."""
        with self._lock:
            known, self._known = self._known, None
            self._next_probe = -float("inf")
            return known
