"""The relay's loop: the catalog's outbox, claimed batch by batch, into NATS JetStream.

Other systems (an indexer, a virus scanner, a thumbnailer) subscribe to the
stream instead of polling the catalog. :class:`Relay` claims the waiting
outbox events in order, hands them to an
:class:`~desktop_app.core.relay.messages.EventPublisher` (JetStream:
:mod:`desktop_app.core.relay.publisher`) and marks what the stream holds;
``ferry relay`` runs it once (``--once``) or until stopped, and prints its
:class:`RelayReport`. Promises:

- Subject ``PREFIX.BUCKET.EVENT_TYPE``, the event as JSON in the body, header
  ``Nats-Msg-Id`` = the event's ``event_uid`` (:mod:`.messages`).
- An event is marked published only after the server acknowledged it. A
  crash between the ack and the mark re-publishes with the same id, which
  the stream's duplicate window (two minutes) drops. An event old enough
  that an earlier publish may have left that window is first looked up in
  the stream by its id, and not sent again if it is there: exactly once in
  the stream, however long the relays were down (as long as the stream still
  keeps the earlier copy, see :mod:`.lookup`).
- An event the server refuses for good (larger than its max payload) is set
  aside with the reason and never blocks the events behind it.
- NATS unreachable: one line says so, events stay waiting, and the relay
  retries with backoff.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from desktop_app.core.catalog.outbox import EventOutbox, OutboxBacklog
from desktop_app.core.catalog.records import OutboxEvent
from desktop_app.core.model.errors import EventStreamError, FerryError
from desktop_app.core.relay.messages import (
    IN_STREAM,
    EventPublisher,
    OutgoingMessage,
    PublishOutcome,
    PublishResult,
    message_body,
    subject_for,
)
from desktop_app.core.settings.relay_options import RelayOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedEvent:
    event_id: int
    event_uid: str
    subject: str
    reason: str


@dataclass
class RelayReport:
    """What a run of the relay did."""

    published: int = 0
    # Events the stream already held (after a crash), counted in published:
    # dropped by the stream as re-publishes, or found there and not sent again.
    duplicates: int = 0
    # Of those, found by looking them up (an earlier publish beyond the duplicate window).
    found_in_stream: int = 0
    skipped: list[SkippedEvent] = field(default_factory=list)
    held_back: int = 0  # left for later: an earlier event of their file was in another relay
    batches: int = 0
    error: FerryError | None = None
    backlog: OutboxBacklog | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Relay:
    """Moves waiting outbox events into the stream, in order, and marks them."""

    def __init__(
        self,
        outbox: EventOutbox,
        publisher: EventPublisher,
        options: RelayOptions,
        *,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.options = options
        self._on_close = on_close
        self._trouble: str | None = None

    def close(self) -> None:
        self.publisher.close()
        self.outbox.close()
        if self._on_close is not None:
            self._on_close()

    def publish_waiting(self) -> RelayReport:
        """Publish what waits now and return (``ferry relay --once``)."""
        return self._loop(threading.Event(), once=True)

    def run(self, stop: threading.Event) -> RelayReport:
        """Publish until ``stop`` is set; transient trouble is retried with backoff."""
        return self._loop(stop, once=False)

    def _loop(self, stop: threading.Event, *, once: bool) -> RelayReport:
        self.outbox.take_relay_lock()
        report = RelayReport()
        failures = 0
        while not stop.is_set():
            try:
                self._drain(report, stop)
            except FerryError as exc:
                failures += 1
                if not exc.transient or (once and failures >= self.options.once_attempts):
                    report.error = exc
                    break
                if once:
                    # The report says it at the end, once.
                    log.info("Relay: %s: %s; trying again.", exc.title, exc.message)
                else:
                    self._say_trouble(exc)
                stop.wait(self._backoff(failures))
                continue
            if once:
                break
            if failures:
                log.warning("Relay: publishing again (%s published so far).", report.published)
                failures, self._trouble = 0, None
            self._sleep_until_events(stop)
        report.backlog = self.outbox.backlog()
        return report

    def _sleep_until_events(self, stop: threading.Event) -> None:
        deadline = time.monotonic() + self.options.poll_seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            # Short slices, so a stop request is seen within a second.
            if self.outbox.wait(min(1.0, left)):
                return

    def _drain(self, report: RelayReport, stop: threading.Event) -> None:
        """Claim and publish batches until nothing claimable waits."""
        while not stop.is_set():
            failure: PublishResult | None = None
            with self.outbox.claim(self.options.batch_size) as claim:
                report.held_back += claim.held_back
                if not claim.events:
                    return
                report.batches += 1
                self.publisher.open()
                messages = [self._message(e, claim.age_seconds(e)) for e in claim.events]
                results = self.publisher.publish(messages)
                acked = [r.event_id for r in results if r.outcome in IN_STREAM]
                claim.mark_published(acked)
                report.published += len(acked)
                found = sum(r.outcome is PublishOutcome.FOUND for r in results)
                report.found_in_stream += found
                report.duplicates += found + sum(
                    r.outcome is PublishOutcome.DUPLICATE for r in results
                )
                # Results come in the order of the messages, which is the claim's.
                for event, message, result in zip(claim.events, messages, results, strict=True):
                    if result.outcome is PublishOutcome.REFUSED:
                        claim.mark_skipped(event.id, result.reason)
                        skipped = SkippedEvent(
                            event.id, event.event_uid, message.subject, result.reason
                        )
                        report.skipped.append(skipped)
                        log.warning(
                            "Relay: event %s (%s) set aside: %s. It stays in the outbox with "
                            "this reason; the events behind it go on.",
                            skipped.event_id,
                            skipped.subject,
                            skipped.reason,
                        )
                    elif result.outcome is PublishOutcome.FAILED and failure is None:
                        failure = result
            # Outside the claim: what was acknowledged is committed as published first.
            if failure is not None:
                raise EventStreamError(failure.reason + ".")
            if claim.held_back and len(claim.events) < self.options.batch_size:
                return

    def _message(self, event: OutboxEvent, age_seconds: float) -> OutgoingMessage:
        return OutgoingMessage(
            event.id,
            event.event_uid,
            subject_for(self.options.subject_prefix, event),
            message_body(event),
            written=time.monotonic() - age_seconds,
        )

    def _backoff(self, failures: int) -> float:
        base: float = min(self.options.max_backoff, 0.5 * 2.0 ** (failures - 1))
        return base * random.uniform(0.8, 1.2)

    def _say_trouble(self, error: FerryError) -> None:
        """One line per outage, not one per retry (the rest go to the log file)."""
        line = f"{error.title}: {error.message}"
        if self._trouble is not None:
            log.info("Relay: still failing: %s", line)
            return
        self._trouble = line
        try:
            waiting = self.outbox.backlog().waiting
            count = f"{waiting} event(s) wait, none lost"
        except FerryError:
            count = "events wait in the outbox"
        log.warning("Relay: %s (%s); retrying with backoff.", line, count)
