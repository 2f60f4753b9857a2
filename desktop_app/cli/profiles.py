"""`ferry profile ...`: add, list, show, remove, test a profile, and sign in for it.

Secrets (the S3 secret, the catalog password, the SSE-C customer key) are
read from stdin or asked on a terminal and go to the keyring only: never
echoed, printed or written to a file. A secret the keyring could not keep is
said, with what to do instead, and the command exits 1.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import getpass
import sys
from typing import Any

from desktop_app.cli.rendering import EXIT_FAILED, EXIT_OK, emit, say
from desktop_app.cli.session import environment
from desktop_app.core.model.errors import FerryError
from desktop_app.core.model.sizes import MIB
from desktop_app.core.settings.profiles import Encryption, Profile
from desktop_app.core.settings.secrets import SecretKind, SecretStore, parse_customer_key


def _read_secret(label: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise FerryError(f"No terminal to ask for the {label}; pass it on stdin with --*-stdin.")
    return getpass.getpass(f"{label}: ")


def cmd_profile_add(args: argparse.Namespace) -> int:
    env = environment()
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
    say(f"Profile {profile.name!r} saved in {store.path}; its secret comes from {where}.")
    for kind, why in lost.items():
        say(f"ferry: {_secret_not_kept(profile, kind, why)}")
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
    say(
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
    store = environment().profiles
    profiles = store.profiles()
    default = store.default_name()
    if args.json:
        emit({"default": default, "profiles": [_profile_json(p) for p in profiles]})
        return EXIT_OK
    for profile in profiles:
        mark = "*" if profile.name == default else " "
        print(f"{mark} {profile.name:<16} {profile.endpoint_url or 'AWS S3'}  {profile.bucket}")
    if not profiles:
        print("No profiles. Run `ferry sandbox` or `ferry profile add`.")
    return EXIT_OK


def cmd_profile_show(args: argparse.Namespace) -> int:
    env = environment()
    profile = env.profile(args.name)
    table = _profile_json(profile)
    if profile.encryption is Encryption.SSE_C:
        held = env.secrets.get(profile.name, SecretKind.SSE_CUSTOMER_KEY)
        table["customer key"] = "in the keyring" if held else "missing"
    if args.json:
        emit(table)
    else:
        width = max(len(key) for key in table)  # the longest name sets the column (#29)
        for key, value in table.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def cmd_profile_remove(args: argparse.Namespace) -> int:
    env = environment()
    env.profiles.remove(args.name)
    for kind in SecretKind:
        if kind is not SecretKind.SSE_CUSTOMER_KEY:
            env.secrets.delete(args.name, kind)
    say(f"Profile {args.name!r} removed (its secrets too).")
    if env.secrets.get(args.name, SecretKind.SSE_CUSTOMER_KEY):
        # Deleting it would make every object written with it unreadable.
        say(
            f"ferry: its SSE-C customer key stays in the keyring (entry '{args.name}/"
            f"{SecretKind.SSE_CUSTOMER_KEY.value}'): objects written with it cannot be read "
            "without it. A profile added again under this name uses it."
        )
    return EXIT_OK


def cmd_profile_test(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.diagnosis import diagnose_profile

    env = environment()
    profile = env.profile(args.name)
    source = env.describe_profile_source(profile)
    if source is not None:
        say(source)
    results = diagnose_profile(env, profile)
    ok = all(r.ok for r in results)
    if args.json:
        emit(
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

    env = environment()
    target = sign_in_target(env.profile(args.name), env.environ)
    sign_in = SsoSignIn(target)
    code = sign_in.start()
    say(
        f"To sign in AWS profile {target.aws_profile!r}, open {code.verification_uri} and confirm "
        f"the code {code.user_code} (valid until {code.expires_at:%H:%M} UTC)."
    )
    with contextlib.suppress(webbrowser.Error):  # the address is printed: they open it
        webbrowser.open(code.verification_uri_complete)
    say("Waiting for the approval in the browser (Ctrl-C to stop)...")
    try:
        valid_until = sign_in.finish()
    except KeyboardInterrupt:
        say("Stopped; nothing was changed.")
        return EXIT_FAILED
    say(f"Signed in; the sign-in is valid until {valid_until:%Y-%m-%d %H:%M} UTC.")
    return EXIT_OK
