"""Ferry: put files into an S3-compatible bucket and trust that they arrived."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Read when asked (`ferry --version`, the window's About), not at every
    # start: importlib.metadata costs some 30 ms of every command's start-up.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ferry")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "0.0.0+unknown"
