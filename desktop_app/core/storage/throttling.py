"""The server's requests to slow down, counted as they come.

S3 answers 503 SlowDown (other servers: 503 ServiceUnavailable, 429, or a
ThrottlingException) when a client sends more than it can take. botocore
retries such a request by itself, so the caller sees only the last answer;
:class:`ThrottleCount` sees every attempt's, through botocore's
``needs-retry`` event, and counts the throttled ones.

Promises: :attr:`ThrottleCount.count` only grows; observing never changes
whether botocore retries; nothing here sends a request.
"""

from __future__ import annotations

import threading
from typing import Any

_THROTTLE_STATUSES = frozenset({429, 503})
_THROTTLE_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)


class ThrottleCount:
    """How many answers from the server asked Ferry to slow down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # taken only for a throttled answer
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def on_attempt(self, response: Any = None, **_: Any) -> None:
        """botocore's ``needs-retry`` event: one attempt's answer; returns None,
        so botocore's own retry handler decides as it would alone."""
        if response is None:  # no answer: a connection error, not the server's word
            return
        http_response, parsed = response
        code = (parsed or {}).get("Error", {}).get("Code")
        if http_response.status_code in _THROTTLE_STATUSES or code in _THROTTLE_CODES:
            with self._lock:
                self._count += 1
