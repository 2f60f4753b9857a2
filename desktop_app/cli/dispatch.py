"""``ferry ARGS``: parse, start logging and run the command's handler; or open the window.

The ``ferry`` command is thin over :class:`desktop_app.core.runtime.ferry.Ferry`.
``ferry`` alone, and ``ferry FILE...`` as the desktop launcher runs it, open
the window. A :class:`FerryError` from a command is one line on stderr (with
``--json`` also an ``{"error": ...}`` document on stdout) and exit 2; Ctrl-C
exits 130 saying how to go on. What is printed and the other exit statuses:
:mod:`desktop_app.cli.rendering`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from desktop_app.cli.parser import build_parser
from desktop_app.cli.rendering import EXIT_ERROR, emit, say
from desktop_app.cli.session import environment
from desktop_app.core.model.errors import FerryError
from desktop_app.core.runtime.allocator import fix_mmap_threshold
from desktop_app.core.runtime.logs import configure_logging
from desktop_app.core.settings.paths import FerryPaths

log = logging.getLogger("ferry")


def _start_logging(verbose: bool = False) -> None:
    """Warnings on stderr and INFO in the log file; ``-v``: INFO on stderr, DEBUG in the file."""
    paths = FerryPaths.from_environment(os.environ)
    try:
        paths.ensure_log_dir()
        configure_logging(
            paths.log_file,
            stderr_level=logging.INFO if verbose else logging.WARNING,
            file_level=logging.DEBUG if verbose else logging.INFO,
        )
    except OSError as exc:
        say(f"ferry: cannot write logs to {paths.log_dir}: {exc.strerror}")
    except FerryError as exc:  # a folder another user can change: no log written there
        say(f"ferry: {exc.title}: {exc.message}")


def main(argv: Sequence[str] | None = None) -> int:
    fix_mmap_threshold()
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    commands = {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }
    if (
        words
        and words[0] not in commands
        and all(not w.startswith("-") and Path(w).exists() for w in words)
    ):
        # `ferry FILE...`, as the desktop launcher runs it: the window, with those files.
        _start_logging()
        return _open_window(None, [Path(w) for w in words])
    args = parser.parse_args(words)
    _start_logging(args.verbose)
    if args.command is None:
        return _open_window(args.profile)
    try:
        result: int = args.handler(args)
        return result
    except FerryError as exc:
        if getattr(args, "json", False):
            emit({"error": {"title": exc.title, "message": exc.message}})
        say(f"ferry: {exc.title}: {exc.message}")
        log.debug("Command failed", exc_info=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        say("ferry: interrupted; unfinished transfers resume with `ferry resume`.")
        return 130


def _open_window(profile_name: str | None, paths: Sequence[Path] = ()) -> int:
    """The window; a configuration it cannot start with (a keyring backend that
    cannot be loaded) is one line on stderr, as for a command, never a traceback."""
    from desktop_app.gui.app import run_gui

    try:
        env = environment()
    except FerryError as exc:
        say(f"ferry: {exc.title}: {exc.message}")
        log.debug("The window could not start", exc_info=True)
        return EXIT_ERROR
    return run_gui(env, profile_name, paths)


def main_gui() -> int:
    fix_mmap_threshold()
    _start_logging()
    return _open_window(None)
