"""Profiles: which bucket, which catalog, how to send.

A profile names an S3 endpoint, region, bucket, key prefix and catalog URL plus
tuning (part size, concurrency). Profiles live in one TOML file that never
holds a secret: a catalog URL with a password in it is refused, and secrets go
to :mod:`desktop_app.core.settings.secrets`. Environment overrides (``FERRY_ENDPOINT_URL``,
``FERRY_BUCKET``, ``FERRY_PREFIX``, ``FERRY_CATALOG_URL``, ``FERRY_REGION``)
apply on top of the stored profile and are never written back. With no stored
profile to use, those variables alone make one: the unnamed profile
``environment`` (see :func:`profile_from_environment`).
"""

from __future__ import annotations

import dataclasses
import enum
import getpass
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from desktop_app.core.model.errors import ConfigError, ProfileNotFoundError
from desktop_app.core.model.sizes import MAX_PART_SIZE, MIB, MIN_PART_SIZE
from desktop_app.core.settings.bandwidth import BandwidthSchedule
from desktop_app.core.settings.paths import write_atomically
from desktop_app.core.settings.relay_options import DEFAULT_NATS_URL, RelayOptions

DEFAULT_PART_SIZE = 16 * MIB
DEFAULT_PROFILE_NAME = "local"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

ENV_OVERRIDES: Mapping[str, str] = {
    "FERRY_ENDPOINT_URL": "endpoint_url",
    "FERRY_BUCKET": "bucket",
    "FERRY_PREFIX": "prefix",
    "FERRY_CATALOG_URL": "catalog_url",
    "FERRY_REGION": "region",
}
# The name of the profile made from environment variables alone.
ENVIRONMENT_PROFILE_NAME = "environment"


def plain_sqlite_file(url: str) -> str | None:
    """The file of a catalog URL ``sqlite:///PATH`` with nothing to decode (no query,
    no %-escape), as SQLAlchemy would open it (an absolute path); None for any other URL.

    Such a URL is valid as it stands: it is read without loading SQLAlchemy.
    """
    prefix = "sqlite:///"
    path = url[len(prefix) :] if url.startswith(prefix) else ""
    if not path or path == ":memory:" or "?" in path or "%" in path:
        return None
    return os.path.abspath(path)


class Addressing(enum.Enum):
    """How the bucket is named in a request: in the path or in the host name."""

    # Virtual-hosted on AWS, path-style on every other server: path-style is
    # what self-hosted servers (MinIO, Ceph, SeaweedFS) answer without wildcard
    # DNS; a server that wants the other says so, and the message names this.
    AUTO = "auto"
    PATH = "path"  # https://host/bucket/key
    VIRTUAL = "virtual"  # https://bucket.host/key (Aliyun OSS demands it)


class Encryption(enum.Enum):
    """Server-side encryption Ferry asks for on every object it writes."""

    BUCKET_DEFAULT = ""  # send no header: the bucket's default applies
    AES256 = "AES256"  # SSE-S3
    KMS = "aws:kms"  # SSE-KMS, with the profile's key id or the account's default key
    # SSE-C: AES256 under the profile's own 256-bit key, kept in the keyring
    # (never here) and sent on every read and write of the object.
    SSE_C = "SSE-C"


class DuplicatePolicy(enum.Enum):
    """What to do with content the owner already stored in the bucket under another key."""

    COPY = "copy"  # a server-side copy: the new key exists, no byte is sent
    SKIP = "skip"  # report it as a duplicate and store nothing


