"""The sandbox as a profile: its local server started (or reused) and the "local"
profile written for it.

Promises: a profile named "local" that is not the sandbox is never
overwritten (the server started for it is stopped and the person is told);
the sandbox's bucket exists once :func:`start_sandbox` returns; its
placeholder keys are the only ones it takes (:func:`sandbox_access`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from desktop_app.core.model.errors import FerryError, StorageError
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.logs import REDACTOR
from desktop_app.core.runtime.sandbox import (
    SANDBOX_BUCKET,
    SandboxAccess,
    SandboxServer,
    SandboxState,
    find_weed,
)
from desktop_app.core.settings.profiles import DEFAULT_PROFILE_NAME, Profile
from desktop_app.core.settings.secrets import (
    SANDBOX_ACCESS_KEY,
    SANDBOX_SECRET_KEY,
    resolve_s3_credentials,
)
from desktop_app.core.storage.s3 import S3Storage


def sandbox_access(profile: Profile) -> SandboxAccess:
    """The sandbox's address and placeholder keys, for other programs."""
    return SandboxAccess(
        profile.endpoint_url or "", profile.bucket, SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY
    )


def sandbox_running(env: Environment) -> bool:
    return SandboxServer(env.paths.sandbox_dir, Path("weed")).running() is not None


def start_sandbox(env: Environment) -> tuple[SandboxServer, SandboxState, Profile]:
    """Start (or reuse) the sandbox server and write the "local" profile for it."""
    env.paths.ensure()
    server = SandboxServer(env.paths.sandbox_dir, find_weed(env.environ))
    state = server.start()
    store = env.profiles
    try:
        existing = store.get(DEFAULT_PROFILE_NAME)
    except FerryError:
        existing = None
    profile = Profile(
        name=DEFAULT_PROFILE_NAME,
        bucket=SANDBOX_BUCKET,
        catalog_url=env.paths.default_catalog_url(DEFAULT_PROFILE_NAME),
        endpoint_url=state.endpoint_url,
        sandbox=True,
    )
    if existing is not None and existing.sandbox:
        profile = dataclasses.replace(existing, endpoint_url=state.endpoint_url)
    if existing is None or existing != profile:
        if existing is not None and not existing.sandbox:
            server.stop()
            raise FerryError(
                f"A profile named {DEFAULT_PROFILE_NAME!r} exists and is not the sandbox; "
                "remove or rename it first (`ferry profile remove local`).",
                title="Profile name taken",
            )
        store.save(profile, make_default=existing is None)
    credentials = resolve_s3_credentials(profile, env.secrets, env.environ)
    REDACTOR.add_binary_secret(credentials.sse_customer_key)
    storage = S3Storage.connect(profile, credentials)
    try:
        storage.create_bucket_if_missing()
    except StorageError:
        server.stop()
        raise
    return server, state, profile
