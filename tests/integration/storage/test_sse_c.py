"""SSE-C on weed mini, which checks the key (a HEAD without it: 400; with
another: 403): a profile whose customer key is in the keyring uploads, the
objects read back only with that key, and the key reaches no file, log line
or output (#33)."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from desktop_app import cli
from desktop_app.cli import session
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.model.errors import ConfigError, StorageError
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.logs import configure_logging
from desktop_app.core.settings.secrets import SecretKind, SecretStore
from tests.conftest import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    MemoryKeyring,
    WeedServer,
    upload_done,
)

MIB = 1024 * 1024
PROFILE = "vault"


@pytest.fixture
def customer_key() -> bytes:
    return os.urandom(32)


def _traces(key: bytes) -> list[str]:
    """Every form in which the key could be written down."""
    return [base64.b64encode(key).decode(), key.hex(), repr(key)[2:-1]]


@pytest.fixture
def ferry_cli(
    ferry_env: Environment,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[..., tuple[int, str]]]:
    """Runs `ferry ARGS` in this process with the test's keyring; (exit code, all output)."""
    monkeypatch.setattr(session, "SecretStore", lambda: SecretStore(memory_keyring))

    def run(*args: str, stdin: str = "") -> tuple[int, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out + err

    yield run
    logging.shutdown()


def _add_profile(
    run: Callable[..., tuple[int, str]],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
    key_text: str,
) -> tuple[int, str]:
    return run(
        "profile", "add", PROFILE,
        "--bucket", bucket,
        "--endpoint-url", weed.endpoint_url,
        "--access-key-id", TEST_ACCESS_KEY,
        "--catalog-url", f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        "--owner", "tester",
        "--part-size-mib", "5",
        "--sse", "SSE-C",
        "--secret-stdin",
        "--sse-customer-key-stdin",
        stdin=f"{TEST_SECRET_KEY}\n{key_text}\n",
    )  # fmt: skip


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def vault_added(
    ferry_cli: Callable[..., tuple[int, str]],
    weed: WeedServer,
    bucket: str,
    customer_key: bytes,
    tmp_path: Path,
) -> str:
    """The SSE-C profile added with the test's customer key; what `profile add` said."""
    code, said = _add_profile(
        ferry_cli, weed, bucket, tmp_path, base64.b64encode(customer_key).decode()
    )
    assert code == 0, said
    return said


def test_an_sse_c_profile_uploads_and_only_its_key_reads_the_objects_back(
    ferry_cli: Callable[..., tuple[int, str]],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    customer_key: bytes,
    tmp_path: Path,
    vault_added: str,
) -> None:
    assert "in the keyring" in vault_added
    code, shown = ferry_cli("profile", "show", PROFILE)
    assert code == 0, shown
    assert re.search(r"customer key +in the keyring\n", shown)
    assert "SSE-C" in shown
    code, tested = ferry_cli("profile", "test", PROFILE)
    assert "encryption" in tested
    assert "SSE-C (AES256 with the profile's customer key: in the keyring)" in tested
    assert code == 0, tested

    # A DEBUG log with botocore's own lines (its headers and the signed request).
    log_file = tmp_path / "debug.log"
    configure_logging(log_file, stderr_level=None, file_level=logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    rng = random.Random(33)
    small, large = tmp_path / "small.txt", tmp_path / "large.bin"
    small.write_bytes(rng.randbytes(1000))
    large.write_bytes(rng.randbytes(12 * MIB + 5))
    try:
        more = [tmp_path / "second.txt", tmp_path / "third.txt"]
        for path in more:
            path.write_bytes(rng.randbytes(2000))
        with Ferry.open(ferry_env, PROFILE) as app:
            records = app.upload([small, large])
            # Sent by the pattern of botocore's first PUT (storage/quick_put.py): the key too.
            records += app.upload(more)
            assert app.storage.quick_put.pattern is not None
            pattern = repr(app.storage.quick_put.pattern)
            assert base64.b64encode(customer_key).decode() not in pattern
            assert customer_key.hex() not in pattern
            attempts = app.attempts([r.id for r in records])
            rows = {r.key: app.catalog.live(bucket, r.key) for r in records}
    finally:
        logging.getLogger("botocore").setLevel(logging.WARNING)
        for handler in logging.getLogger().handlers:
            handler.flush()
    assert [r.state for r in records] == [TransferState.DONE] * 4
    assert all(len(tries) == 1 for tries in attempts.values()), "no failed attempt"
    for key, row in rows.items():
        assert row is not None, key
        assert row.status is FileStatus.ACTIVE

    client = weed.client()
    sse_c: dict[str, Any] = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": customer_key}
    for path in (small, large, *more):
        with pytest.raises(ClientError) as without_key:
            client.head_object(Bucket=bucket, Key=path.name)
        assert without_key.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        with pytest.raises(ClientError):
            client.get_object(Bucket=bucket, Key=path.name)
        other = {**sse_c, "SSECustomerKey": os.urandom(32)}
        with pytest.raises(ClientError):
            client.get_object(Bucket=bucket, Key=path.name, **other)
        read = client.get_object(Bucket=bucket, Key=path.name, **sse_c)
        assert read["SSECustomerAlgorithm"] == "AES256"
        assert _sha256(read["Body"].read()) == _sha256(path.read_bytes())

    log_text = log_file.read_text()
    # The log did see the requests (so the redaction, not silence, kept the key out).
    assert "x-amz-server-side-encryption-customer-algorithm" in log_text.lower()
    profiles_text = ferry_env.paths.profiles_file.read_text()
    cli_log = ferry_env.paths.log_file
    log_text += cli_log.read_text() if cli_log.exists() else ""
    for trace in _traces(customer_key):
        assert trace not in log_text
        assert trace not in profiles_text
        assert trace not in vault_added + shown + tested


def test_a_wrong_key_in_the_keyring_is_said_in_plain_words(
    ferry_cli: Callable[..., tuple[int, str]],
    ferry_env: Environment,
    customer_key: bytes,
    tmp_path: Path,
    vault_added: str,
) -> None:
    note = tmp_path / "note.txt"
    note.write_bytes(b"kept under the first key")
    with Ferry.open(ferry_env, PROFILE) as app:
        upload_done(app, note)
    wrong = os.urandom(32)
    ferry_env.secrets.set(PROFILE, SecretKind.SSE_CUSTOMER_KEY, base64.b64encode(wrong).decode())
    with Ferry.open(ferry_env, PROFILE) as app, pytest.raises(StorageError) as refused:
        app.storage.head_object("note.txt")
    assert "encrypted with a customer key this profile does not have" in refused.value.message
    assert refused.value.title == "Wrong customer key"
    for trace in _traces(wrong) + _traces(customer_key):
        assert trace not in refused.value.message


def test_a_missing_key_is_said_and_stops_before_any_request(
    ferry_cli: Callable[..., tuple[int, str]],
    ferry_env: Environment,
    customer_key: bytes,
    tmp_path: Path,
    vault_added: str,
) -> None:
    ferry_env.secrets.delete(PROFILE, SecretKind.SSE_CUSTOMER_KEY)
    code, shown = ferry_cli("profile", "show", PROFILE)
    assert re.search(r"customer key +missing\n", shown)
    code, tested = ferry_cli("profile", "test", PROFILE)
    assert code != 0
    assert "the keyring holds no customer key" in tested
    with pytest.raises(ConfigError, match="holds no customer key"):
        Ferry.open(ferry_env, PROFILE)


@pytest.mark.parametrize(
    "given",
    ["", "not base64 at all!", base64.b64encode(b"k" * 16).decode(), "QUJD" * 20],
)
def test_anything_but_the_base64_of_32_bytes_is_refused_and_nothing_saved(
    ferry_cli: Callable[..., tuple[int, str]],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
    given: str,
) -> None:
    code, said = _add_profile(ferry_cli, weed, bucket, tmp_path, given)
    assert code != 0
    assert "base64 of exactly 32 random bytes" in said
    assert not ferry_env.profiles.has(PROFILE)
    assert ferry_env.secrets.get(PROFILE, SecretKind.SSE_CUSTOMER_KEY) is None
    if given:
        assert given not in said


def test_removing_the_profile_keeps_its_customer_key(
    ferry_cli: Callable[..., tuple[int, str]],
    ferry_env: Environment,
    customer_key: bytes,
    tmp_path: Path,
    vault_added: str,
) -> None:
    code, removed = ferry_cli("profile", "remove", PROFILE)
    assert code == 0, removed
    assert "customer key stays in the keyring" in removed
    assert ferry_env.secrets.get(PROFILE, SecretKind.S3_SECRET_KEY) is None
    kept = ferry_env.secrets.get(PROFILE, SecretKind.SSE_CUSTOMER_KEY)
    assert kept == base64.b64encode(customer_key).decode()
    for trace in _traces(customer_key):
        assert trace not in removed
