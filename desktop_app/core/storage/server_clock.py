"""The S3 server's clock, as its answers state it: what bucket times are judged by.

A bucket's times (an object's LastModified, a multipart upload's Initiated)
are written by the server's clock, so a grace period over them is measured
on that clock too, never on this computer's, which may be minutes off. Every
S3 answer carries a ``Date`` header (whole seconds); :class:`ServerClock`
keeps the offset between it and this computer's clock when the answer came.

Promises: :meth:`ServerClock.now` is this computer's time corrected by the
latest offset seen, when that is more than the header can measure (2 s);
:attr:`ServerClock.offset` is None until an answer came; nothing here
sends a request.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

# Beyond this a person is told that the computer's clock is off; S3 itself
# refuses requests signed more than 15 minutes away from its time.
NOTABLE_OFFSET = timedelta(minutes=1)
S3_SKEW_LIMIT = timedelta(minutes=15)
RESOLUTION = timedelta(seconds=2)
log = logging.getLogger(__name__)


def _local_now() -> datetime:
    return datetime.now(UTC)


def describe_offset(offset: timedelta) -> str:
    """'7 min ahead of' / '20 s behind': how this computer's clock stands to the server's."""
    seconds = abs(offset.total_seconds())
    amount = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    # offset = server - local: a positive offset means this computer is behind.
    return f"{amount} {'behind' if offset > timedelta(0) else 'ahead of'}"


class ServerClock:
    """The server's time as its answers' ``Date`` headers tell it."""

    def __init__(self, local: Callable[[], datetime] = _local_now) -> None:
        self._local = local
        # server time minus local time; one reference assignment, so threads
        # observing answers at once need no lock.
        self.offset: timedelta | None = None

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the offset from one answer's headers (no ``Date``: nothing learnt)."""
        stated = headers.get("Date") or headers.get("date")
        if not stated:
            return
        try:
            server = email.utils.parsedate_to_datetime(stated)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            server = server.replace(tzinfo=UTC)
        before = self.notable_offset()
        self.offset = server - self._local()
        said = self.notable_offset()
        if said is not None and before is None:
            log.warning("%s", said)

    def on_answer(self, http_response: Any = None, **_: Any) -> None:
        """A botocore ``after-call`` handler: every answer, error answers included."""
        headers = getattr(http_response, "headers", None)
        if headers is not None:
            self.observe(headers)

    def now(self) -> datetime:
        # A Date header is cut to the second: an offset within RESOLUTION is
        # what it cannot tell from none, and is taken as none.
        offset = self.offset or timedelta(0)
        return self._local() + (offset if abs(offset) > RESOLUTION else timedelta(0))

    def notable_offset(self) -> str | None:
        """'This computer's clock is N min ahead of the server's …', when over a minute off."""
        if self.offset is None or abs(self.offset) < NOTABLE_OFFSET:
            return None
        return (
            f"This computer's clock is {describe_offset(self.offset)} the S3 server's. "
            "Set the date and time right (turn on automatic time): S3 refuses requests "
            f"from a clock more than {S3_SKEW_LIMIT.seconds // 60} minutes off."
        )