@dataclass(frozen=True)
class Profile:
    """One destination: a bucket on an endpoint plus the catalog beside it."""

    name: str
    bucket: str
    catalog_url: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    prefix: str = ""
    access_key_id: str | None = None
    # A profile of the AWS configuration (~/.aws/config) whose credentials to
    # use: SSO, assume-role, credential_process, web identity, refreshed by
    # boto3 as aws-cli does. Instead of access_key_id, never beside it.
    aws_profile: str | None = None
    # An HTTP(S) proxy for this profile's S3 traffic; None: HTTPS_PROXY /
    # HTTP_PROXY / NO_PROXY from the environment, as botocore reads them.
    proxy_url: str | None = None
    owner: str = field(default_factory=getpass.getuser)
    part_size: int = DEFAULT_PART_SIZE
    concurrency: int = 8
    memory_budget: int = 64 * MIB
    bandwidth_limit: int = 0  # bytes per second shared by all transfers; 0 = none
    # Rates by the clock ("08:00-18:00 2MiB/s, 18:00-08:00 off"); where no
    # range covers the time, bandwidth_limit applies. "" = no schedule.
    bandwidth_schedule: str = ""
    check_interval: int = 0  # seconds between periodic checks; 0 = off
    grace_seconds: int = 24 * 3600
    retention_seconds: int = 0
    watch_key_conflict: str = "suffix"  # a rewritten watched file: "suffix" or "overwrite"
    # Content already stored in the bucket under another key: "copy" makes the
    # new key by a server-side copy, "skip" reports it and stores nothing.
    duplicates: str = DuplicatePolicy.COPY.value
    sandbox: bool = False
    addressing: str = Addressing.AUTO.value
    # Server-side encryption asked for on each write ("", "AES256", "aws:kms",
    # "SSE-C": its key in the keyring), and the KMS key for aws:kms (None: the
    # account's default key for S3).
    sse: str = Encryption.BUCKET_DEFAULT.value
    sse_kms_key_id: str | None = None
    # While the window or `ferry watch` runs: hold uploads while the network is
    # metered (NetworkManager says so), and keep the computer awake while
    # uploads run (logind's sleep lock; released when idle).
    pause_on_metered: bool = False
    keep_awake: bool = True
    # Where `ferry relay` publishes the catalog's events (NATS JetStream);
    # None: no relay configured for this profile.
    relay_nats_url: str | None = None
    relay_stream: str = "FERRY"
    relay_subject_prefix: str = "ferry"

    @property
    def duplicate_policy(self) -> DuplicatePolicy:
        return DuplicatePolicy(self.duplicates)

    @property
    def addressing_style(self) -> Addressing:
        return Addressing(self.addressing)

    @property
    def encryption(self) -> Encryption:
        return Encryption(self.sse)

    @property
    def schedule(self) -> BandwidthSchedule:
        """The upload rate by the clock (the plain limit where the schedule says nothing)."""
        return BandwidthSchedule.parse(self.bandwidth_schedule, fallback=self.bandwidth_limit)

    def validate(self) -> None:
        """Raise ConfigError naming the first field that is wrong."""
        where = f"profile {self.name!r}"
        self._validate_names(where)
        self._validate_endpoint(where)
        self._validate_credentials(where)
        self._validate_proxy(where)
        try:
            BandwidthSchedule.parse(self.bandwidth_schedule)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.message}") from exc
        if self.prefix.startswith("/") or ".." in self.prefix.split("/"):
            raise ConfigError(f"{where}: the key prefix may not start with '/' or contain '..'.")
        self._validate_catalog_url(where)
        self._validate_tuning(where)
        self._validate_server_options(where)
        self._validate_relay(where)
        for name in ("bandwidth_limit", "check_interval", "grace_seconds", "retention_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}: {name} cannot be negative.")

    def _validate_names(self, where: str) -> None:
        if not _PROFILE_NAME.match(self.name):
            raise ConfigError(
                f"{where}: a profile name uses letters, digits, '.', '_' or '-' (at most 64)."
            )
        if not _BUCKET_NAME.match(self.bucket) or ".." in self.bucket:
            raise ConfigError(
                f"{where}: {self.bucket!r} is not a valid bucket name "
                "(3-63 lowercase letters, digits, '.' or '-')."
            )

    def _validate_endpoint(self, where: str) -> None:
        if self.endpoint_url is None:
            return
        parts = urlsplit(self.endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{where}: endpoint {self.endpoint_url!r} must look like https://host[:port]."
            )
        if parts.username or parts.password:
            raise ConfigError(
                f"{where}: put no credentials in the endpoint URL; "
                "use `ferry profile add --access-key-id` and the keyring."
            )

    def _validate_credentials(self, where: str) -> None:
        if self.aws_profile is not None and self.access_key_id is not None:
            raise ConfigError(
                f"{where}: give either an access key id (secret in the keyring) or an AWS "
                "profile (credentials from the AWS configuration), not both."
            )

    def _validate_proxy(self, where: str) -> None:
        if self.proxy_url is None:
            return
        proxy = urlsplit(self.proxy_url)
        if proxy.scheme not in ("http", "https") or not proxy.hostname:
            raise ConfigError(f"{where}: proxy {self.proxy_url!r} must look like http://host:port.")
        if proxy.username or proxy.password:
            raise ConfigError(
                f"{where}: Ferry keeps no proxy password in a profile; give a proxy that "
                "needs no sign-in, or set HTTPS_PROXY with its credentials in the environment."
            )

    def _validate_tuning(self, where: str) -> None:
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ConfigError(f"{where}: part size must be between 5 MiB and 5 GiB.")
        if not 1 <= self.concurrency <= 64:
            raise ConfigError(f"{where}: concurrency must be between 1 and 64.")
        if self.memory_budget < self.part_size:
            raise ConfigError(f"{where}: the memory budget must hold at least one part.")
        if self.watch_key_conflict not in ("suffix", "overwrite"):
            raise ConfigError(f"{where}: watch_key_conflict is 'suffix' or 'overwrite'.")
        if self.duplicates not in {policy.value for policy in DuplicatePolicy}:
            raise ConfigError(f"{where}: duplicates is 'copy' or 'skip'.")

    def _validate_relay(self, where: str) -> None:
        if self.relay_nats_url and urlsplit(self.relay_nats_url).password:
            raise ConfigError(
                f"{where}: put no password in the relay's NATS URL; give the URL with its "
                "credentials in FERRY_NATS_URL or --nats when starting `ferry relay`."
            )
        try:
            self.relay_options().validate()
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.message}") from exc

    def _validate_catalog_url(self, where: str) -> None:
        if plain_sqlite_file(self.catalog_url) is not None:
            return  # an SQLite file: no password, and a backend Ferry knows
        # Any other URL as SQLAlchemy reads it (imported here: a profile with an
        # SQLite catalog, the default, is read without loading SQLAlchemy).
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.catalog_url)
        except ArgumentError:
            raise ConfigError(
                f"{where}: catalog URL is not a database URL "
                "(sqlite:///path or postgresql+psycopg://user@host/db)."
            ) from None
        if url.password:
            raise ConfigError(
                f"{where}: the catalog URL contains a password. Remove it from the URL and "
                "store it with `ferry profile add --catalog-password` (kept in the keyring)."
            )
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ConfigError(f"{where}: catalogs are SQLite or PostgreSQL databases.")

    def _validate_server_options(self, where: str) -> None:
        if self.addressing not in {style.value for style in Addressing}:
            raise ConfigError(f"{where}: addressing is 'auto', 'path' or 'virtual'.")
        if self.sse not in {kind.value for kind in Encryption}:
            raise ConfigError(
                f"{where}: sse is 'AES256', 'aws:kms' or 'SSE-C' "
                "(or empty for the bucket's default)."
            )
        if self.sse_kms_key_id and self.encryption is not Encryption.KMS:
            raise ConfigError(f"{where}: a KMS key id goes with sse = 'aws:kms'.")

    def relay_options(
        self,
        *,
        nats_url: str | None = None,
        stream: str | None = None,
        subject_prefix: str | None = None,
    ) -> RelayOptions:
        """Where `ferry relay` publishes: the arguments given, else the profile's settings."""
        return RelayOptions(
            nats_url=nats_url or self.relay_nats_url or DEFAULT_NATS_URL,
            stream=stream or self.relay_stream,
            subject_prefix=subject_prefix or self.relay_subject_prefix,
        )

    def with_env_overrides(self, environ: Mapping[str, str]) -> Profile:
        changes: dict[str, Any] = {
            attr: environ[var] for var, attr in ENV_OVERRIDES.items() if environ.get(var)
        }
        if not changes:
            return self
        updated = dataclasses.replace(self, **changes)
        updated.validate()
        return updated

    def overridden_by(self, environ: Mapping[str, str]) -> list[str]:
        """The FERRY_* variables that change this profile (names only)."""
        return [var for var in ENV_OVERRIDES if environ.get(var)]

    def to_toml_table(self) -> dict[str, Any]:
        table = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        del table["name"]
        return table


