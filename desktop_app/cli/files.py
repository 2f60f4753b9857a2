"""The catalog's files and the catalog itself: `ferry ls`, `ferry delete`,
`ferry catalog upgrade`.

`ls` reads the catalog only, a page at a time in key order (:data:`LS_PAGE`);
`delete` removes a file from the catalog first, then its object, one key that
fails never stopping the others.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from desktop_app.cli.rendering import EXIT_FAILED, EXIT_OK, emit, say
from desktop_app.cli.session import environment, find_running, with_ferry
from desktop_app.core.model.errors import FerryError

# The engine is imported inside the handlers, for start-up (see session.py).
if TYPE_CHECKING:
    from desktop_app.core.catalog.records import DeleteOutcome, FileRecord
    from desktop_app.core.runtime.ferry import Ferry


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

    running = find_running(args)
    if running is not None:
        return _delete_keys(args, lambda key: running.call(Ferry.delete, key))
    return with_ferry(args, lambda ferry: _delete_keys(args, ferry.delete))


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
                say(f"{key}: {exc.message}")
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
        emit({"deleted": results})
    return EXIT_FAILED if failed else EXIT_OK


LS_PAGE = 1000


def cmd_ls(args: argparse.Namespace) -> int:
    """Every matching file, a page at a time in key order; --limit stops early and says so."""
    from desktop_app.core.catalog.records import FileQuery
    from desktop_app.core.catalog.schema import FileStatus

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
            emit(document)
        elif not shown:
            print("No files.")
        elif more:
            say(
                f"ferry: stopped after {len(shown)} files (--limit); for the next ones add "
                f"--after {shown[-1].key!r}, or leave out --limit for all."
            )
        return EXIT_OK

    return with_ferry(args, work, read_only=True)


def cmd_catalog_upgrade(args: argparse.Namespace) -> int:
    from desktop_app.core.catalog.service import open_catalog
    from desktop_app.core.settings.secrets import catalog_password

    env = environment()
    profile = env.profile(args.profile)
    password = catalog_password(profile, env.secrets, env.environ)
    open_catalog(
        profile.catalog_url,
        owner=profile.owner,
        password=password,
        journal_file=env.paths.journal_file,
    ).close()
    say("The catalog schema is up to date.")
    return EXIT_OK
