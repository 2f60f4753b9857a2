"""The compatibility suite: which servers, and the notes that make the table.

Which servers run comes from ``FERRY_COMPAT_SERVERS`` (comma-separated, or
``all``). Unset, as in `make test`, the suite runs on the three servers the
rest of the suite already starts (weed mini, moto's server, rclone's `serve
s3`) and only the cases no other test covers there; `make compat` sets
``all``: every case on every server. Tests not asked for are not generated
(nothing is skipped).

With ``FERRY_COMPAT_REPORT=FILE`` the session writes every test's outcome and
notes (what the server did, which protection Ferry had) to FILE as JSON;
``python -m tests.compat.table`` turns it into docs/COMPATIBILITY.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, S3Endpoint, WeedServer

if TYPE_CHECKING:
    from pluggy import Result

ALL_SERVERS = ("weed", "moto", "rclone", "ceph", "swift", "s3rver")
QUICK_SERVERS = ("weed", "moto", "rclone")
ALL_CASES = (
    "protection",
    "zero_bytes",
    "five_mib",
    "hundred_mib",
    "unicode_names",
    "check",
    "delete",
    "kill_resume",
    "foreign_before_put",
    "foreign_during_multipart",
    "versioned_delete",
    "opaque_etags",
)
# In `make test` (about 35 s): on weed, moto and rclone the uploads, check,
# delete and kill + resume already run in tests/integration/storage/test_compatibility.py,
# the foreign writes during a multipart upload and the versioned delete on weed
# in test_foreign_writers.py and test_versioned_buckets.py.
QUICK_CASES = ("protection", "foreign_before_put", "opaque_etags")

_REPORT: dict[str, dict[str, Any]] = {}


def chosen_servers() -> tuple[str, ...]:
    named = os.environ.get("FERRY_COMPAT_SERVERS", "").strip()
    if not named:
        return QUICK_SERVERS
    if named == "all":
        return ALL_SERVERS
    servers = tuple(s.strip() for s in named.split(",") if s.strip())
    unknown = sorted(set(servers) - set(ALL_SERVERS))
    if unknown:
        raise pytest.UsageError(f"FERRY_COMPAT_SERVERS: unknown {unknown}; known {ALL_SERVERS}")
    return servers


def chosen_cases() -> tuple[str, ...]:
    return ALL_CASES if os.environ.get("FERRY_COMPAT_SERVERS", "").strip() else QUICK_CASES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server_name" in metafunc.fixturenames:
        metafunc.parametrize("server_name", chosen_servers())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cases not asked for are left out (deselected, not skipped)."""
    cases = chosen_cases()
    kept: list[pytest.Item] = []
    left: list[pytest.Item] = []
    for item in items:
        case = item.name.split("[")[0].removeprefix("test_")
        spec = getattr(item, "callspec", None)
        is_compat = spec is not None and "server_name" in spec.params and case in ALL_CASES
        (left if is_compat and case not in cases else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture
def server(server_name: str, request: pytest.FixtureRequest) -> S3Endpoint:
    """The server under test, with a bucket (weed: a fresh one per test; the
    others: their session's bucket, each test under a prefix of its own)."""
    if server_name == "weed":
        weed: WeedServer = request.getfixturevalue("weed")
        new_bucket: Callable[[str], str] = request.getfixturevalue("new_bucket")
        bucket = new_bucket("")
        return S3Endpoint("weed", weed.endpoint_url, bucket, TEST_ACCESS_KEY, TEST_SECRET_KEY)
    fixture = {
        "moto": "moto_s3",
        "rclone": "rclone_s3",
        "ceph": "ceph_rgw",
        "swift": "swift_s3",
        "s3rver": "s3rver",
    }[server_name]
    endpoint: S3Endpoint = request.getfixturevalue(fixture)
    return endpoint


@pytest.fixture
def note(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """Record what the server did for the table: ``note("etag", "MD5")``."""
    notes: dict[str, Any] = {}
    _REPORT.setdefault(request.node.nodeid, {})["notes"] = notes

    def add(name: str, value: Any) -> None:
        notes[name] = value

    return add


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    spec = getattr(item, "callspec", None)
    if spec is None or "server_name" not in spec.params:
        return
    entry = _REPORT.setdefault(item.nodeid, {})
    entry["server"] = spec.params["server_name"]
    entry["case"] = item.name.split("[")[0].removeprefix("test_")
    if report.when == "call" or (report.when == "setup" and report.failed):
        entry["outcome"] = report.outcome
        if report.failed:
            entry["failure"] = str(report.longrepr)[-1500:]
        entry["seconds"] = round(report.duration, 1)


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("FERRY_COMPAT_REPORT")
    if not target:
        return
    Path(target).write_text(json.dumps(list(_REPORT.values()), indent=1, default=str))