_FIELDS = {f.name: f for f in dataclasses.fields(Profile)}


def profile_from_environment(environ: Mapping[str, str], catalog_url: str) -> Profile | None:
    """The unnamed profile that environment variables alone make, or None without FERRY_BUCKET.

    ``FERRY_BUCKET`` is required; ``FERRY_ENDPOINT_URL`` (none: AWS S3),
    ``FERRY_PREFIX``, ``FERRY_REGION`` (else ``AWS_REGION``/``AWS_DEFAULT_REGION``)
    and ``FERRY_CATALOG_URL`` (else ``catalog_url``, an SQLite file in the data
    dir) are optional. Credentials come from the AWS chain (variables,
    ``AWS_PROFILE``, web identity, files), as for aws-cli.
    """
    if not environ.get("FERRY_BUCKET"):
        return None
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    base = Profile(
        name=ENVIRONMENT_PROFILE_NAME,
        bucket=environ["FERRY_BUCKET"],
        catalog_url=catalog_url,
        region=region,
    )
    return base.with_env_overrides(environ)


def _profile_from_table(name: str, table: Mapping[str, Any], source: Path) -> Profile:
    unknown = sorted(set(table) - set(_FIELDS) - {"name"})
    if unknown:
        raise ConfigError(
            f"{source}: profile {name!r} has unknown setting(s) {', '.join(unknown)}. "
            "Fix or remove them."
        )
    for required in ("bucket", "catalog_url"):
        if required not in table:
            raise ConfigError(f"{source}: profile {name!r} lacks {required!r}.")
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key == "name":
            continue
        expected = _FIELDS[key].type
        ok = (
            (expected == "int" and isinstance(value, int) and not isinstance(value, bool))
            or (expected == "bool" and isinstance(value, bool))
            or ("str" in str(expected) and isinstance(value, str))
        )
        if not ok:
            raise ConfigError(
                f"{source}: profile {name!r}: {key} has the wrong type ({type(value).__name__})."
            )
        kwargs[key] = value
    profile = Profile(name=name, **kwargs)
    profile.validate()
    return profile


