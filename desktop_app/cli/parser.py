"""The ``ferry`` command line: the argparse parser, each command bound to its handler.

Built from light imports only: the choices of ``ls --status`` and ``check
--only`` are spelled here (:data:`FILE_STATUSES`, :data:`FINDING_KINDS`)
rather than read from their enums. A bad option or value exits 2 with
argparse's words.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, TypeVar

from desktop_app.cli.actions import cmd_cancel, cmd_clear, cmd_pause, cmd_resolve, cmd_retry
from desktop_app.cli.checking import cmd_check
from desktop_app.cli.files import cmd_catalog_upgrade, cmd_delete, cmd_ls
from desktop_app.cli.profiles import (
    cmd_profile_add,
    cmd_profile_list,
    cmd_profile_login,
    cmd_profile_remove,
    cmd_profile_show,
    cmd_profile_test,
)
from desktop_app.cli.relay import cmd_relay
from desktop_app.cli.rendering import EXIT_ERROR
from desktop_app.cli.sandbox import cmd_sandbox
from desktop_app.cli.uploads import cmd_resume, cmd_status, cmd_upload
from desktop_app.cli.watch import cmd_watch
from desktop_app.core.model.failures import ConflictChoice
from desktop_app.core.settings.profiles import Addressing, Encryption

_N = TypeVar("_N", int, float)


# The values of catalog_schema.FileStatus and reconcile.FindingKind, for the
# parser: importing those enums loads SQLAlchemy and boto3 for every command.
# tests/unit/cli/test_cli_entry.py keeps them equal.
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


class _VersionAction(argparse.Action):
    """``--version`` anywhere argparse sees it; the version is read only then.

    argparse's own "version" action takes the text when the parser is built:
    that read (importlib.metadata, some 20 ms) would then be paid by every command.
    """

    def __call__(self, parser: argparse.ArgumentParser, *_given: Any) -> None:
        from desktop_app import __version__

        print(f"ferry {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferry", description="Put files into an S3-compatible bucket, verified."
    )
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="print Ferry's version and exit"
    )
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
    p_add.add_argument(
        "--concurrency",
        type=int,
        help="large files and their parts sent at once (8); small files go at least this "
        "many at once, up to 64 while it pays",
    )
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
