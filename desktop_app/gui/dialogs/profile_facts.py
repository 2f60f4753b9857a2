"""What Settings says of a profile besides its fields: its secret and its server.

Whether the profile's S3 secret key is in the keyring (read with the profiles,
off the GUI thread; the secrets themselves are dropped at once) and what an
empty Secret key field then means; and what the profile's server does about
other programs' objects at Ferry's keys, as Ferry found out at the first upload
or a connection test. Pure text over what was read: no I/O but
:func:`read_secrets_kept`, which the dialog calls on its worker thread.
"""

from __future__ import annotations

import dataclasses

from desktop_app.core.model.errors import FerryError
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.settings.profiles import Encryption, Profile
from desktop_app.core.settings.secrets import SecretKind
from desktop_app.core.transfers.protection import LearntProtection


@dataclasses.dataclass(frozen=True)
class SecretsKept:
    """What the keyring holds, read with the profiles (off the GUI thread)."""

    keyring_usable: bool
    stored: frozenset[str]  # names of the profiles whose S3 secret key is in the keyring
    unknown: bool = False  # the keyring could not be read (locked)
    # names of the SSE-C profiles whose customer key is in the keyring
    customer_keys: frozenset[str] = frozenset()


def read_secrets_kept(env: Environment, profiles: list[Profile]) -> SecretsKept:
    """Which profiles have a secret key in the keyring (the secrets themselves are dropped)."""
    if not env.secrets.usable:
        return SecretsKept(False, frozenset())
    try:
        stored = frozenset(
            p.name
            for p in profiles
            if not p.sandbox and env.secrets.get(p.name, SecretKind.S3_SECRET_KEY)
        )
        customer_keys = frozenset(
            p.name
            for p in profiles
            if p.encryption is Encryption.SSE_C
            and env.secrets.get(p.name, SecretKind.SSE_CUSTOMER_KEY)
        )
    except FerryError:
        return SecretsKept(True, frozenset(), unknown=True)
    return SecretsKept(True, stored, customer_keys=customer_keys)


def secret_placeholder(profile: Profile, is_new: bool, kept: SecretsKept) -> tuple[str, str]:
    """What an empty Secret key field means for this profile, and a tooltip that says more."""
    todo = (
        "Without a keyring Ferry cannot store a secret: set AWS_SECRET_ACCESS_KEY (it goes "
        "with the access key ID) or use ~/.aws/credentials."
    )
    if profile.sandbox:
        return "none needed: the sandbox accepts any key", ""
    if kept.unknown:
        return "unchanged (if one is in the keyring)", "The keyring could not be read."
    if profile.name in kept.stored:
        return "unchanged (kept in the keyring)", "Type a new one to replace it."
    if not kept.keyring_usable:
        return "none can be kept: no usable keyring", todo
    if profile.aws_profile:
        return "none stored: the AWS sign-in profile signs in", ""
    if is_new:
        return "kept in the keyring when saved", ""
    return "none stored: type one to keep it in the keyring", (
        "Or leave it empty and set AWS_SECRET_ACCESS_KEY, or use ~/.aws/credentials."
    )


def protection_text(learnt: LearntProtection | None) -> str:
    """What a profile's server does about other programs' objects, in a person's words."""
    if learnt is None:
        return (
            "Other programs' objects: not found out yet. Test connection finds out whether "
            "this server refuses Ferry's writes over them (the first upload does too)."
        )
    return f"Other programs' objects: {learnt.describe()}."
