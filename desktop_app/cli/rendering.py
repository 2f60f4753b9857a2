"""What the ``ferry`` command prints, and the exit status it ends with.

``--json`` prints exactly one JSON document on stdout and nothing else there
(:func:`emit`); progress and logs go to stderr (:func:`say`). Exit status: 0
when everything asked for succeeded (a recognised duplicate counts as
success), 1 when some file or check failed, 2 on a usage or configuration
error. Transfers are printed here for every command that touches them, as
text lines or as :func:`transfer_json` documents; other programs read both,
so their words and keys change only on purpose.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from desktop_app.cli.journal_file import unrecorded_sending
from desktop_app.core.catalog.peek import OutboxBacklog
from desktop_app.core.journal.records import (
    AttemptRecord,
    TransferError,
    TransferRecord,
    UnrecordedSending,
)
from desktop_app.core.model.failures import ConflictChoice, choice_label, conflict_choices
from desktop_app.core.model.states import TransferState

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
SUCCESS_STATES = (TransferState.DONE, TransferState.DUPLICATE)


def emit(document: Any) -> None:
    """The one JSON document ``--json`` prints, on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    """A line for the person, on stderr: stdout is kept for what scripts read."""
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


def is_success(record: TransferRecord) -> bool:
    """Settled as asked: uploaded, or recognised as already stored."""
    return record.state in SUCCESS_STATES


def is_handed_over(record: TransferRecord) -> bool:
    """Queued in a running Ferry and not waited for: still on its way is success;
    only a file refused at once (unreadable, gone) or a cancelled transfer is not."""
    return record.state not in (TransferState.FAILED, TransferState.CANCELLED)


def is_ended(record: TransferRecord) -> bool:
    """What a cancel asks: the transfer no longer runs (cancelled, or finished before)."""
    return record.state.finished


def _summary(
    records: Sequence[TransferRecord], succeeded: Callable[[TransferRecord], bool] = is_success
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


def report_transfers(
    records: Sequence[TransferRecord],
    as_json: bool,
    attempts: Mapping[int, Sequence[AttemptRecord]] | None = None,
    extra: Mapping[str, Any] | None = None,
    succeeded: Callable[[TransferRecord], bool] = is_success,
    empty: str | None = "No transfers.",
) -> int:
    """Print the transfers; exit 0 when each ``succeeded`` (JSON: summary.ok says the same).

    With none, ``empty`` is printed (None: the caller says why there are none)."""
    history = attempts or {}
    if as_json:
        unrecorded = unrecorded_sending([r.id for r in records]) if attempts is not None else {}
        emit(
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


def backlog_json(backlog: OutboxBacklog) -> dict[str, Any]:
    return {
        "waiting": backlog.waiting,
        "skipped": backlog.skipped,
        "oldest_waiting": backlog.oldest_waiting.isoformat() if backlog.oldest_waiting else None,
    }
