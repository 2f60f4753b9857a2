"""What the relay hands the stream, and what it hears back.

An outbox event becomes an :class:`OutgoingMessage`: its subject
``PREFIX.BUCKET.EVENT_TYPE`` (:func:`subject_for`), its JSON body
(:func:`message_body`) and its ``Nats-Msg-Id`` (the event's ``event_uid``).
A publisher answers each with a :class:`PublishResult`; :class:`EventPublisher`
is what the relay's loop needs of one (JetStream, or a test's own).

Promises: a bucket's dots become ``_`` in the subject (no bucket name has
one), so ``ferry.*.file.uploaded`` matches every bucket; the body carries
the event's id, type, outbox sequence and time first, the file's facts under
``file``; a failure's reason is one line a person can read.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from desktop_app.core.catalog.records import OutboxEvent


def subject_for(prefix: str, event: OutboxEvent) -> str:
    bucket = str(event.payload.get("bucket") or "unknown").replace(".", "_")
    return f"{prefix}.{bucket}.{event.event_type.value}"


def message_body(event: OutboxEvent) -> bytes:
    """The event as consumers read it: ids and time first, the file's facts in ``file``."""
    document = {
        "event_id": event.event_uid,
        "type": event.event_type.value,
        # The outbox's order: increasing per file, so a consumer can tell stale news.
        "sequence": event.id,
        "created_at": event.created_at.isoformat(),
        "file": event.payload,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class OutgoingMessage:
    event_id: int
    msg_id: str
    subject: str
    body: bytes
    # When the catalog wrote the event, on this process's time.monotonic()
    # clock (its age by the catalog's clock, subtracted from a reading taken
    # at the claim): no earlier publish of it can be older.
    written: float


class PublishOutcome(enum.Enum):
    STORED = "stored"  # acknowledged, new in the stream
    DUPLICATE = "duplicate"  # acknowledged, the stream had it already (a re-publish)
    FOUND = "found"  # looked up: the stream holds it from an earlier publish; not sent again
    REFUSED = "refused"  # the server will never take it: set aside
    FAILED = "failed"  # not acknowledged (timeout, connection): try again later


# In the stream once this run is over: marked published.
IN_STREAM = frozenset({PublishOutcome.STORED, PublishOutcome.DUPLICATE, PublishOutcome.FOUND})


@dataclass(frozen=True)
class PublishResult:
    event_id: int
    outcome: PublishOutcome
    reason: str = ""


class EventPublisher(Protocol):
    """Where events go: a JetStream stream (tests may pass another)."""

    def open(self) -> None: ...

    def publish(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]: ...

    def close(self) -> None: ...


def header_size(headers: dict[str, str]) -> int:
    """The bytes the server counts for a message's headers (with their framing)."""
    block = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return len(block.encode())


def reason_of(exc: BaseException) -> str:
    """A NATS client error as the one line a failure's reason gives."""
    text = str(exc).strip()
    name = type(exc).__name__
    if not text or text == name:
        return {
            "NoServersError": "no server answered",
            "ConnectionClosedError": "the connection closed",
            "TimeoutError": "timed out",
        }.get(name, name)
    return text.splitlines()[0][:200]
