"""Wiring a relay over a profile's catalog: the NATS options resolved, the secrets
redacted, only the catalog opened (no S3 keys needed).

Promises: the NATS address comes from the argument, else ``FERRY_NATS_URL``,
else the profile's ``relay_nats_url``, else NATS's default on this machine;
a token or password in it, and the catalog's password, never reach the log.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from desktop_app.core.catalog.service import open_catalog
from desktop_app.core.relay.loop import Relay
from desktop_app.core.relay.messages import EventPublisher
from desktop_app.core.relay.publisher import JetStreamPublisher
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.logs import REDACTOR
from desktop_app.core.settings.secrets import catalog_password


def open_relay(
    env: Environment,
    profile_name: str | None = None,
    *,
    nats_url: str | None = None,
    stream: str | None = None,
    subject_prefix: str | None = None,
    batch_size: int | None = None,
    publisher: EventPublisher | None = None,
) -> Relay:
    """A relay over a profile's catalog: only the catalog is opened (no S3 keys needed).

    The NATS address comes from ``nats_url``, else ``FERRY_NATS_URL``, else the
    profile's ``relay_nats_url``, else NATS's default on this machine.
    """
    profile = env.profile(profile_name)
    options = profile.relay_options(
        nats_url=nats_url or env.environ.get("FERRY_NATS_URL"),
        stream=stream,
        subject_prefix=subject_prefix,
    )
    if batch_size is not None:
        options = dataclasses.replace(options, batch_size=batch_size)
    options.validate()
    nats_parts = urlsplit(options.nats_url)
    # nats://TOKEN@host carries a token as its user name.
    REDACTOR.add_secret(nats_parts.password or nats_parts.username)
    password = catalog_password(profile, env.secrets, env.environ)
    REDACTOR.add_secret(password)
    catalog = open_catalog(
        profile.catalog_url,
        owner=profile.owner,
        password=password,
        journal_file=env.paths.journal_file,
    )
    return Relay(
        catalog.outbox(),
        publisher or JetStreamPublisher(options),
        options,
        on_close=catalog.close,
    )
