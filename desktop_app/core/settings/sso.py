"""Signing in to AWS IAM Identity Center (SSO) without aws-cli.

The device authorization flow, as ``aws sso login`` runs it: register a public
client with SSO OIDC, start a device authorization for the profile's start
URL, show the person the verification page (a browser is opened) and its
code, then poll for the token until they approve, deny or the code expires.
The token is written to the cache aws-cli and botocore read
(``~/.aws/sso/cache/<sha1>.json``, only the user may read it), so the AWS
profile's credentials work again for Ferry, aws-cli and every other SDK. Ferry
keeps nothing of it in its own files. botocore's errors are translated here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from desktop_app.core.model.errors import ConfigError, FerryError
from desktop_app.core.settings.paths import write_atomically
from desktop_app.core.settings.profiles import Profile

CLIENT_NAME = "ferry"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_CACHE_DIR = Path("~/.aws/sso/cache")


class SignInFailedError(FerryError):
    title = "Sign-in failed"


_CODE_EXPIRED = "The sign-in code expired before it was approved. Start the sign-in again."


@dataclass(frozen=True)
class SsoTarget:
    """Where an AWS profile signs in: its start URL and region, and its sso-session if any."""

    aws_profile: str
    start_url: str
    region: str
    session_name: str | None = None
    scopes: tuple[str, ...] = ()

    @property
    def cache_key(self) -> str:
        # botocore's SSOTokenLoader: the session name if there is one, else the start URL.
        return hashlib.sha1((self.session_name or self.start_url).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DeviceCode:
    """What the person is shown: a page to open and the code it should display."""

    verification_uri: str
    verification_uri_complete: str
    user_code: str
    expires_at: datetime


def sign_in_target(profile: Profile, environ: Mapping[str, str]) -> SsoTarget:
    """Where a Ferry profile signs in: its AWS profile, else the one AWS_PROFILE names."""
    aws_profile = profile.aws_profile or environ.get("AWS_PROFILE")
    if not aws_profile:
        raise ConfigError(
            f"Profile {profile.name!r} names no AWS profile to sign in with. Add one (Settings: "
            f"AWS sign-in profile, or `ferry profile add {profile.name} --aws-profile NAME ...`), "
            "or set AWS_PROFILE."
        )
    return sso_target(aws_profile)


def sso_target(aws_profile: str) -> SsoTarget:
    """Read an AWS profile's SSO settings (legacy ``sso_start_url`` or an ``sso_session``)."""
    session = botocore.session.Session(profile=aws_profile)
    try:
        config: dict[str, Any] = session.get_scoped_config()
    except ProfileNotFound:
        raise ConfigError(
            f"The AWS profile {aws_profile!r} is not in the AWS configuration "
            "(~/.aws/config or AWS_CONFIG_FILE)."
        ) from None
    name = config.get("sso_session")
    settings = config
    if name:
        settings = session.full_config.get("sso_sessions", {}).get(name, {})
    start_url, region = settings.get("sso_start_url"), settings.get("sso_region")
    if not start_url or not region:
        raise ConfigError(
            f"The AWS profile {aws_profile!r} does not sign in through IAM Identity Center "
            "(no sso_start_url and sso_region); nothing to sign in to."
        )
    scopes = tuple(s.strip() for s in str(settings.get("sso_registration_scopes", "")).split(","))
    return SsoTarget(aws_profile, start_url, region, name, tuple(s for s in scopes if s))


class SsoSignIn:
    """Runs one device authorization; clock, sleep and the cache directory are injected."""

    def __init__(
        self,
        target: SsoTarget,
        *,
        cache_dir: Path = DEFAULT_CACHE_DIR,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.target = target
        self.cache_dir = cache_dir.expanduser()
        self._sleep = sleep
        self._now = now
        self._client = boto3.session.Session().client("sso-oidc", region_name=target.region)
        self._registration: dict[str, Any] = {}
        self._device: dict[str, Any] = {}
        self._deadline = now()

    def start(self) -> DeviceCode:
        """Register Ferry as a client and start the authorization; show the result to the person."""
        register: dict[str, Any] = {"clientName": CLIENT_NAME, "clientType": "public"}
        if self.target.scopes:
            register["scopes"] = list(self.target.scopes)
        self._registration = self._call("register with", self._client.register_client, register)
        self._device = self._call(
            "start the sign-in at",
            self._client.start_device_authorization,
            {
                "clientId": self._registration["clientId"],
                "clientSecret": self._registration["clientSecret"],
                "startUrl": self.target.start_url,
            },
        )
        self._deadline = self._now() + timedelta(seconds=int(self._device["expiresIn"]))
        return DeviceCode(
            verification_uri=self._device["verificationUri"],
            verification_uri_complete=self._device.get(
                "verificationUriComplete", self._device["verificationUri"]
            ),
            user_code=self._device["userCode"],
            expires_at=self._deadline,
        )

    def finish(self, cancelled: Callable[[], bool] = lambda: False) -> datetime:
        """Poll until the person approves; write the token cache; return when it expires."""
        interval = float(self._device.get("interval") or 5)
        while True:
            if cancelled():
                raise SignInFailedError("The sign-in was cancelled; nothing was changed.")
            if self._now() >= self._deadline:
                raise SignInFailedError(_CODE_EXPIRED)
            try:
                token = self._client.create_token(
                    grantType=DEVICE_GRANT,
                    deviceCode=self._device["deviceCode"],
                    clientId=self._registration["clientId"],
                    clientSecret=self._registration["clientSecret"],
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "AuthorizationPendingException":
                    self._sleep(interval)
                    continue
                if code == "SlowDownException":
                    interval += 5  # RFC 8628: wait five seconds more from now on
                    self._sleep(interval)
                    continue
                if code == "AccessDeniedException":
                    raise SignInFailedError(
                        "The sign-in was denied in the browser; nothing was changed."
                    ) from exc
                if code == "ExpiredTokenException":
                    raise SignInFailedError(_CODE_EXPIRED) from exc
                raise self._failure("finish the sign-in at", exc) from exc
            except BotoCoreError as exc:
                raise self._failure("finish the sign-in at", exc) from exc
            return self._save(token)

    def _save(self, token: dict[str, Any]) -> datetime:
        expires_at = self._now() + timedelta(seconds=int(token["expiresIn"]))
        entry: dict[str, Any] = {
            "startUrl": self.target.start_url,
            "region": self.target.region,
            "accessToken": token["accessToken"],
            "expiresAt": _aws_time(expires_at),
        }
        if self.target.session_name:
            # An sso-session token is refreshed by botocore with the client's registration.
            entry["clientId"] = self._registration["clientId"]
            entry["clientSecret"] = self._registration["clientSecret"]
            entry["registrationExpiresAt"] = _aws_time(
                datetime.fromtimestamp(int(self._registration["clientSecretExpiresAt"]), UTC)
            )
            if token.get("refreshToken"):
                entry["refreshToken"] = token["refreshToken"]
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.cache_dir / f"{self.target.cache_key}.json"
        write_atomically(path, json.dumps(entry).encode("utf-8"), private=True)
        return expires_at

    def _call(self, what: str, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(what, exc) from exc

    def _failure(self, what: str, exc: ClientError | BotoCoreError) -> SignInFailedError:
        detail = (
            exc.response.get("Error", {}).get("Code", "error")
            if isinstance(exc, ClientError)
            else type(exc).__name__
        )
        return SignInFailedError(
            f"Ferry could not {what} IAM Identity Center for AWS profile "
            f"{self.target.aws_profile!r} ({detail}). Check the network and the profile's "
            "sso_start_url and sso_region, then sign in again."
        )


def _aws_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