class ProfileStore:
    """The TOML file of profiles. Writes are atomic (temp file + rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            with self.path.open("rb") as handle:
                data = tomllib.load(handle)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
            what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ConfigError(
                f"{self.path} is not a valid profiles file ({what}). Fix the file or move it "
                "away (Ferry then starts without profiles); nothing was changed."
            ) from exc
        except OSError as exc:
            raise ConfigError(f"Cannot read {self.path}: {exc.strerror}.") from exc
        if not isinstance(data.get("profiles", {}), dict):
            raise ConfigError(
                f"{self.path}: 'profiles' must be a table of profiles ([profiles.NAME]); fix "
                "the file or move it away. Nothing was changed."
            )
        for name, table in data.get("profiles", {}).items():
            if not isinstance(table, dict):
                raise ConfigError(f"{self.path}: profile {name!r} must be a table of settings.")
        return data

    def profiles(self) -> list[Profile]:
        data = self._read()
        tables = data.get("profiles", {})  # a table of tables: _read checked it
        return [_profile_from_table(n, t, self.path) for n, t in sorted(tables.items())]

    def default_name(self) -> str | None:
        data = self._read()
        default = data.get("default")
        if isinstance(default, str):
            return default
        names = sorted(data.get("profiles", {}))
        return names[0] if len(names) == 1 else None

    def get(self, name: str | None = None) -> Profile:
        wanted = name or self.default_name()
        if wanted is None:
            raise ProfileNotFoundError(
                "No profile is configured. Run `ferry sandbox` for a local one, or "
                "`ferry profile add NAME --bucket B --endpoint-url URL` for a real bucket."
            )
        for profile in self.profiles():
            if profile.name == wanted:
                return profile
        known = ", ".join(p.name for p in self.profiles()) or "none"
        raise ProfileNotFoundError(
            f"There is no profile named {wanted!r} (known: {known}). See `ferry profile list`."
        )

    def has(self, name: str) -> bool:
        return name in self._read().get("profiles", {})

    def save(self, profile: Profile, *, make_default: bool = False) -> None:
        profile.validate()
        data = self._read()
        data.setdefault("profiles", {})[profile.name] = profile.to_toml_table()
        if make_default or "default" not in data:
            data["default"] = profile.name
        self._write(data)

    def remove(self, name: str) -> None:
        data = self._read()
        if name not in data.get("profiles", {}):
            raise ProfileNotFoundError(f"There is no profile named {name!r}.")
        del data["profiles"][name]
        if data.get("default") == name:
            data.pop("default")
        self._write(data)

    def _write(self, data: Mapping[str, Any]) -> None:
        write_atomically(self.path, tomli_w.dumps(dict(data)).encode("utf-8"))
