"""The one retry policy: how soon a transfer that failed for a passing reason is tried
again, and how many tries a run makes before it leaves the transfer for later.

The engine asks it for the next try time of each failure; the scheduler asks
it whether a waiter should stop waiting (and stops picking the transfer in
this run). A run that ends (``ferry upload``) tries a few times quickly; a
long-running window or ``ferry watch`` tries for as long as it runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Growing delays between automatic tries of a transfer that failed transiently.

    The n-th consecutive failure waits ``base * 2**(n-1)`` seconds, at most
    ``cap``, times a jitter between 0.5 and 1 so that many transfers failing
    together do not come back together. ``give_up_after`` failed attempts in
    one run leave the transfer failed, with its next try time, for the next
    Ferry that runs; None: try for as long as this one runs.
    """

    base: float = 5.0
    cap: float = 3600.0
    give_up_after: int | None = None

    def delay(self, attempt: int, jitter: float) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return float(ceiling * (0.5 + 0.5 * jitter))

    def gave_up(self, failures_in_this_run: int) -> bool:
        return self.give_up_after is not None and failures_in_this_run >= self.give_up_after
