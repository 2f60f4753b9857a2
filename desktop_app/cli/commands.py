"""The ``ferry`` command: thin over :class:`desktop_app.core.runtime.ferry.Ferry`.

``--json`` prints exactly one JSON document on stdout and nothing else there;
progress and logs go to stderr. Exit status: 0 when everything asked for
succeeded (a recognised duplicate counts as success), 1 when some file or
check failed, 2 on a usage or configuration error.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import getpass
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from desktop_app import __version__
from desktop_app.core.catalog.peek import OutboxBacklog
from desktop_app.core.journal.records import (
    AttemptRecord,
    JournalReader,
    TransferError,
    TransferRecord,
    UnrecordedSending,
)
from desktop_app.core.model.errors import FerryError
from desktop_app.core.model.events import EngineEvent, TransferChanged, TransferProgress
from desktop_app.core.model.failures import ConflictChoice, choice_label, conflict_choices
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.allocator import fix_mmap_threshold
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.logs import configure_logging
from desktop_app.core.runtime.status import StatusReader
from desktop_app.core.settings.paths import FerryPaths
from desktop_app.core.settings.profiles import (
    DEFAULT_PROFILE_NAME,
    MIB,
    Addressing,
    Encryption,
    Profile,
)
from desktop_app.core.settings.relay_options import describe_nats_url
from desktop_app.core.settings.secrets import SecretKind, SecretStore, parse_customer_key
from desktop_app.core.transfers.sources import printable

# What only the commands that upload, delete, list, check or watch need (boto3,
# SQLAlchemy, Alembic, the engine) is imported inside them: `ferry status`
# loads none of it (tests/unit/test_cli_entry.py).
if TYPE_CHECKING:
    from desktop_app.core.catalog.service import DeleteOutcome, FileRecord
    from desktop_app.core.check.checker import CheckReport, RepairResult
    from desktop_app.core.runtime.control import RunningFerry
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import RunMode
    from desktop_app.core.storage.s3 import ObjectInfo

log = logging.getLogger("ferry")
EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
SUCCESS_STATES = (TransferState.DONE, TransferState.DUPLICATE)
_N = TypeVar("_N", int, float)
# The values of catalog_schema.FileStatus and reconcile.FindingKind, for the
# parser: importing those enums loads SQLAlchemy and boto3 for every command.
# tests/unit/test_cli_entry.py keeps them equal.
FILE_STATUSES = ("pending", "active", "deleted", "missing")
FINDING_KINDS = (
    "orphan_object",
    "missing_object",
    "mismatch",
    "stale_pending",
    "deleted_still_stored",
    "stale_multipart",
    "someone_elses",
    "foreign_version_on_top",
)


def _environment() -> Environment:
    return Environment(FerryPaths.from_environment(os.environ), os.environ, SecretStore())


def _emit(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _attempt_json(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": attempt.started_at.isoformat(),
        "ended_at": attempt.ended_at.isoformat(),
        "error": _error_json(attempt.error),
        "bytes_sent": attempt.bytes_sent,
        "outcome": "failed" if attempt.error is not None else "succeeded",
        "recorded": True,
        "note": None,
    }


_CUT = (
    "cut short by a pause or by Ferry stopping (killed, crashed, shut down); no record of "
    "its own: its bytes are the {parts} part(s) the server confirmed in it, its times those "
    "of the first and last of them (one such attempt or more)"
)
_UNFINISHED = (
    "no end recorded yet: running now, or cut by a pause or by Ferry stopping "
    "(`ferry resume` goes on); its bytes are the {parts} part(s) the server confirmed so far"
)


def _unrecorded_json(
    record: TransferRecord, sending: UnrecordedSending, last: int
) -> dict[str, Any]:
    """Sending no recorded attempt covers (#34 item 13): an attempt cut by a pause or a
    stop, or (the last one of a transfer still on its way) one not ended yet."""
    open_ended = sending.after == last and record.state.in_progress
    return {
        "number": 0,
        "started_at": sending.first_confirmed_at.isoformat(),
        "ended_at": sending.last_confirmed_at.isoformat(),
        "error": None,
        "bytes_sent": sending.bytes_sent,
        "outcome": "unfinished" if open_ended else "cut",
        "recorded": False,
        "note": (_UNFINISHED if open_ended else _CUT).format(parts=sending.parts),
    }


def _history_json(
    record: TransferRecord,
    attempts: Sequence[AttemptRecord],
    unrecorded: Sequence[UnrecordedSending],
) -> list[dict[str, Any]]:
    """Every attempt in the order it was made, numbered so: the recorded ones and
    those the journal knows only by the parts they sent."""
    last = max((a.number for a in attempts), default=0)
    entries = [((a.number, 0), _attempt_json(a)) for a in attempts]
    entries += [((u.after, 1), _unrecorded_json(record, u, last)) for u in unrecorded]
    history = [entry for _, entry in sorted(entries, key=lambda e: e[0])]
    for number, entry in enumerate(history, start=1):
        entry["number"] = number
    return history


def _error_json(error: TransferError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "kind": error.kind.value,
        "title": error.title,
        "message": error.message,
        "cause": error.cause.value,
        "retryable": error.kind.retryable,
        "retries_on_its_own": error.kind.retries_on_its_own,
    }


def transfer_json(
    record: TransferRecord,
    attempts: Sequence[AttemptRecord] = (),
    unrecorded: Sequence[UnrecordedSending] = (),
) -> dict[str, Any]:
    return {
        "id": record.id,
        "profile": record.profile,
        "source": record.source_path,
        "bucket": record.bucket,
        "key": record.key,
        "size": record.size,
        "sha256": record.sha256,
        "state": record.state.value,
        "paused": record.paused,
        "attempts": record.attempts,
        "duplicate_of": record.duplicate_of,
        "copied_from": record.copy_source_key if record.state is TransferState.DONE else None,
        "error": _error_json(record.error),
        "retry_at": record.retry_at.isoformat() if record.retry_at else None,
        "history": _history_json(record, attempts, unrecorded),
        # What a person may choose for a conflict (`ferry resolve ID --CHOICE`).
        "choices": [c.value for c in _choices(record)],
    }


def _choices(record: TransferRecord) -> tuple[ConflictChoice, ...]:
    return conflict_choices(record.error) if record.state is TransferState.FAILED else ()


def _succeeded(record: TransferRecord) -> bool:
    """Settled as asked: uploaded, or recognised as already stored."""
    return record.state in SUCCESS_STATES


def _handed_over(record: TransferRecord) -> bool:
    """Queued in a running Ferry and not waited for: still on its way is success;
    only a file refused at once (unreadable, gone) or a cancelled transfer is not."""
    return record.state not in (TransferState.FAILED, TransferState.CANCELLED)


def _ended(record: TransferRecord) -> bool:
    """What a cancel asks: the transfer no longer runs (cancelled, or finished before)."""
    return record.state.finished


def _summary(
    records: Sequence[TransferRecord], succeeded: Callable[[TransferRecord], bool] = _succeeded
) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.state.value] = counts.get(record.state.value, 0) + 1
    return {
        "total": len(records),
        "by_state": counts,
        "bytes": sum(r.size for r in records if r.state is TransferState.DONE),
        "ok": all(succeeded(r) for r in records),
    }


def _report_transfers(
    records: Sequence[TransferRecord],
    as_json: bool,
    attempts: Mapping[int, Sequence[AttemptRecord]] | None = None,
    extra: Mapping[str, Any] | None = None,
    succeeded: Callable[[TransferRecord], bool] = _succeeded,
    empty: str | None = "No transfers.",
) -> int:
    """Print the transfers; exit 0 when each ``succeeded`` (JSON: summary.ok says the same).

    With none, ``empty`` is printed (None: the caller says why there are none)."""
    history = attempts or {}
    if as_json:
        unrecorded = _unrecorded_sending([r.id for r in records]) if attempts is not None else {}
        _emit(
            {
                "transfers": [
                    transfer_json(r, history.get(r.id, ()), unrecorded.get(r.id, ()))
                    for r in records
                ],
                "summary": _summary(records, succeeded),
                **(extra or {}),
            }
        )
    else:
        for record in records:
            for line in _transfer_lines(record):
                print(line)
        if not records and empty is not None:
            print(empty)
    return EXIT_OK if all(succeeded(r) for r in records) else EXIT_FAILED


def _transfer_lines(record: TransferRecord) -> list[str]:
    """A transfer as `ferry status` prints it: a paused one says "paused" where its
    state stands (the journal's state is kept for scripts: --json's state and paused)."""
    shown = "paused" if record.paused and not record.state.finished else record.state.value
    line = f"{record.id:>5}  {record.profile:<10} {shown:<11} {record.key or record.source_path}"
    if record.state is TransferState.DUPLICATE:
        line += f"  (already stored as {record.duplicate_of})"
    lines = [line]
    if record.error is not None:
        lines.append(f"       {record.error.title}: {record.error.message}")
    for choice in _choices(record):
        lines.append(
            f"       {choice_label(choice, record.key)}: "
            f"`ferry resolve {record.id} --{choice.value}`"
        )
    if shown == "paused":
        lines.append(
            f"       paused while {record.state.value}; `ferry unpause {record.id}` lets it go on"
        )
    elif (
        record.error is not None
        and record.retry_at is not None
        and record.error.kind.retries_on_its_own
    ):
        when = record.retry_at.astimezone().strftime("%H:%M:%S")
        lines.append(f"       next try at {when} (attempt {record.attempts + 1})")
    return lines


class _ProgressLine:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._done: dict[int, int] = {}
        self._total: dict[int, int] = {}
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        if not self.enabled or not isinstance(event, TransferProgress):
            return
        with self._lock:
            self._done[event.transfer_id] = event.bytes_done
            self._total[event.transfer_id] = event.bytes_total
            done, total = sum(self._done.values()), sum(self._total.values())
        sys.stderr.write(f"\r{done / MIB:10.1f} / {total / MIB:.1f} MiB ")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self._done:
            sys.stderr.write("\n")


def _with_ferry(
    args: argparse.Namespace,
    work: Callable[[Ferry], int],
    mode: RunMode | None = None,
    *,
    read_only: bool = False,
) -> int:
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import RunMode

    env = _environment()
    ferry = Ferry.open(env, args.profile, mode=mode or RunMode.ONE_SHOT, read_only=read_only)
    source = env.describe_profile_source(ferry.profile)
    if source is not None:
        _say(f"{source} S3 credentials from {ferry.credential_source.value}.")
    progress = _ProgressLine()
    unsubscribe = ferry.bus.subscribe(progress)
    try:
        return work(ferry)
    finally:
        unsubscribe()
        progress.finish()
        ferry.close()


def _running(args: argparse.Namespace) -> RunningFerry | None:
    """The running Ferry (the window's, or `ferry watch`) to hand this command to;
    None when none runs and the command runs on its own."""
    from desktop_app.core.runtime.control import RunningFerry, endpoint_address

    address = endpoint_address(FerryPaths.from_environment(os.environ).data_dir)
    running = RunningFerry.find(address, args.profile)
    if running is not None:
        log.info("Handed to the running Ferry at %s", address)
    return running


def _handed_off(
    args: argparse.Namespace,
    act: Callable[[RunningFerry], list[TransferRecord]],
    *,
    wait: bool,
    succeeded: Callable[[TransferRecord], bool] = _succeeded,
) -> int | None:
    """Do ``act`` in a running Ferry (waiting, if asked, as a command alone would) and
    print the transfers it touched, judged by ``succeeded``; None when none runs."""
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import ONE_SHOT_PATIENCE

    running = _running(args)
    if running is None:
        return None
    records = act(running)
    ids = [r.id for r in records]
    if wait:
        records = running.call(Ferry.wait, ids, patience=ONE_SHOT_PATIENCE)
    history = running.call(Ferry.attempts, ids)
    return _report_transfers(records, args.json, history, succeeded=succeeded)


def _report_with_history(
    ferry: Ferry,
    records: Sequence[TransferRecord],
    as_json: bool,
    extra: Mapping[str, Any] | None = None,
) -> int:
    history = ferry.attempts([r.id for r in records]) if as_json else None
    return _report_transfers(records, as_json, history, extra)


# -- commands ---------------------------------------------------------------


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
    from desktop_app.core.runtime.ferry import Ferry

    paths = tuple(str(Path(p).expanduser().absolute()) for p in args.paths)
    _require_paths(paths)
    wait = args.wait if args.wait is not None else not sys.stdin.isatty()
    # Not waited for, a hand-off that queued every file is the success: the running
    # Ferry uploads them (`ferry status` follows them).
    handed = _handed_off(
        args,
        lambda f: f.call(Ferry.queue, paths, args.prefix),
        wait=wait,
        succeeded=_succeeded if wait else _handed_over,
    )
    if handed is not None:
        return handed
    return _with_ferry(
        args, lambda f: _report_with_history(f, f.upload(list(paths), args.prefix), args.json)
    )


def cmd_resume(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import ONE_SHOT_PATIENCE

    handed = _handed_off(
        args, lambda f: f.call(Ferry.resume, patience=ONE_SHOT_PATIENCE), wait=False
    )
    if handed is not None:
        return handed
    return _with_ferry(args, lambda f: _report_with_history(f, f.resume(), args.json))


def cmd_status(args: argparse.Namespace) -> int:
    """The journal's transfers and the outbox's backlog, read only (beside a running
    Ferry too), with nothing loaded that only sending needs: see core/runtime/status.py."""
    env = _environment()
    with StatusReader.open(env, args.profile) as status:
        source = env.describe_profile_source(status.profile)
        if source is not None:
            _say(f"{source} S3 credentials from {status.credential_source.value}.")
        records = status.transfers()
        if not args.all:
            records = [r for r in records if not r.state.finished] or records[-20:]
        events = _events_json(status)
        relay = _relay_named(status.profile)
        history = status.attempts([r.id for r in records]) if args.json else None
        _report_transfers(records, args.json, history, {"events": events, "relay": relay})
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
    return _backlog_json(backlog)


def _backlog_json(backlog: OutboxBacklog) -> dict[str, Any]:
    return {
        "waiting": backlog.waiting,
        "skipped": backlog.skipped,
        "oldest_waiting": backlog.oldest_waiting.isoformat() if backlog.oldest_waiting else None,
    }


def cmd_relay(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.relay_wiring import open_relay

    relay = open_relay(
        _environment(),
        args.profile,
        nats_url=args.nats,
        stream=args.stream,
        subject_prefix=args.subject_prefix,
        batch_size=args.batch,
    )
    where = f"stream {relay.options.stream} at {describe_nats_url(relay.options.nats_url)}"
    try:
        if args.once:
            report = relay.publish_waiting()
        else:
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda _s, _f: stop.set())
            _say(f"Relay: publishing catalog events to {where}. Ctrl+C stops it.")
            report = relay.run(stop)
    finally:
        relay.close()
    ok = report.ok and not report.skipped
    if args.json:
        _emit(
            {
                "stream": relay.options.stream,
                "nats": describe_nats_url(relay.options.nats_url),
                "published": report.published,
                "duplicates": report.duplicates,
                "found_in_stream": report.found_in_stream,
                "skipped": [dataclasses.asdict(s) for s in report.skipped],
                "held_back": report.held_back,
                "outbox": _backlog_json(report.backlog) if report.backlog else None,
                "error": (
                    {"title": report.error.title, "message": report.error.message}
                    if report.error
                    else None
                ),
                "ok": ok,
            }
        )
    else:
        waiting = report.backlog.waiting if report.backlog else "?"
        print(f"Published {report.published} event(s) to {where}; {waiting} wait.")
        if report.duplicates:
            print(f"{report.duplicates} of them the stream had already (dropped as duplicates).")
        for skipped in report.skipped:
            print(f"Set aside event {skipped.event_id} ({skipped.subject}): {skipped.reason}")
        if report.error is not None:
            _say(f"ferry: {report.error.title}: {report.error.message}")
    return EXIT_OK if ok else EXIT_FAILED


def _require_transfers(ids: Sequence[int], done: str) -> None:
    """Refuse, before anything is done, IDs the journal does not hold.

    Read from the journal file (as `ferry status` reads it beside a running
    Ferry), so a mistyped ID is said alike alone and handed over, and in words
    a person can act on rather than as a journal problem.
    """
    if not ids:
        return
    found = {record.id for record in _journal_records(ids)}
    missing = sorted(set(ids) - found)
    if missing:
        named = ", ".join(str(i) for i in missing)
        raise FerryError(
            f"There is no transfer {named} in the journal, so nothing was {done}. "
            "`ferry status --all` lists the transfers there are, with their IDs.",
            title="No such transfer",
        )


def _unrecorded_sending(ids: Sequence[int]) -> dict[int, list[UnrecordedSending]]:
    """What attempts cut by a pause or a stop sent, from the journal file (alone and
    beside a running Ferry alike: the attempts it answers are only the recorded ones)."""
    if not ids:
        return {}
    with JournalReader(FerryPaths.from_environment(os.environ).journal_file) as journal:
        return journal.unrecorded_sending(ids)


def _journal_records(ids: Sequence[int]) -> list[TransferRecord]:
    """The transfers as the journal file holds them (read-only, beside a running Ferry too)."""
    from desktop_app.core.journal.store import Journal

    journal = Journal(FerryPaths.from_environment(os.environ).journal_file, read_only=True)
    try:
        return journal.get_many(ids)
    finally:
        journal.close()


def cmd_retry(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import ONE_SHOT_PATIENCE

    if not args.ids and not args.failed:
        raise FerryError("Say which transfers to retry: IDs, or --failed for all failed ones.")
    ids = None if args.failed else args.ids
    _require_transfers(ids or (), "retried")
    running = _running(args)
    if running is not None:
        retried = running.call(Ferry.retry, ids)
        records = running.call(Ferry.wait, [r.id for r in retried], patience=ONE_SHOT_PATIENCE)
        history = running.call(Ferry.attempts, [r.id for r in records])
        return _report_retried(args, records, history)

    def work(ferry: Ferry) -> int:
        records = ferry.wait([r.id for r in ferry.retry(ids)])
        history = ferry.attempts([r.id for r in records]) if args.json else {}
        return _report_retried(args, records, history)

    return _with_ferry(args, work)


def cmd_resolve(args: argparse.Namespace) -> int:
    """A person's answer to a conflict; the transfer then runs as a retry does."""
    choice = ConflictChoice(args.choice)
    _require_transfers([args.id], "resolved")
    [record] = _journal_records([args.id])
    running = _running(args)
    if running is not None:
        return _resolve(args, record, choice, lambda method, *a, **k: running.call(method, *a, **k))
    return _with_ferry(
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
                _say("Nothing was changed.")
                return EXIT_FAILED
            seen = found.etag  # only this object: one written after it is never replaced
    resolved: TransferRecord = call(Ferry.resolve, record.id, choice, seen)
    if choice is ConflictChoice.SKIP:
        if not args.json:
            _say(f"Skipped: nothing was uploaded; the object at {record.key!r} was left as it is.")
        return _report_transfers([resolved], args.json, call(Ferry.attempts, [record.id]),
                                 succeeded=_ended)  # fmt: skip
    if not args.json:
        _say(f"Uploading {record.source_path} as {resolved.key!r}.")
    records = call(Ferry.wait, [record.id], patience=ONE_SHOT_PATIENCE)
    return _report_transfers(records, args.json, call(Ferry.attempts, [record.id]))


def _replace_confirmed(args: argparse.Namespace, record: TransferRecord, found: ObjectInfo) -> bool:
    """Say what is lost; ask unless --yes (with no terminal to ask: refused)."""
    when = found.last_modified.astimezone().strftime("%Y-%m-%d %H:%M")
    what = (
        f"The object at {record.key!r} ({found.size} bytes, written {when}, not by Ferry) "
        f"will be replaced by {record.source_path}; its bytes are lost unless the bucket "
        "keeps versions."
    )
    _say(what)
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
    left = _journal_records([i for i in args.ids if i not in retried]) if not args.failed else []
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
    code = _report_transfers(records, args.json, history, extra, empty=empty)
    if not args.json:
        for note in notes:
            print(note)
    return code


def cmd_cancel(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.ferry import Ferry

    _require_transfers(args.ids, "cancelled")
    # Judged alike alone and beside a running Ferry: before, a cancel handed over
    # exited 1 (a cancelled transfer is not an upload that succeeded).
    handed = _handed_off(
        args, lambda f: f.call(Ferry.cancel, args.ids), wait=False, succeeded=_ended
    )
    if handed is not None:
        return handed
    return _with_ferry(
        args, lambda f: _report_transfers(f.cancel(args.ids), args.json, succeeded=_ended)
    )


def cmd_pause(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.ferry import Ferry

    pausing = args.command == "pause"
    method = Ferry.pause if pausing else Ferry.unpause

    def say(count: int) -> int:
        _say(f"{count} transfer(s) {'paused' if pausing else 'unpaused'}.")
        return EXIT_OK

    _require_transfers(args.ids, "paused" if pausing else "unpaused")
    running = _running(args)
    if running is not None:
        return say(running.call(method, args.ids or None))
    return _with_ferry(args, lambda ferry: say(method(ferry, args.ids or None)))


def cmd_clear(args: argparse.Namespace) -> int:
    """Remove finished transfers from the window's list; the history keeps them."""
    from desktop_app.core.runtime.ferry import Ferry

    def say(count: int) -> int:
        if args.json:
            _emit({"cleared": count})
        else:
            _say(f"{count} finished transfer(s) removed from the list.")
        return EXIT_OK

    _require_transfers(args.ids, "cleared")
    running = _running(args)
    if running is not None:
        return say(running.call(Ferry.clear_finished, args.ids))
    return _with_ferry(args, lambda ferry: say(ferry.clear_finished(args.ids)))


def _file_json(record: FileRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["status"] = record.status.value
    # Every time of the record, not a list of names: one added later (alive_at)
    # went out in str()'s format.
    for name, value in data.items():
        if isinstance(value, datetime):
            data[name] = value.isoformat()
    return data


def cmd_delete(args: argparse.Namespace) -> int:
    # Beside a running Ferry the journal is its own: the deletes are its to carry out.
    from desktop_app.core.runtime.ferry import Ferry

    running = _running(args)
    if running is not None:
        return _delete_keys(args, lambda key: running.call(Ferry.delete, key))
    return _with_ferry(args, lambda ferry: _delete_keys(args, ferry.delete))


def _delete_keys(args: argparse.Namespace, delete: Callable[[str], DeleteOutcome]) -> int:
    """Delete each key (one failing never stops the others) and say how each went."""
    results: list[dict[str, Any]] = []
    failed = False
    for key in args.keys:
        try:
            outcome = delete(key)
        except FerryError as exc:
            failed = True
            results.append({"key": key, "deleted": False, "error": exc.message})
            if not args.json:
                _say(f"{key}: {exc.message}")
            continue
        failed = failed or not outcome.object_deleted
        results.append(
            {
                "key": key,
                "deleted": True,
                "object_deleted": outcome.object_deleted,
                "error": outcome.error,
                "note": outcome.note,
            }
        )
        if not args.json:
            if outcome.object_deleted:
                print(f"deleted {key}")
                if outcome.note:
                    print(f"  {outcome.note}")
            else:
                print(f"{key}: removed from the catalog; its object was not deleted.")
                print(f"  {outcome.error}")
    if args.json:
        _emit({"deleted": results})
    return EXIT_FAILED if failed else EXIT_OK


LS_PAGE = 1000


def cmd_ls(args: argparse.Namespace) -> int:
    """Every matching file, a page at a time in key order; --limit stops early and says so."""
    from desktop_app.core.catalog.schema import FileStatus
    from desktop_app.core.catalog.service import FileQuery

    def work(ferry: Ferry) -> int:
        query = FileQuery(
            prefix=args.prefix,
            status=FileStatus(args.status) if args.status else None,
            owner=args.owner,
            name_contains=args.name,
            after_key=args.after,
            limit=LS_PAGE,
        )
        wanted: int | None = args.limit or None
        shown: list[FileRecord] = []
        more = False
        while True:
            page = ferry.files(query)
            room = None if wanted is None else wanted - len(shown)
            if room is not None and len(page) > room:
                page, more = page[:room], True
            if not args.json:
                for row in page:
                    print(f"{row.status.value:<8} {row.size:>14,}  {row.sha256[:12]}  {row.key}")
            shown += page
            if more or len(page) < LS_PAGE:
                break
            query = dataclasses.replace(query, after_key=page[-1].key)
            if wanted is not None and len(shown) >= wanted:
                more = bool(ferry.files(dataclasses.replace(query, limit=1)))
                break
        if args.json:
            document: dict[str, Any] = {"files": [_file_json(r) for r in shown]}
            if more:
                document["next_after"] = shown[-1].key
            _emit(document)
        elif not shown:
            print("No files.")
        elif more:
            _say(
                f"ferry: stopped after {len(shown)} files (--limit); for the next ones add "
                f"--after {shown[-1].key!r}, or leave out --limit for all."
            )
        return EXIT_OK

    return _with_ferry(args, work, read_only=True)


def cmd_check(args: argparse.Namespace) -> int:
    from desktop_app.core.check.checker import INFORMATIONAL, CheckOptions, FindingKind

    def work(ferry: Ferry) -> int:
        options = CheckOptions(
            grace_seconds=ferry.profile.grace_seconds if args.grace is None else args.grace,
            retention_seconds=ferry.profile.retention_seconds,
            only={FindingKind(k) for k in args.only} if args.only else None,
            delete_orphans=args.delete_orphans,
        )
        report = ferry.check(options)
        results: list[RepairResult] = []
        if args.repair and args.yes:
            results = ferry.repair(report.findings, adopt_owner=args.adopt_owner)
        document = report.to_json()
        if args.repair:
            document["repairs"] = (
                [
                    {"kind": r.finding.kind.value, "key": r.finding.key, "done": r.done,
                     "outcome": r.outcome.value, "message": r.message}
                    for r in results
                ]
                if args.yes
                else "dry run: add --yes to carry out the repairs listed per finding"
            )  # fmt: skip
        if args.json:
            _emit(document)
        else:
            _print_report(report, results, dry_run=args.repair and not args.yes)
        if results:
            remaining = [r for r in results if not r.done and r.finding.kind not in INFORMATIONAL]
            return EXIT_FAILED if remaining else EXIT_OK
        return EXIT_OK if report.consistent else EXIT_FAILED

    return _with_ferry(args, work, read_only=not (args.repair and args.yes))


def _print_report(report: CheckReport, results: list[RepairResult], *, dry_run: bool) -> None:
    scanned = report.scanned
    print(
        f"Checked {scanned.objects} objects, {scanned.rows} catalog rows and "
        f"{scanned.multipart_uploads} unfinished uploads in {report.duration_s:.1f} s "
        f"({scanned.within_grace} younger than the grace period or in flight, and "
        f"{scanned.others_files} other users' files, left alone)."
    )
    if scanned.kept_versions:
        print(
            f"{scanned.kept_versions} older version(s) of deleted files are kept until the "
            "profile's retention period has passed."
        )
    for note in report.notes:
        print(f"Note: {note}")
    if report.consistent:
        print("Bucket and catalog agree.")
    for finding in report.findings:
        print(f"- {finding.kind.value}: {finding.key}\n    {finding.explanation}")
        if finding.version_id is not None:
            print(f"    version: {finding.version_id}")
        if dry_run:
            print(f"    would: {finding.repair.value}")
    for result in results:
        verdict = "repaired" if result.done else f"NOT repaired ({result.outcome.value})"
        print(f"{verdict}: {result.finding.key}: {result.message}")


def cmd_watch(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.run_mode import RunMode
    from desktop_app.core.runtime.watcher import WatchedFolder

    def work(ferry: Ferry) -> int:
        folders = [
            WatchedFolder(
                Path(d).expanduser().absolute(), prefix=args.prefix or ferry.profile.prefix
            )
            for d in args.dirs
        ]
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        ferry.scheduler.on_error = lambda exc: _say(f"ferry: {exc.title}: {exc.message}")
        ferry.bus.subscribe(_print_outcome)
        watcher = ferry.watch(folders, settle_seconds=args.settle, force_polling=args.polling)
        server = ferry.listen()
        for status in watcher.status.values():
            _say(f"Watching {status.folder.path} ({status.mode}); Ctrl-C stops.")
        interval = ferry.profile.check_interval  # the periodic check is off unless set
        try:
            while not stop.wait(interval or None):
                try:
                    report = ferry.check()
                except FerryError as exc:
                    _say(f"ferry: the periodic check failed: {exc.message}")
                    continue
                _say(f"Check: {sum(report.counts.values())} finding(s); see `ferry check`.")
        finally:
            server.stop()
            watcher.stop()
            _say("Stopped watching; unfinished transfers resume at the next start.")
        return EXIT_OK

    return _with_ferry(args, work, RunMode.RESIDENT)


_print_lock = threading.Lock()


def _print_outcome(event: EngineEvent) -> None:
    """One line per file that `ferry watch` settled (called on engine threads)."""
    if not isinstance(event, TransferChanged):
        return
    transfer = event.transfer
    if transfer.state is TransferState.DONE:
        line = f"stored     {transfer.key} ({transfer.size:,} bytes, verified)"
    elif transfer.state is TransferState.DUPLICATE:
        line = f"unchanged  {transfer.key} (already stored as {transfer.duplicate_of})"
    elif transfer.state is TransferState.FAILED and transfer.error is not None:
        line = f"failed     {transfer.key}: {transfer.error.title}. {transfer.error.message}"
    else:
        return
    with _print_lock:
        print(line, flush=True)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.sandbox_profile import sandbox_access, start_sandbox

    env = _environment()
    if args.show:
        return _show_sandbox(env)
    server, state, profile = start_sandbox(env)
    _say(
        f"Local sandbox running at {state.endpoint_url} (bucket {profile.bucket!r}, "
        f"data in {env.paths.sandbox_dir}). Profile {profile.name!r} is ready."
    )
    for line in sandbox_access(profile).lines():
        _say(f"  {line}")
    try:
        if args.open:
            from desktop_app.gui.app import run_gui

            return run_gui(env, profile.name)
        if not server.owned:
            _say("It was already running (started by another Ferry); nothing more to do.")
            return EXIT_OK
        _say("Press Ctrl-C to stop it.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        return EXIT_OK
    finally:
        server.stop()


def _show_sandbox(env: Environment) -> int:
    """Where the sandbox is and how aws-cli or rclone reach it; starts nothing."""
    from desktop_app.core.runtime.sandbox_profile import sandbox_access, sandbox_running

    try:
        profile = env.profiles.get(DEFAULT_PROFILE_NAME)
    except FerryError:
        profile = None
    if profile is None or not profile.sandbox:
        _say("No sandbox yet: `ferry sandbox` starts one and writes its profile.")
        return EXIT_ERROR
    state = "running" if sandbox_running(env) else "stopped: `ferry sandbox` starts it"
    print(f"The local sandbox ({state})")
    for line in sandbox_access(profile).lines():
        print(line)
    return EXIT_OK


def _read_secret(label: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise FerryError(f"No terminal to ask for the {label}; pass it on stdin with --*-stdin.")
    return getpass.getpass(f"{label}: ")


def cmd_profile_add(args: argparse.Namespace) -> int:
    env = _environment()
    store = env.profiles
    values: dict[str, Any] = {
        "name": args.name,
        "bucket": args.bucket,
        "catalog_url": args.catalog_url or env.paths.default_catalog_url(args.name),
        "endpoint_url": args.endpoint_url,
        "region": args.region,
        "prefix": args.prefix,
        "access_key_id": args.access_key_id,
    }
    if args.owner:
        values["owner"] = args.owner
    values["pause_on_metered"] = args.pause_on_metered
    values["keep_awake"] = args.keep_awake
    if args.part_size_mib:
        values["part_size"] = args.part_size_mib * MIB
    if args.concurrency:
        values["concurrency"] = args.concurrency
    for option in (
        "aws_profile",
        "proxy_url",
        "bandwidth_schedule",
        "addressing",
        "sse",
        "sse_kms_key_id",
        "relay_nats_url",
        "relay_stream",
        "relay_subject_prefix",
    ):
        if getattr(args, option):
            values[option] = getattr(args, option)
    profile = Profile(**values)
    profile.validate()
    secret = None
    # A terminal is not asked for a secret no keyring here could keep (#34 item 8).
    asks = args.secret_stdin or (sys.stdin.isatty() and env.secrets.usable)
    if args.access_key_id and asks:
        secret = _read_secret("S3 secret access key", args.secret_stdin)
    password = None
    if args.catalog_password_stdin:
        password = _read_secret("catalog password", True)
    # Kept before the profile is saved: a profile that encrypts with a key the
    # keyring does not hold could write nothing.
    _keep_customer_key(env.secrets, profile, args.sse_customer_key_stdin)
    store.save(profile, make_default=args.default)
    lost = _keep_secrets(env.secrets, profile, secret, password)
    if secret and SecretKind.S3_SECRET_KEY not in lost:
        where = "the keyring"
    elif profile.aws_profile:
        where = f"AWS profile {profile.aws_profile!r} of the AWS configuration"
    else:
        where = "AWS variables or credential files (none stored)"
    _say(f"Profile {profile.name!r} saved in {store.path}; its secret comes from {where}.")
    for kind, why in lost.items():
        _say(f"ferry: {_secret_not_kept(profile, kind, why)}")
    # The profile is there, a secret given is not: a partial success (exit 1), so a
    # script that goes on to upload stops here rather than at "No credentials".
    return EXIT_FAILED if lost else EXIT_OK


def _keep_customer_key(secrets: SecretStore, profile: Profile, from_stdin: bool) -> None:
    """The SSE-C key, read from stdin (the last line read there), into the keyring
    only: never echoed, never printed, never written to a file."""
    sse_c = profile.encryption is Encryption.SSE_C
    if from_stdin and not sse_c:
        raise FerryError("--sse-customer-key-stdin goes with --sse SSE-C. Nothing was saved.")
    if not sse_c:
        return
    if not from_stdin:
        if secrets.usable and secrets.get(profile.name, SecretKind.SSE_CUSTOMER_KEY):
            return  # the profile's key stays as it is
        raise FerryError(
            "--sse SSE-C needs the customer key: pass the base64 of 32 random bytes on stdin "
            "with --sse-customer-key-stdin (e.g. `openssl rand -base64 32 > key`, kept safe, "
            "then `< key`). Nothing was saved."
        )
    key = parse_customer_key(_read_secret("SSE-C customer key", True))
    if not secrets.usable:
        raise FerryError(
            f"No usable keyring is available here ({secrets.describe()}), and Ferry keeps an "
            "SSE-C customer key nowhere else. Install a keyring backend (e.g. GNOME Keyring, "
            "KWallet) and run this command again. Nothing was saved."
        )
    secrets.set(profile.name, SecretKind.SSE_CUSTOMER_KEY, base64.b64encode(key).decode("ascii"))
    _say(
        f"ferry: the SSE-C customer key of profile {profile.name!r} is in the keyring (service "
        f"'ferry', entry '{profile.name}/{SecretKind.SSE_CUSTOMER_KEY.value}'). Keep a copy of "
        "it somewhere safe: objects written with it cannot be read by anyone without it."
    )


def _keep_secrets(
    secrets: SecretStore, profile: Profile, secret: str | None, password: str | None
) -> dict[SecretKind, str]:
    """Store the secrets given in the keyring; those it could not keep, with why
    (the keyring's own words, which never hold the secret)."""
    lost: dict[SecretKind, str] = {}
    for kind, value in (
        (SecretKind.S3_SECRET_KEY, secret),
        (SecretKind.CATALOG_PASSWORD, password),
    ):
        if not value:
            continue
        if not secrets.usable:
            lost[kind] = f"no usable keyring is available here ({secrets.describe()})"
            continue
        try:
            secrets.set(profile.name, kind, value)
        except FerryError as exc:
            lost[kind] = exc.message[:1].lower() + exc.message[1:].rstrip(".")
    return lost


def _secret_not_kept(profile: Profile, kind: SecretKind, why: str) -> str:
    """What a person does when the secret they gave could not be kept."""
    if kind is SecretKind.CATALOG_PASSWORD:
        return (
            f"The catalog password was not kept: {why}, and Ferry never writes a secret "
            "to a file. Set PGPASSWORD in the environment of the ferry commands that use "
            f"profile {profile.name!r}, or install a keyring backend (e.g. GNOME Keyring, "
            "KWallet) and run this command again."
        )
    return (
        f"The S3 secret was not kept: {why}, and Ferry never writes a secret to a file. "
        f"Set AWS_SECRET_ACCESS_KEY in the environment of the ferry commands that use "
        f"profile {profile.name!r} (it goes with the profile's access key id "
        f"{profile.access_key_id}), or name an AWS profile (--aws-profile), or install a "
        "keyring backend (e.g. GNOME Keyring, KWallet) and run this command again."
    )


def _profile_json(profile: Profile) -> dict[str, Any]:
    return {"name": profile.name, **profile.to_toml_table()}


def cmd_profile_list(args: argparse.Namespace) -> int:
    store = _environment().profiles
    profiles = store.profiles()
    default = store.default_name()
    if args.json:
        _emit({"default": default, "profiles": [_profile_json(p) for p in profiles]})
        return EXIT_OK
    for profile in profiles:
        mark = "*" if profile.name == default else " "
        print(f"{mark} {profile.name:<16} {profile.endpoint_url or 'AWS S3'}  {profile.bucket}")
    if not profiles:
        print("No profiles. Run `ferry sandbox` or `ferry profile add`.")
    return EXIT_OK


def cmd_profile_show(args: argparse.Namespace) -> int:
    env = _environment()
    profile = env.profile(args.name)
    table = _profile_json(profile)
    if profile.encryption is Encryption.SSE_C:
        held = env.secrets.get(profile.name, SecretKind.SSE_CUSTOMER_KEY)
        table["customer key"] = "in the keyring" if held else "missing"
    if args.json:
        _emit(table)
    else:
        width = max(len(key) for key in table)  # the longest name sets the column (#29)
        for key, value in table.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def cmd_profile_remove(args: argparse.Namespace) -> int:
    env = _environment()
    env.profiles.remove(args.name)
    for kind in SecretKind:
        if kind is not SecretKind.SSE_CUSTOMER_KEY:
            env.secrets.delete(args.name, kind)
    _say(f"Profile {args.name!r} removed (its secrets too).")
    if env.secrets.get(args.name, SecretKind.SSE_CUSTOMER_KEY):
        # Deleting it would make every object written with it unreadable.
        _say(
            f"ferry: its SSE-C customer key stays in the keyring (entry '{args.name}/"
            f"{SecretKind.SSE_CUSTOMER_KEY.value}'): objects written with it cannot be read "
            "without it. A profile added again under this name uses it."
        )
    return EXIT_OK


def cmd_profile_test(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.diagnosis import diagnose_profile

    env = _environment()
    profile = env.profile(args.name)
    source = env.describe_profile_source(profile)
    if source is not None:
        _say(source)
    results = diagnose_profile(env, profile)
    ok = all(r.ok for r in results)
    if args.json:
        _emit(
            {"profile": profile.name, "ok": ok, "checks": [dataclasses.asdict(r) for r in results]}
        )
    else:
        for result in results:
            print(f"{'ok ' if result.ok else 'FAIL'} {result.name:<12} {result.detail}")
    return EXIT_OK if ok else EXIT_FAILED


def cmd_profile_login(args: argparse.Namespace) -> int:
    """Sign in to IAM Identity Center for the profile's AWS profile (device authorization)."""
    import webbrowser

    from desktop_app.core.settings.sso import SsoSignIn, sign_in_target

    env = _environment()
    target = sign_in_target(env.profile(args.name), env.environ)
    sign_in = SsoSignIn(target)
    code = sign_in.start()
    _say(
        f"To sign in AWS profile {target.aws_profile!r}, open {code.verification_uri} and confirm "
        f"the code {code.user_code} (valid until {code.expires_at:%H:%M} UTC)."
    )
    with contextlib.suppress(webbrowser.Error):  # the address is printed: they open it
        webbrowser.open(code.verification_uri_complete)
    _say("Waiting for the approval in the browser (Ctrl-C to stop)...")
    try:
        valid_until = sign_in.finish()
    except KeyboardInterrupt:
        _say("Stopped; nothing was changed.")
        return EXIT_FAILED
    _say(f"Signed in; the sign-in is valid until {valid_until:%Y-%m-%d %H:%M} UTC.")
    return EXIT_OK


def cmd_catalog_upgrade(args: argparse.Namespace) -> int:
    from desktop_app.core.catalog.service import open_catalog
    from desktop_app.core.settings.secrets import catalog_password

    env = _environment()
    profile = env.profile(args.profile)
    password = catalog_password(profile, env.secrets, env.environ)
    open_catalog(
        profile.catalog_url,
        owner=profile.owner,
        password=password,
        journal_file=env.paths.journal_file,
    ).close()
    _say("The catalog schema is up to date.")
    return EXIT_OK


def _not_negative(what: str) -> Callable[[str], int]:
    """An option's whole number of 0 or more; argparse names the option and exits 2."""
    return _at_least(0, what, int)


def _at_least(least: _N, what: str, kind: Callable[[str], _N]) -> Callable[[str], _N]:
    """An option's finite number of ``least`` or more (``kind``: int or float), refused
    with ``what`` it should be; argparse names the option and exits 2."""

    def parse(text: str) -> _N:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < least:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferry", description="Put files into an S3-compatible bucket, verified."
    )
    parser.add_argument("--version", action="version", version=f"ferry {__version__}")
    parser.add_argument("--profile", help="profile to use (default: the default profile)")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log more on stderr, and debug lines in the log",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    # The global options are also accepted after the command (`ferry upload
    # --profile team x`); SUPPRESS keeps an absent one from hiding the global one.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )

    def add(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> Any:
        sub = commands.add_parser(name, help=text, description=text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    def json_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--json", action="store_true", help="one JSON document on stdout")

    sub = add("upload", cmd_upload, "upload files and folders, and wait until done")
    sub.add_argument("paths", nargs="+", metavar="PATH")
    sub.add_argument("--prefix", help="key prefix (default: the profile's)")
    sub.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="beside a running Ferry: wait for the outcomes (default when not interactive)",
    )
    json_flag(sub)
    json_flag(add("resume", cmd_resume, "finish what the journal holds"))
    sub = add("status", cmd_status, "show transfers")
    sub.add_argument("--all", action="store_true", help="include finished transfers")
    json_flag(sub)
    sub = add("retry", cmd_retry, "retry failed transfers")
    sub.add_argument("ids", nargs="*", type=int, metavar="ID")
    sub.add_argument("--failed", action="store_true", help="retry every failed transfer")
    json_flag(sub)
    sub = add("resolve", cmd_resolve, "answer a conflict: another name, replace, or skip")
    sub.add_argument("id", type=int, metavar="ID")
    chosen = sub.add_mutually_exclusive_group(required=True)
    for choice, text in (
        (ConflictChoice.RENAME, "upload under the next free name, 'name (2).ext'"),
        (ConflictChoice.REPLACE, "replace the other program's object (asks first)"),
        (ConflictChoice.SKIP, "set the file aside: nothing uploaded, nothing replaced"),
    ):
        chosen.add_argument(
            f"--{choice.value}", dest="choice", action="store_const", const=choice.value, help=text
        )
    sub.add_argument("--yes", action="store_true", help="with --replace: do not ask")
    json_flag(sub)
    sub = add("cancel", cmd_cancel, "cancel transfers (aborts their uploads)")
    sub.add_argument("ids", nargs="+", type=int, metavar="ID")
    json_flag(sub)
    sub = add("clear", cmd_clear, "remove finished transfers from the window's list")
    sub.add_argument("ids", nargs="+", type=int, metavar="ID")
    json_flag(sub)
    for name, text in (("pause", "pause transfers"), ("unpause", "let paused transfers go on")):
        sub = add(name, cmd_pause, text)
        sub.add_argument("ids", nargs="*", type=int, metavar="ID")
    sub = add("delete", cmd_delete, "delete files: catalog first, then the object")
    sub.add_argument("keys", nargs="+", metavar="KEY")
    json_flag(sub)
    sub = add("ls", cmd_ls, "list files from the catalog")
    sub.add_argument("--prefix")
    sub.add_argument("--status", choices=FILE_STATUSES)
    sub.add_argument("--owner")
    sub.add_argument("--name", help="part of the file name or of a folder it is in (any case)")
    sub.add_argument(
        "--limit",
        type=_not_negative("a number of files (a whole number, 0 or more; 0 lists them all)"),
        default=0,
        metavar="N",
        help="at most N files (default: all)",
    )
    sub.add_argument("--after", metavar="KEY", help="only keys after KEY (to go on from a limit)")
    json_flag(sub)
    sub = add("check", cmd_check, "compare bucket and catalog; --repair fixes what it finds")
    sub.add_argument(
        "--grace",
        type=_not_negative("a number of seconds (a whole number, 0 or more)"),
        help="seconds; younger things are left alone",
    )
    sub.add_argument("--repair", action="store_true", help="plan repairs (dry run)")
    sub.add_argument("--yes", action="store_true", help="with --repair: carry them out")
    sub.add_argument("--only", nargs="+", choices=FINDING_KINDS, metavar="KIND")
    sub.add_argument(
        "--delete-orphans",
        action="store_true",
        help="plan deleting objects no row points at, instead of adopting them (admin)",
    )
    sub.add_argument("--adopt-owner", help="admin: adopt orphans for this user")
    json_flag(sub)
    sub = add("watch", cmd_watch, "upload what is saved into folders, until interrupted")
    sub.add_argument("dirs", nargs="+", metavar="DIR")
    sub.add_argument("--prefix", help="key prefix (default: the profile's)")
    sub.add_argument(
        "--settle",
        type=_at_least(0.0, "a number of seconds (0 or more, e.g. 3 or 0.5)", float),
        default=3.0,
        help="seconds a file must stay unchanged",
    )
    sub.add_argument("--polling", action="store_true", help="poll instead of native events")
    sub = add("relay", cmd_relay, "publish the catalog's events to NATS JetStream")
    sub.add_argument(
        "--nats", metavar="URL", help="NATS server (default: FERRY_NATS_URL, the profile's, local)"
    )
    sub.add_argument("--stream", help="JetStream stream (default: the profile's, FERRY)")
    sub.add_argument(
        "--subject-prefix", metavar="PREFIX", help="subjects PREFIX.BUCKET.TYPE (default: ferry)"
    )
    sub.add_argument("--once", action="store_true", help="publish what waits, then exit")
    sub.add_argument(
        "--batch",
        type=_at_least(1, "a number of events (a whole number, 1 or more)", int),
        default=100,
        metavar="N",
        help="events per claim (default 100)",
    )
    json_flag(sub)
    sub = add("sandbox", cmd_sandbox, "start the local S3 sandbox and write the 'local' profile")
    sub.add_argument("--open", action="store_true", help="open the window on it")
    sub.add_argument(
        "--show", action="store_true", help="print its address, keys and aws-cli/rclone lines"
    )

    sub = add("profile", lambda _a: EXIT_ERROR, "manage profiles")
    profile_commands = sub.add_subparsers(dest="profile_command", metavar="ACTION", required=True)
    p_add = profile_commands.add_parser("add", help="add or replace a profile")
    p_add.set_defaults(handler=cmd_profile_add)
    p_add.add_argument("name")
    p_add.add_argument("--bucket", required=True)
    p_add.add_argument("--endpoint-url", help="omit for AWS S3")
    p_add.add_argument("--region", default="us-east-1")
    p_add.add_argument("--prefix", default="")
    p_add.add_argument("--catalog-url", help="default: an SQLite file in the data dir")
    p_add.add_argument("--access-key-id")
    p_add.add_argument(
        "--aws-profile",
        metavar="NAME",
        help="credentials from this profile of the AWS configuration (SSO, assume-role, "
        "credential_process) instead of an access key",
    )
    p_add.add_argument("--proxy-url", metavar="URL", help="HTTP(S) proxy (default: HTTPS_PROXY)")
    p_add.add_argument(
        "--bandwidth-schedule",
        metavar="SCHEDULE",
        help="rates by the clock, e.g. '08:00-18:00 2MiB/s, 18:00-08:00 off'",
    )
    p_add.add_argument(
        "--pause-on-metered",
        action="store_true",
        help="hold uploads while the network is metered (window and `ferry watch`)",
    )
    p_add.add_argument(
        "--no-keep-awake",
        dest="keep_awake",
        action="store_false",
        help="let the computer sleep while uploads run",
    )
    p_add.add_argument(
        "--addressing",
        choices=[style.value for style in Addressing],
        help="bucket in the path or in the host name (auto: host name on AWS, path elsewhere)",
    )
    p_add.add_argument(
        "--sse",
        choices=[kind.value for kind in Encryption if kind.value],
        help="server-side encryption asked for on every write (default: the bucket's own)",
    )
    p_add.add_argument("--sse-kms-key-id", metavar="KEY", help="the KMS key for --sse aws:kms")
    p_add.add_argument(
        "--sse-customer-key-stdin",
        action="store_true",
        help="read the SSE-C key (base64 of 32 bytes) from stdin, after --secret-stdin's line",
    )
    p_add.add_argument("--owner", help="owner name on an SQLite catalog")
    p_add.add_argument("--part-size-mib", type=int)
    p_add.add_argument("--concurrency", type=int)
    p_add.add_argument(
        "--nats-url", dest="relay_nats_url", metavar="URL", help="where `ferry relay` publishes"
    )
    p_add.add_argument("--relay-stream", metavar="NAME", help="its JetStream stream (FERRY)")
    p_add.add_argument("--relay-subject-prefix", metavar="PREFIX", help="its subjects (ferry)")
    p_add.add_argument("--secret-stdin", action="store_true", help="read the S3 secret from stdin")
    p_add.add_argument(
        "--catalog-password-stdin", action="store_true", help="read the catalog password from stdin"
    )
    p_add.add_argument("--default", action="store_true", help="make it the default profile")
    p_list = profile_commands.add_parser("list", help="list profiles")
    p_list.set_defaults(handler=cmd_profile_list)
    json_flag(p_list)
    for name, handler, text in (
        ("show", cmd_profile_show, "show a profile (no secrets)"),
        ("remove", cmd_profile_remove, "remove a profile and its secrets"),
        ("test", cmd_profile_test, "check bucket, credentials and catalog"),
        ("login", cmd_profile_login, "sign in to AWS IAM Identity Center (SSO)"),
    ):
        sub = profile_commands.add_parser(name, help=text)
        sub.set_defaults(handler=handler)
        sub.add_argument("name", nargs="?" if name != "remove" else None)
        if name not in ("remove", "login"):
            json_flag(sub)

    sub = add("catalog", lambda _a: EXIT_ERROR, "catalog administration")
    catalog_commands = sub.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    c_up = catalog_commands.add_parser("upgrade", help="bring the catalog schema up to date")
    c_up.set_defaults(handler=cmd_catalog_upgrade)
    return parser


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
        _say(f"ferry: cannot write logs to {paths.log_dir}: {exc.strerror}")
    except FerryError as exc:  # a folder another user can change: no log written there
        _say(f"ferry: {exc.title}: {exc.message}")


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
            _emit({"error": {"title": exc.title, "message": exc.message}})
        _say(f"ferry: {exc.title}: {exc.message}")
        log.debug("Command failed", exc_info=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say("ferry: interrupted; unfinished transfers resume with `ferry resume`.")
        return 130


def _open_window(profile_name: str | None, paths: Sequence[Path] = ()) -> int:
    """The window; a configuration it cannot start with (a keyring backend that
    cannot be loaded) is one line on stderr, as for a command, never a traceback."""
    from desktop_app.gui.app import run_gui

    try:
        env = _environment()
    except FerryError as exc:
        _say(f"ferry: {exc.title}: {exc.message}")
        log.debug("The window could not start", exc_info=True)
        return EXIT_ERROR
    return run_gui(env, profile_name, paths)


def main_gui() -> int:
    fix_mmap_threshold()
    _start_logging()
    return _open_window(None)
