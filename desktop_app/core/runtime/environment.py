"""What Ferry reads from the outside world (paths, environment, keyring), in one place.

Light on purpose: `ferry status` starts from it and loads no engine, storage or
catalog code (see :mod:`desktop_app.core.runtime.status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from desktop_app.core.settings.paths import FerryPaths
from desktop_app.core.settings.profiles import (
    ENVIRONMENT_PROFILE_NAME,
    Profile,
    ProfileStore,
    profile_from_environment,
)
from desktop_app.core.settings.secrets import SecretStore


@dataclass(frozen=True)
class Environment:
    """What Ferry reads from the outside world, gathered in one place and passed in."""

    paths: FerryPaths
    environ: Mapping[str, str]
    secrets: SecretStore

    @property
    def profiles(self) -> ProfileStore:
        # Profiles name the endpoint a file is sent to: never read from, or
        # written to, a folder another user can change.
        self.paths.ensure()
        return ProfileStore(self.paths.profiles_file)

    def profile(self, name: str | None = None) -> Profile:
        """The profile to use: the one named, else the stored default, else the
        unnamed one that FERRY_* variables alone make; FERRY_* overrides on top."""
        store = self.profiles
        if name == ENVIRONMENT_PROFILE_NAME or (name is None and store.default_name() is None):
            made = profile_from_environment(
                self.environ, self.paths.default_catalog_url(ENVIRONMENT_PROFILE_NAME)
            )
            if made is not None:
                return made
        return store.get(name).with_env_overrides(self.environ)

    def describe_profile_source(self, profile: Profile) -> str | None:
        """One line saying where a profile came from, when not only from the profile file."""
        names = ", ".join(profile.overridden_by(self.environ))
        if profile.name == ENVIRONMENT_PROFILE_NAME and not self.profiles.has(profile.name):
            return f"Profile from environment variables alone ({names}); none is stored."
        return f"Profile {profile.name!r}, changed by {names}." if names else None
