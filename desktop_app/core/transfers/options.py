"""What a profile sets for its transfer engine: part size, concurrency, memory, bandwidth,
retries and duplicates.

A value, read by the engine at each attempt (a test may replace it between
attempts); nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from desktop_app.core.model.sizes import MIB
from desktop_app.core.settings.bandwidth import BandwidthSchedule
from desktop_app.core.settings.profiles import DuplicatePolicy
from desktop_app.core.transfers.retry import RetryPolicy


@dataclass(frozen=True)
class EngineOptions:
    part_size: int = 16 * MIB
    concurrency: int = 8
    memory_budget: int = 64 * MIB
    bandwidth_limit: int = 0
    # Rates by the clock; None: bandwidth_limit at every hour.
    bandwidth_schedule: BandwidthSchedule | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    duplicates: DuplicatePolicy = DuplicatePolicy.COPY

    @property
    def single_put_threshold(self) -> int:
        # Below one part a multipart upload only adds requests; above it,
        # parts give parallelism and resumability.
        return self.part_size
