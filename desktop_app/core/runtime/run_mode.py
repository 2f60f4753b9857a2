"""How long a Ferry runs, and so how long it keeps retrying by itself.

A command that ends (one-shot) makes a few quick retries and then reports;
the window or `ferry watch` (resident) retries for as long as it runs.
A value with its policies; nothing here does I/O.
"""

from __future__ import annotations

import enum

from desktop_app.core.transfers.retry import RetryPolicy
from desktop_app.core.transfers.scheduler import Runs, SchedulerOptions

# Failed attempts after which a command that waits reports a transfer as failed
# (with its next try time); a resident Ferry goes on trying it by itself.
ONE_SHOT_PATIENCE = 5


class RunMode(enum.Enum):
    """How long this Ferry runs, which decides how long it keeps retrying by itself."""

    ONE_SHOT = "one_shot"  # a command that ends: a few quick retries, then report
    RESIDENT = "resident"  # the window or `ferry watch`: retry for as long as it runs

    @property
    def retry(self) -> RetryPolicy:
        if self is RunMode.ONE_SHOT:
            return RetryPolicy(base=0.5, cap=30.0, give_up_after=ONE_SHOT_PATIENCE)
        return RetryPolicy(base=5.0, cap=3600.0)

    def scheduler_options(self, workers: int) -> SchedulerOptions:
        if self is RunMode.ONE_SHOT:
            return SchedulerOptions(workers=workers, probe_interval=5.0, runs=Runs.AWAITED)
        return SchedulerOptions(workers=workers, probe_interval=15.0)
