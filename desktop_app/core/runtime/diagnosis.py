"""Diagnosing a profile: what it needs checked one by one, each result in words.

The connection test of the window's destination form and ``ferry doctor``.
Promises: each check says what is wrong in a person's words
(:class:`CheckResult`); a sandbox started for the test is stopped after it;
the catalog is opened read-only (the test changes nothing there); what the
endpoint was found to do with conditional writes and checksums is kept for
the uploads to come (:func:`known_protection` reads it back).
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop_app.core.catalog.database import CatalogMode
from desktop_app.core.catalog.service import open_catalog
from desktop_app.core.model.errors import FerryError, StorageError
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.logs import REDACTOR
from desktop_app.core.runtime.sandbox import SandboxServer
from desktop_app.core.runtime.sandbox_profile import start_sandbox
from desktop_app.core.settings.profiles import Encryption, Profile
from desktop_app.core.settings.secrets import (
    catalog_password,
    describe_encryption,
    missing_customer_key,
    require_s3_credentials,
)
from desktop_app.core.storage.probes import probe_checksums, probe_write
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.checksums import CHECKSUM_FILE, ChecksumMemory, integrity
from desktop_app.core.transfers.protection import (
    PROTECTION_FILE,
    LearntProtection,
    ProtectionMemory,
    endpoint_key,
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def diagnose_profile(env: Environment, profile: Profile) -> list[CheckResult]:
    """Check, one by one, what a profile needs; each result says what is wrong."""
    results: list[CheckResult] = []
    sandbox: SandboxServer | None = None
    try:
        if profile.sandbox:
            try:
                sandbox, _state, profile = start_sandbox(env)
                results.append(CheckResult("sandbox", True, f"running at {profile.endpoint_url}"))
            except FerryError as exc:
                results.append(CheckResult("sandbox", False, exc.message))
                return results
        try:
            credentials = require_s3_credentials(profile, env.secrets, env.environ)
            REDACTOR.add_secret(credentials.secret_access_key)
            REDACTOR.add_binary_secret(credentials.sse_customer_key)
            results.append(CheckResult("credentials", True, f"found in {credentials.source.value}"))
        except FerryError as exc:
            results.append(CheckResult("credentials", False, exc.message))
            return results
        held = profile.encryption is not Encryption.SSE_C or credentials.sse_customer_key
        results.append(
            CheckResult("encryption", bool(held), describe_encryption(profile, credentials))
        )
        if not held:
            results.append(CheckResult("customer key", False, missing_customer_key(profile)))
            return results
        storage = S3Storage.connect(profile, credentials)
        try:
            storage.check_bucket()
            results.append(CheckResult("bucket", True, f"{profile.bucket} is reachable"))
            protection = probe_write(storage, profile.prefix)
            # Kept for the uploads to come (and shown by Settings): no probe at their start.
            ProtectionMemory(env.paths.data_dir / PROTECTION_FILE).put(
                storage.endpoint_id, protection
            )
            results.append(CheckResult("write", True, "a test object was written and deleted"))
            # Not a failure where conditions are ignored: Ferry works, with less protection.
            results.append(CheckResult("other tools", True, protection.description))
            # The integrity its uploads reach: the server verifies CRC64NVMEs, or MD5s.
            verified = probe_checksums(storage, profile.prefix)
            ChecksumMemory(env.paths.data_dir / CHECKSUM_FILE).put(storage.endpoint_id, verified)
            results.append(CheckResult("integrity", True, integrity(verified)))
        except StorageError as exc:
            results.append(CheckResult("bucket", False, exc.message))
        skew = storage.server_clock.notable_offset()
        if skew is not None:
            results.append(CheckResult("clock", False, skew))
        try:
            password = catalog_password(profile, env.secrets, env.environ)
            REDACTOR.add_secret(password)
            catalog = open_catalog(
                profile.catalog_url,
                owner=profile.owner,
                password=password,
                mode=CatalogMode.READ_ONLY,  # a test that changes nothing
                journal_file=env.paths.journal_file,
            )
            try:
                catalog.ping()
            finally:
                catalog.close()
            results.append(CheckResult("catalog", True, "reachable and up to date"))
        except FerryError as exc:
            results.append(CheckResult("catalog", False, exc.message))
        return results
    finally:
        if sandbox is not None:
            sandbox.stop()


def known_protection(env: Environment, profile: Profile) -> LearntProtection | None:
    """What the profile's endpoint was found to do with conditional writes (by its first
    upload or a connection test); None: not found out yet. Reads a small file."""
    return ProtectionMemory(env.paths.data_dir / PROTECTION_FILE).get(endpoint_key(profile))
