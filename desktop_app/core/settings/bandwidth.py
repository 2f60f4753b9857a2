"""Bandwidth by the clock: a profile's schedule of upload rates over the day.

A schedule is written as comma-separated ranges of local time, each with a
rate: ``"08:00-18:00 2MiB/s, 18:00-08:00 off"`` (seconds, ``08:00:30``, may be
given too). ``off`` means no limit (as in
rclone's timetable); a range may wrap past midnight; a time no range covers
takes the profile's plain ``bandwidth_limit``. Rates take the units B, KiB,
MiB, GiB (1024-based; ``k``, ``M``, ``G`` are read the same way, as rclone
does) with an optional ``/s``. Gaps between ranges are allowed and take the
fallback. Parsing is the whole validation: a schedule that parses has a rate
for every moment of the day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time

from desktop_app.core.model.errors import ConfigError

_CLOCK = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"
_RANGE = re.compile(rf"^{_CLOCK}\s*-\s*{_CLOCK}\s+(\S+)$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?(?:/s)?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
UNLIMITED = 0


@dataclass(frozen=True)
class RateWindow:
    """From ``start`` (inclusive) to ``end`` (exclusive) local time: ``rate`` bytes/s, 0 = none."""

    start: time
    end: time
    rate: int

    def covers(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        # Wraps past midnight (or, start == end, the whole day).
        return moment >= self.start or moment < self.end


@dataclass(frozen=True)
class BandwidthSchedule:
    """Rates by local time of day; the first window covering a moment decides."""

    windows: tuple[RateWindow, ...]
    fallback: int = UNLIMITED

    @classmethod
    def parse(cls, text: str, fallback: int = UNLIMITED) -> BandwidthSchedule:
        windows = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            match = _RANGE.match(entry)
            if match is None:
                raise ConfigError(
                    f"bandwidth schedule: {entry!r} is not 'HH:MM-HH:MM RATE' "
                    "(e.g. '08:00-18:00 2MiB/s, 18:00-08:00 off')."
                )
            start = _clock_time(match[1], match[2], match[3], entry)
            end = _clock_time(match[4], match[5], match[6], entry)
            windows.append(RateWindow(start, end, parse_rate(match[7])))
        return cls(tuple(windows), fallback)

    def rate_at(self, moment: datetime) -> int:
        """The limit in bytes per second at a moment (its local wall-clock time); 0 = none."""
        wall = moment.astimezone().time() if moment.tzinfo is not None else moment.time()
        for window in self.windows:
            if window.covers(wall):
                return window.rate
        return self.fallback


def _clock_time(hours: str, minutes: str, seconds: str | None, entry: str) -> time:
    hour, minute, second = int(hours), int(minutes), int(seconds or 0)
    if (hour, minute, second) == (24, 0, 0):
        return time(0, 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ConfigError(f"bandwidth schedule: {entry!r} names a time that does not exist.")
    return time(hour, minute, second)


def parse_rate(text: str) -> int:
    """'2MiB/s', '512k', '1.5M', 'off' -> bytes per second (0 for off)."""
    if text.lower() in ("off", "unlimited", "none"):
        return UNLIMITED
    match = _RATE.match(text)
    if match is None:
        raise ConfigError(
            f"bandwidth schedule: {text!r} is not a rate (e.g. 512KiB/s, 2MiB/s, off)."
        )
    unit = (match[2] or "").lower()[:1]
    rate = int(float(match[1]) * _UNITS[unit])
    if rate <= 0:
        raise ConfigError(f"bandwidth schedule: {text!r} is no rate; write 'off' for no limit.")
    return rate
