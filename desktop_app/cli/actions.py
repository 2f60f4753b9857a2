"""A person's actions on transfers named by ID: retry, resolve, cancel, pause, clear.

Each refuses IDs the journal does not hold before it does anything (exit 2),
then acts in the running Ferry when there is one, else in one of its own;
the outcome is judged alike either way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from desktop_app.cli.journal_file import journal_records, require_transfers
from desktop_app.cli.rendering import EXIT_FAILED, EXIT_OK, emit, is_ended, report_transfers, say
from desktop_app.cli.session import find_running, handed_off, with_ferry
from desktop_app.core.journal.records import AttemptRecord, TransferRecord
from desktop_app.core.model.errors import FerryError
from desktop_app.core.model.failures import ConflictChoice
from desktop_app.core.model.states import TransferState

# The engine is imported inside the handlers, for start-up (see session.py).
if TYPE_CHECKING:
    from desktop_app.core.model.bucket_objects import ObjectInfo
    from desktop_app.core.runtime.ferry import Ferry


def cmd_retry(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import ONE_SHOT_PATIENCE

    if not args.ids and not args.failed:
        raise FerryError("Say which transfers to retry: IDs, or --failed for all failed ones.")
    ids = None if args.failed else args.ids
    require_transfers(ids or (), "retried")
    running = find_running(args)
    if running is not None:
        retried = running.call(Ferry.retry, ids)
        records = running.call(Ferry.wait, [r.id for r in retried], patience=ONE_SHOT_PATIENCE)
        history = running.call(Ferry.attempts, [r.id for r in records])
        return _report_retried(args, records, history)

    def work(ferry: Ferry) -> int:
        records = ferry.wait([r.id for r in ferry.retry(ids)])
        history = ferry.attempts([r.id for r in records]) if args.json else {}
        return _report_retried(args, records, history)

    return with_ferry(args, work)


def cmd_resolve(args: argparse.Namespace) -> int:
    """A person's answer to a conflict; the transfer then runs as a retry does."""
    choice = ConflictChoice(args.choice)
    require_transfers([args.id], "resolved")
    [record] = journal_records([args.id])
    running = find_running(args)
    if running is not None:
        return _resolve(args, record, choice, lambda method, *a, **k: running.call(method, *a, **k))
    return with_ferry(
        args, lambda ferry: _resolve(args, record, choice, lambda m, *a, **k: m(ferry, *a, **k))
    )


def _resolve(
    args: argparse.Namespace,
    record: TransferRecord,
    choice: ConflictChoice,
    call: Callable[..., Any],
) -> int:
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import ONE_SHOT_PATIENCE

    seen: str | None = None
    if choice is ConflictChoice.REPLACE:
        found: ObjectInfo | None = call(Ferry.head, record.key)
        if found is not None:
            if not _replace_confirmed(args, record, found):
                say("Nothing was changed.")
                return EXIT_FAILED
            seen = found.etag  # only this object: one written after it is never replaced
    resolved: TransferRecord = call(Ferry.resolve, record.id, choice, seen)
    if choice is ConflictChoice.SKIP:
        if not args.json:
            say(f"Skipped: nothing was uploaded; the object at {record.key!r} was left as it is.")
        return report_transfers([resolved], args.json, call(Ferry.attempts, [record.id]),
                                succeeded=is_ended)  # fmt: skip
    if not args.json:
        say(f"Uploading {record.source_path} as {resolved.key!r}.")
    records = call(Ferry.wait, [record.id], patience=ONE_SHOT_PATIENCE)
    return report_transfers(records, args.json, call(Ferry.attempts, [record.id]))


def _replace_confirmed(args: argparse.Namespace, record: TransferRecord, found: ObjectInfo) -> bool:
    """Say what is lost; ask unless --yes (with no terminal to ask: refused)."""
    when = found.last_modified.astimezone().strftime("%Y-%m-%d %H:%M")
    what = (
        f"The object at {record.key!r} ({found.size} bytes, written {when}, not by Ferry) "
        f"will be replaced by {record.source_path}; its bytes are lost unless the bucket "
        "keeps versions."
    )
    say(what)
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise FerryError(
            f"{what} Add --yes to replace it; nothing was changed.", title="Confirmation needed"
        )
    return input("Replace it? [y/N] ").strip().lower() in ("y", "yes")


_NOTHING_TO_RETRY = {
    TransferState.DONE: "is done (uploaded and verified)",
    TransferState.DUPLICATE: "is done (the file was already stored)",
    TransferState.CANCELLED: "was cancelled (`ferry upload` sends the file again)",
    TransferState.FAILED: "is being tried again already",
}


def _report_retried(
    args: argparse.Namespace,
    records: Sequence[TransferRecord],
    history: Mapping[int, Sequence[AttemptRecord]],
) -> int:
    """The retried transfers as they ended, and why each other one named was not retried.

    A transfer that has not failed is left as it is and said so, exit 0 as a
    cancel of a finished transfer: nothing was asked that could be done.
    """
    retried = {r.id for r in records}
    left = journal_records([i for i in args.ids if i not in retried]) if not args.failed else []
    notes = []
    for record in left:
        state = _NOTHING_TO_RETRY.get(record.state)
        if state is None:
            paused = ", paused (`ferry unpause` lets it go on)" if record.paused else ""
            state = f"has not failed: it is {record.state.value}{paused}"
        notes.append(f"Transfer {record.id} {state}; there is nothing to retry.")
    empty = "No failed transfers; there is nothing to retry." if args.failed else None
    extra = {"not_retried": [{"id": r.id, "state": r.state.value, "message": n}
                             for r, n in zip(left, notes, strict=True)]}  # fmt: skip
    code = report_transfers(records, args.json, history, extra, empty=empty)
    if not args.json:
        for note in notes:
            print(note)
    return code


def cmd_cancel(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.ferry import Ferry

    require_transfers(args.ids, "cancelled")
    # Judged alike alone and beside a running Ferry: before, a cancel handed over
    # exited 1 (a cancelled transfer is not an upload that succeeded).
    handed = handed_off(
        args, lambda f: f.call(Ferry.cancel, args.ids), wait=False, succeeded=is_ended
    )
    if handed is not None:
        return handed
    return with_ferry(
        args, lambda f: report_transfers(f.cancel(args.ids), args.json, succeeded=is_ended)
    )


def cmd_pause(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.ferry import Ferry

    pausing = args.command == "pause"
    method = Ferry.pause if pausing else Ferry.unpause

    def answer(count: int) -> int:
        say(f"{count} transfer(s) {'paused' if pausing else 'unpaused'}.")
        return EXIT_OK

    require_transfers(args.ids, "paused" if pausing else "unpaused")
    running = find_running(args)
    if running is not None:
        return answer(running.call(method, args.ids or None))
    return with_ferry(args, lambda ferry: answer(method(ferry, args.ids or None)))


def cmd_clear(args: argparse.Namespace) -> int:
    """Remove finished transfers from the window's list; the history keeps them."""
    from desktop_app.core.runtime.ferry import Ferry

    def answer(count: int) -> int:
        if args.json:
            emit({"cleared": count})
        else:
            say(f"{count} finished transfer(s) removed from the list.")
        return EXIT_OK

    require_transfers(args.ids, "cleared")
    running = find_running(args)
    if running is not None:
        return answer(running.call(Ferry.clear_finished, args.ids))
    return with_ferry(args, lambda ferry: answer(ferry.clear_finished(args.ids)))
