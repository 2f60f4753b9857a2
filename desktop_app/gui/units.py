"""Sizes, durations and times as people read them (no Qt: shared by views and notifications)."""

from __future__ import annotations

from datetime import datetime


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def exact_size(size: int) -> str:
    """A size with its exact byte count where rounding hides it.

    '1 byte', '999 bytes', '2.5 MB (2,500,000 bytes)'.
    """
    if size == 1:
        return "1 byte"
    if size < 1000:
        return f"{size} bytes"
    return f"{human_size(size)} ({size:,} bytes)"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def clock_time(moment: datetime) -> str:
    """A moment in local time: the time of day today, else the date too."""
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return f"{local:%H:%M:%S}"
    return f"{local:%Y-%m-%d %H:%M}"
