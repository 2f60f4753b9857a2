"""Which events the stream holds already: the look-up beyond the duplicate window.

JetStream drops a message whose ``Nats-Msg-Id`` it saw within its duplicate
window, so a relay restarted soon after a crash may simply publish again.
An event old enough that an earlier publish may have left that window is
looked up first: :class:`StreamLookup` reads the stream's ``Nats-Msg-Id``
headers from just before that event's time on (an ephemeral consumer,
headers only), and the publisher sends only what is not there.

Promises: whoever sent such an event before did so after it was written,
so the read covers every earlier publish; what was read is kept and only
the stream's new messages are read for the next batch, so catching up a long
backlog reads the stream once; a stream deleted and made again is read
anew. The limits: a copy the stream no longer keeps (``max_age``,
``max_msgs``, a purge) is not found. A failed read raises
:class:`EventStreamError`: the events are then never sent unchecked.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from desktop_app.core.model.errors import EventStreamError
from desktop_app.core.relay.messages import OutgoingMessage, reason_of
from desktop_app.core.settings.relay_options import RelayOptions

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


class StreamLookup:
    """The look-up for one stream, run on the publisher's event loop with its client."""

    def __init__(self, options: RelayOptions, where: str) -> None:
        self.options = options
        self.where = where
        # The stream's duplicate window, as the publisher found it on opening.
        self.window = DUPLICATE_WINDOW_SECONDS
        self._seen: _StoredIds | None = None

    def needed(self, messages: Sequence[OutgoingMessage]) -> bool:
        """Whether an earlier publish of one of them may have left the duplicate window.

        That publish came after the event was written; ours comes within the
        publish timeout. Then the whole batch is looked up (one read serves all).
        """
        if not messages:
            return False
        oldest = time.monotonic() - min(m.written for m in messages)
        margin = LOOKUP_MARGIN_SECONDS + self.options.publish_timeout
        return oldest >= self.window - margin

    def forget(self) -> None:
        """Caught up: what was read is not needed until the next backlog."""
        self._seen = None

    async def stored_ids(
        self, client: Any, jetstream: Any, messages: Sequence[OutgoingMessage]
    ) -> set[str]:
        """Which of the messages' ids the stream holds, read from before the oldest was written."""
        import nats.errors
        import nats.js.errors

        stream = self.options.stream
        try:
            info = await self._stream_clock(client, stream)
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
            await self._read_ids(jetstream, seen)
        except (nats.errors.Error, nats.js.errors.Error, OSError, ValueError) as exc:
            raise EventStreamError(
                f"NATS at {self.where} did not let the relay read stream {stream} to see which "
                f"of its events the stream holds already ({reason_of(exc)}); the relay's NATS "
                "user needs to create consumers on that stream, and the events wait meanwhile"
            ) from exc
        return {m.msg_id for m in messages if m.msg_id in seen.ids}

    async def _stream_clock(self, client: Any, stream: str) -> dict[str, Any]:
        """The stream's info as the server sends it: nats-py drops ``ts``, the server's time."""
        reply = await client.request(
            f"$JS.API.STREAM.INFO.{stream}", b"", timeout=self.options.publish_timeout
        )
        info: dict[str, Any] = json.loads(reply.data)
        if "error" in info:
            raise ValueError(str(info["error"].get("description") or info["error"]))
        return info

    async def _read_ids(self, jetstream: Any, seen: _StoredIds) -> None:
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
        consumer = await jetstream.add_consumer(stream, config)
        subscription = await jetstream.pull_subscribe_bind(consumer=consumer.name, stream=stream)
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
                await jetstream.delete_consumer(stream, consumer.name)
