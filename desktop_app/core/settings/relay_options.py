"""Where and how `ferry relay` publishes: the options a profile names, checked.

Kept apart from :mod:`desktop_app.core.relay` (NATS, asyncio, the catalog's
outbox) so that reading a profile, which checks these, loads none of that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from desktop_app.core.model.errors import ConfigError

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_STREAM = "FERRY"
DEFAULT_SUBJECT_PREFIX = "ferry"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class RelayOptions:
    """Where and how to publish; each has a default a team can leave alone."""

    nats_url: str = DEFAULT_NATS_URL
    stream: str = DEFAULT_STREAM
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    batch_size: int = 100
    # The slow poll beside LISTEN/NOTIFY (notifications are lost while nobody listens).
    poll_seconds: float = 5.0
    publish_timeout: float = 10.0
    # With --once: how many times a failed round is tried before giving up.
    once_attempts: int = 3
    max_backoff: float = 30.0

    def validate(self) -> None:
        parts = urlsplit(self.nats_url)
        if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.hostname:
            raise ConfigError(
                f"The NATS address {describe_nats_url(self.nats_url)!r} should look like "
                "nats://host:4222 (or tls://, ws://, wss://)."
            )
        if not _TOKEN.match(self.stream):
            raise ConfigError(
                f"The stream name {self.stream!r} may use letters, digits, '-' and '_' only."
            )
        if not all(_TOKEN.match(token) for token in self.subject_prefix.split(".")):
            raise ConfigError(
                f"The subject prefix {self.subject_prefix!r} should be dot-separated words of "
                "letters, digits, '-' and '_' (no spaces, '*' or '>'), e.g. 'ferry' or "
                "'acme.files'."
            )
        if self.batch_size < 1 or self.poll_seconds <= 0 or self.publish_timeout <= 0:
            raise ConfigError("Relay batch size, poll interval and timeout must be positive.")


def describe_nats_url(url: str) -> str:
    """The NATS URL without user, password or token, for messages."""
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
