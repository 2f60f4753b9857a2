"""Ferry: put files into an S3-compatible bucket and trust that they arrived."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ferry")
except PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0.0.0+unknown"
