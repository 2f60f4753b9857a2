"""`ferry upload`, `ferry resume` and `ferry status`: sending files and following them.

Upload and resume hand their work to a running Ferry when there is one, else
run it in one of their own. Status only reads (the journal and the outbox's
backlog), beside a running Ferry too, and loads nothing that only sending
needs: no boto3, SQLAlchemy or Alembic (tests/unit/cli/test_cli_entry.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop_app.cli.rendering import (
    EXIT_OK,
    backlog_json,
    is_handed_over,
    is_success,
    report_transfers,
    say,
)
from desktop_app.cli.session import (
    environment,
    find_running,
    hand_to,
    handed_off,
    report_with_history,
    with_ferry,
)
from desktop_app.core.model.errors import FerryError
from desktop_app.core.runtime.status import StatusReader
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.relay_options import describe_nats_url
from desktop_app.core.transfers.sources import printable

if TYPE_CHECKING:
    from desktop_app.core.transfers.prepass import HashesAhead


def _require_paths(paths: Sequence[str]) -> None:
    """Refuse, before anything is queued, named paths that do not exist at all (#17).

    A typo is the command's bad input, not a transfer for the Failed inbox:
    the whole command is refused (exit 2) so that it is run again as meant.
    What is wrong with a file that is there (unreadable, a socket, a link
    loop; a file in a folder) stays that file's failed transfer, never
    stopping the others. A dangling symlink exists: its transfer says why.
    """
    missing = []
    for path in paths:
        try:
            os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            missing.append(printable(path))
        except OSError:
            pass  # there, or not ours to see: its transfer says which
    if missing:
        named = ", ".join(missing)
        raise FerryError(
            f"{named} {'does' if len(missing) == 1 else 'do'} not exist, so nothing was "
            "uploaded. Check the path (a typo?) and run the command again.",
            title="No such file",
        )


def cmd_upload(args: argparse.Namespace) -> int:
    paths = tuple(str(Path(p).expanduser().absolute()) for p in args.paths)
    _require_paths(paths)
    wait = args.wait if args.wait is not None else not sys.stdin.isatty()
    running = find_running(args)
    if running is not None:
        from desktop_app.core.runtime.ferry import Ferry

        # Not waited for, a hand-off that queued every file is the success: the
        # running Ferry uploads them (`ferry status` follows them).
        return hand_to(
            running,
            args,
            lambda f: f.call(Ferry.queue, paths, args.prefix),
            wait=wait,
            succeeded=is_success if wait else is_handed_over,
        )
    # This command sends the files itself: the large ones are read for their
    # pre-pass while the rest of Ferry (boto3, SQLAlchemy, the profile) loads.
    ahead = _hash_ahead(paths, args.profile)
    try:
        return with_ferry(
            args,
            lambda f: report_with_history(f, f.upload(list(paths), args.prefix), args.json),
            hashes_ahead=ahead,
        )
    finally:
        ahead.close()


def _hash_ahead(paths: Sequence[str], profile_name: str | None) -> HashesAhead:
    from desktop_app.core.transfers.options import EngineOptions
    from desktop_app.core.transfers.prepass import HashesAhead

    profile = environment().profile(profile_name)
    threshold = EngineOptions(part_size=profile.part_size).single_put_threshold
    return HashesAhead.of_paths(paths, part_size=profile.part_size, threshold=threshold)


def cmd_resume(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import ONE_SHOT_PATIENCE

    handed = handed_off(
        args, lambda f: f.call(Ferry.resume, patience=ONE_SHOT_PATIENCE), wait=False
    )
    if handed is not None:
        return handed
    return with_ferry(args, lambda f: report_with_history(f, f.resume(), args.json))


def cmd_status(args: argparse.Namespace) -> int:
    """The journal's transfers and the outbox's backlog, read only (beside a running
    Ferry too), with nothing loaded that only sending needs: see core/runtime/status.py."""
    env = environment()
    with StatusReader.open(env, args.profile) as status:
        source = env.describe_profile_source(status.profile)
        if source is not None:
            say(f"{source} S3 credentials from {status.credential_source.value}.")
        records = status.transfers()
        if not args.all:
            records = [r for r in records if not r.state.finished] or records[-20:]
        events = _events_json(status)
        relay = _relay_named(status.profile)
        history = status.attempts([r.id for r in records]) if args.json else None
        report_transfers(records, args.json, history, {"events": events, "relay": relay})
        # A profile with no relay keeps its events for one set up some day: no question (#19).
        if not args.json and events.get("waiting") and relay is not None:
            oldest = events["oldest_waiting"]
            print(
                f"{events['waiting']} catalog event(s) wait for `ferry relay` "
                f"(the oldest since {oldest}); is the relay running?"
            )
        return EXIT_OK


def _relay_named(profile: Profile) -> str | None:
    """Where the profile's relay publishes (FERRY_NATS_URL, else the profile's
    relay_nats_url), without credentials; None when no relay is set up for it."""
    url = os.environ.get("FERRY_NATS_URL") or profile.relay_nats_url
    return describe_nats_url(url) if url else None


def _events_json(status: StatusReader) -> dict[str, Any]:
    """The outbox's backlog, so an admin sees a relay that has stopped."""
    try:
        backlog = status.outbox_backlog()
    except FerryError as exc:
        return {"error": {"title": exc.title, "message": exc.message}}
    return backlog_json(backlog)
