"""The relay: publishes the catalog's outbox to NATS JetStream.

Other systems (an indexer, a virus scanner, a thumbnailer) subscribe to the
stream instead of polling the catalog. Promises:

- Subject ``PREFIX.BUCKET.EVENT_TYPE`` (dots in a bucket name become ``_``,
  which no bucket name contains, so ``ferry.*.file.uploaded`` matches every
  bucket), the event as JSON in the body, header ``Nats-Msg-Id`` = the
  event's ``event_uid``.
- An event is marked published only after the server acknowledged it. A
  crash between the ack and the mark re-publishes with the same id, which
  the stream's duplicate window (two minutes) drops. An event old enough
  that an earlier publish may have left that window is first looked up in
  the stream by its id, and not sent again if it is there: exactly once in
  the stream, however long the relays were down (as long as the stream still
  keeps the earlier copy, see :class:`JetStreamPublisher`).
- An event the server refuses for good (larger than its max payload) is set
  aside with the reason and never blocks the events behind it.
- NATS unreachable: one line says so, events stay waiting, and the relay
  retries with backoff.

The NATS client (nats-py, asyncio) lives on a private event loop thread of
:class:`JetStreamPublisher`; everything else here is plain blocking code.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from desktop_app.core.catalog.outbox import EventOutbox, OutboxBacklog
from desktop_app.core.catalog.records import OutboxEvent
from desktop_app.core.model.errors import EventStreamError, FerryError
from desktop_app.core.settings.relay_options import RelayOptions as RelayOptions
from desktop_app.core.settings.relay_options import describe_nats_url as describe_nats_url

log = logging.getLogger(__name__)
T = TypeVar("T")

# JetStream drops a message whose Nats-Msg-Id it saw within this window; a
# relay restarted after a crash re-publishes well inside it.
DUPLICATE_WINDOW_SECONDS = 120.0
# An event is looked up in the stream before it is sent when an earlier
# publish may have been stored this close to (or beyond) the window's end:
# the claim, the look-up and the publish itself (publish_timeout) happen in
# between.
LOOKUP_MARGIN_SECONDS = 30.0
# The stream is read from this much before the oldest event of a looked-up
# batch was written (by the stream's clock): the age is carried from the
# catalog's clock to the stream's through this process's monotonic clock,
# and this covers the round trips in between.
_LOOKUP_SLACK = timedelta(seconds=60)
_LOOKUP_FETCH = 1000
# JetStream's error code for a message over the stream's max message size.
_MESSAGE_TOO_LARGE = 10054


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
_IN_STREAM = frozenset({PublishOutcome.STORED, PublishOutcome.DUPLICATE, PublishOutcome.FOUND})


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


class JetStreamPublisher:
    """nats-py on a private event loop thread, offered as blocking calls.

    ``open`` connects and makes sure the stream exists (subjects
    ``PREFIX.>``, file storage, a duplicate window of at least two minutes),
    or uses the existing one. Every NATS error becomes an
    :class:`EventStreamError` here.

    Before a batch with an event written longer ago than the stream's
    duplicate window less :data:`LOOKUP_MARGIN_SECONDS` and the publish
    timeout is sent, the stream's ``Nats-Msg-Id`` headers from just before
    that event's time on are read (an ephemeral consumer, headers only), and
    events found there are reported :attr:`PublishOutcome.FOUND`, not sent.
    Whoever sent such an event before did so after it was written, so the
    read covers every earlier publish; the claim's row locks keep other relays
    from sending it meanwhile. What was read is kept and only the stream's
    new messages are read for the next batch, so catching up a long backlog
    reads the stream once. The limits: a copy the stream no longer keeps
    (``max_age``, ``max_msgs``, a purge) is not found, and a relay frozen
    longer than the window after losing its claim may still send.
    """

    def __init__(self, options: RelayOptions) -> None:
        self.options = options
        self.where = describe_nats_url(options.nats_url)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ferry-nats", daemon=True
        )
        self._thread.start()
        self._client: Any = None
        self._jetstream: Any = None
        self._window = DUPLICATE_WINDOW_SECONDS
        self._seen: _StoredIds | None = None

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise EventStreamError(
                f"NATS at {self.where} did not answer within {timeout:.0f} s."
            ) from None

    def open(self) -> None:
        if self._client is None:
            self._call(self._open(), timeout=self.options.publish_timeout + 5)

    async def _open(self) -> None:
        import nats
        import nats.errors

        seen: list[Exception] = []

        async def quiet(error: Exception) -> None:
            # Reported by our own calls; nats-py would print a traceback.
            seen.append(error)

        try:
            client = await nats.connect(
                servers=[self.options.nats_url],
                connect_timeout=3,
                allow_reconnect=False,
                # nats-py tries the first connection again and again with 0
                # (it gives up only past a positive limit): two tries, then
                # our own backoff.
                max_reconnect_attempts=1,
                reconnect_time_wait=0.5,
                error_cb=quiet,
                name="ferry-relay",
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            raise EventStreamError(
                f"NATS at {self.where} cannot be reached ({_reason(seen[-1] if seen else exc)}). "
                "Check that the "
                "server runs and the address is right; events wait in the outbox meanwhile.",
                title="NATS unreachable",
            ) from exc
        jetstream = client.jetstream(timeout=self.options.publish_timeout)
        try:
            await self._ensure_stream(jetstream)
        except BaseException:
            await client.close()
            raise
        self._client, self._jetstream = client, jetstream

    async def _ensure_stream(self, jetstream: Any) -> None:
        import nats.errors
        import nats.js.errors
        from nats.js.api import StorageType

        name, subjects = self.options.stream, f"{self.options.subject_prefix}.>"
        try:
            info = await jetstream.stream_info(name)
        except nats.js.errors.NotFoundError:
            info = None
        except nats.js.errors.ServiceUnavailableError:
            raise EventStreamError(
                f"NATS at {self.where} answers but JetStream is not enabled there. Start the "
                "server with JetStream (nats-server -js).",
                transient=False,
                title="JetStream not enabled",
            ) from None
        except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
            raise EventStreamError(
                f"NATS at {self.where} did not tell about stream {name} ({_reason(exc)})."
            ) from exc
        if info is not None:
            window = float(info.config.duplicate_window or 0)
            self._window = window
            if window < DUPLICATE_WINDOW_SECONDS:
                log.warning(
                    "Stream %s keeps message ids for %.0f s only; events older than that are "
                    "looked up in the stream before they are sent, which reads the stream. "
                    "Raise its duplicate window to 2 minutes or more.",
                    name,
                    window,
                )
            return
        self._window = DUPLICATE_WINDOW_SECONDS
        try:
            await jetstream.add_stream(
                name=name,
                subjects=[subjects],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
        except nats.js.errors.APIError as exc:
            raise EventStreamError(
                f"NATS at {self.where} refused to create stream {name} for {subjects}: "
                f"{exc.description or exc}. If another stream takes these subjects already, "
                "run the relay with --stream set to that stream's name.",
                transient=False,
                title="Stream refused",
            ) from exc
        log.info("Created stream %s for %s on %s", name, subjects, self.where)

    def publish(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        """One result per message, in their order; call :meth:`open` first."""
        return self._call(self._publish(messages), timeout=self.options.publish_timeout + 5)

    async def _publish(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        import nats.errors

        results: dict[int, PublishResult] = {}
        pending: list[tuple[OutgoingMessage, asyncio.Future[Any]]] = []
        limit = int(self._client.max_payload)
        outgoing = list(messages)
        if self._needs_lookup(messages):
            try:
                stored = await self._stored_ids(messages)
            except EventStreamError as exc:
                # Never sent unchecked: they wait for the next try.
                return [
                    PublishResult(m.event_id, PublishOutcome.FAILED, exc.message) for m in messages
                ]
            for message in messages:
                if message.msg_id in stored:
                    results[message.event_id] = PublishResult(
                        message.event_id, PublishOutcome.FOUND
                    )
            outgoing = [m for m in messages if m.msg_id not in stored]
        else:
            # Caught up: what was read is not needed until the next backlog.
            self._seen = None
        for index, message in enumerate(outgoing):
            headers = {"Nats-Msg-Id": message.msg_id}
            # The server counts headers too (nats-py checks the body only, and
            # an oversized message would cost the connection).
            sent = {**headers, "Nats-Expected-Stream": self.options.stream}
            size = len(message.body) + _header_size(sent)
            if size > limit:
                results[message.event_id] = PublishResult(
                    message.event_id,
                    PublishOutcome.REFUSED,
                    f"the event is {size} bytes with its headers, over the NATS server's "
                    f"max payload of {limit} bytes",
                )
                continue
            try:
                # Sent in this order on one connection: the stream stores them so.
                future = await self._jetstream.publish_async(
                    message.subject, message.body, headers=headers, stream=self.options.stream
                )
            except (nats.errors.Error, OSError) as exc:
                reason = f"NATS at {self.where} took no more messages ({_reason(exc)})"
                for rest in outgoing[index:]:
                    results[rest.event_id] = PublishResult(
                        rest.event_id, PublishOutcome.FAILED, reason
                    )
                self._forget_client()
                break
            pending.append((message, future))
        if pending:
            await asyncio.wait([f for _m, f in pending], timeout=self.options.publish_timeout)
        for message, future in pending:
            results[message.event_id] = self._result(message, future)
        return [results[m.event_id] for m in messages]

    def _needs_lookup(self, messages: Sequence[OutgoingMessage]) -> bool:
        """Whether an earlier publish of one of them may have left the duplicate window.

        That publish came after the event was written; ours comes within the
        publish timeout. Then the whole batch is looked up (one read serves all).
        """
        if not messages:
            return False
        oldest = time.monotonic() - min(m.written for m in messages)
        margin = LOOKUP_MARGIN_SECONDS + self.options.publish_timeout
        return oldest >= self._window - margin

    async def _stored_ids(self, messages: Sequence[OutgoingMessage]) -> set[str]:
        """Which of the messages' ids the stream holds, read from before the oldest was written."""
        import nats.errors
        import nats.js.errors

        stream = self.options.stream
        try:
            info = await self._stream_clock(stream)
            oldest = time.monotonic() - min(m.written for m in messages)
            clock = info.get("ts")
            # Without the server's time (before nats-server 2.10): the whole stream.
            since = (
                datetime.fromisoformat(clock) - timedelta(seconds=oldest) - _LOOKUP_SLACK
                if clock
                else None
            )
            seen = self._seen
            last_seq = int(info.get("state", {}).get("last_seq", 0))
            if not (
                seen is not None
                and seen.stream_created == str(info.get("created"))
                and seen.covers(since)
                and last_seq + 1 >= seen.next_seq
            ):
                seen = _StoredIds(str(info.get("created")), since)
            elif since is not None:
                seen.forget_before(since)
            # Consistent even if the read stops half-way: ids up to next_seq.
            self._seen = seen
            await self._read_ids(seen)
        except (nats.errors.Error, nats.js.errors.Error, OSError, ValueError) as exc:
            raise EventStreamError(
                f"NATS at {self.where} did not let the relay read stream {stream} to see which "
                f"of its events the stream holds already ({_reason(exc)}); the relay's NATS "
                "user needs to create consumers on that stream, and the events wait meanwhile"
            ) from exc
        return {m.msg_id for m in messages if m.msg_id in seen.ids}

    async def _stream_clock(self, stream: str) -> dict[str, Any]:
        """The stream's info as the server sends it: nats-py drops ``ts``, the server's time."""
        reply = await self._client.request(
            f"$JS.API.STREAM.INFO.{stream}", b"", timeout=self.options.publish_timeout
        )
        info: dict[str, Any] = json.loads(reply.data)
        if "error" in info:
            raise ValueError(str(info["error"].get("description") or info["error"]))
        return info

    async def _read_ids(self, seen: _StoredIds) -> None:
        """Read the stream's message ids from where ``seen`` ends, headers only."""
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        stream = self.options.stream
        config = ConsumerConfig(
            name=f"ferry-relay-{uuid.uuid4().hex}",
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            filter_subject=f"{self.options.subject_prefix}.>",
            # Gone by itself should the relay die before deleting it.
            inactive_threshold=60.0,
            mem_storage=True,
            num_replicas=1,
        )
        if seen.next_seq > 1:
            config.deliver_policy, config.opt_start_seq = (
                DeliverPolicy.BY_START_SEQUENCE,
                seen.next_seq,
            )
        elif seen.since is not None:
            config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, seen.since
        else:
            config.deliver_policy = DeliverPolicy.ALL
        consumer = await self._jetstream.add_consumer(stream, config)
        subscription = await self._jetstream.pull_subscribe_bind(
            consumer=consumer.name, stream=stream
        )
        try:
            # Exactly what the stream held when the consumer was made.
            left = int(consumer.num_pending or 0)
            while left > 0:
                try:
                    batch = await subscription.fetch(
                        min(left, _LOOKUP_FETCH), timeout=self.options.publish_timeout
                    )
                except (TimeoutError, nats.errors.TimeoutError):
                    # Removed meanwhile (limits, purge): nothing left to find there.
                    if not (await subscription.consumer_info()).num_pending:
                        break
                    raise
                for message in batch:
                    metadata = message.metadata
                    msg_id = (message.headers or {}).get("Nats-Msg-Id")
                    if msg_id:
                        seen.add(msg_id, metadata.timestamp)
                    seen.next_seq = max(seen.next_seq, metadata.sequence.stream + 1)
                    left = min(left - 1, metadata.num_pending)
        finally:
            with contextlib.suppress(nats.errors.Error, OSError):
                await subscription.unsubscribe()
            with contextlib.suppress(nats.errors.Error, OSError):
                await self._jetstream.delete_consumer(stream, consumer.name)

    def _result(self, message: OutgoingMessage, future: asyncio.Future[Any]) -> PublishResult:
        import nats.js.errors

        if not future.done():
            future.cancel()
            self._forget_client()
            return PublishResult(
                message.event_id,
                PublishOutcome.FAILED,
                f"NATS at {self.where} did not acknowledge within "
                f"{self.options.publish_timeout:.0f} s",
            )
        error = future.exception()
        if error is None:
            ack = future.result()
            outcome = PublishOutcome.DUPLICATE if ack.duplicate else PublishOutcome.STORED
            return PublishResult(message.event_id, outcome)
        if isinstance(error, nats.js.errors.APIError) and error.err_code == _MESSAGE_TOO_LARGE:
            return PublishResult(
                message.event_id,
                PublishOutcome.REFUSED,
                f"stream {self.options.stream} refused it: {error.description}",
            )
        if isinstance(error, nats.js.errors.NoStreamResponseError):
            # The stream went away: open() makes it again next time.
            self._forget_client()
            reason = f"no stream on {self.where} takes {message.subject} (was it deleted?)"
        else:
            reason = f"NATS at {self.where} refused it ({_reason(error)})"
        return PublishResult(message.event_id, PublishOutcome.FAILED, reason)

    def _forget_client(self) -> None:
        client, self._client, self._jetstream = self._client, None, None
        if client is not None:
            self._loop.create_task(_close_quietly(client))

    def close(self) -> None:
        client, self._client, self._jetstream = self._client, None, None
        if client is not None and self._loop.is_running():
            with contextlib.suppress(FutureTimeout, RuntimeError):
                asyncio.run_coroutine_threadsafe(_close_quietly(client), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


async def _close_quietly(client: Any) -> None:
    try:
        await client.close()
    except Exception:  # closing a broken connection: nothing left to save
        log.debug("NATS client close failed", exc_info=True)


@dataclass
class _StoredIds:
    """The ``Nats-Msg-Id`` headers a stream holds from ``since`` (its clock) on.

    Read up to the stream sequence ``next_seq`` (exclusive); kept between
    batches so a backlog is read once, and trimmed as the backlog's oldest
    event moves on.
    """

    # The stream's creation time: a stream deleted and made again starts over.
    stream_created: str
    # None: from the stream's first message.
    since: datetime | None
    next_seq: int = 1
    ids: dict[str, datetime] = field(default_factory=dict)
    _order: deque[tuple[datetime, str]] = field(default_factory=deque)

    def covers(self, since: datetime | None) -> bool:
        return self.since is None or (since is not None and self.since <= since)

    def add(self, msg_id: str, stored: datetime) -> None:
        self.ids[msg_id] = stored
        self._order.append((stored, msg_id))

    def forget_before(self, since: datetime) -> None:
        if self.since is None:
            return
        while self._order and self._order[0][0] < since:
            stored, msg_id = self._order.popleft()
            if self.ids.get(msg_id) == stored:
                del self.ids[msg_id]
        self.since = max(self.since, since)


def _header_size(headers: dict[str, str]) -> int:
    block = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return len(block.encode())


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    if not text or text == name:
        return {
            "NoServersError": "no server answered",
            "ConnectionClosedError": "the connection closed",
            "TimeoutError": "timed out",
        }.get(name, name)
    return text.splitlines()[0][:200]


# -- the relay loop ---------------------------------------------------------------


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
                acked = [r.event_id for r in results if r.outcome in _IN_STREAM]
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
