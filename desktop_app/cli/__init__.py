"""The ``ferry`` command's entry points, kept light.

``ferry --version`` answers from here before anything else is imported (the
commands pull in SQLAlchemy, boto3 and the catalog: about half a second);
every other invocation goes on to :mod:`desktop_app.cli.dispatch`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

_VERSION_FLAGS = (["--version"],)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words in _VERSION_FLAGS:
        from desktop_app import __version__

        print(f"ferry {__version__}")
        return 0
    from desktop_app.cli.dispatch import main as run_command

    return run_command(words)


def main_gui() -> int:
    from desktop_app.cli.dispatch import main_gui as open_window

    return open_window()
