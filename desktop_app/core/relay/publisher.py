"""The JetStream publisher: nats-py on a private event loop, offered as blocking calls.

:class:`JetStreamPublisher` connects, makes sure the relay's stream exists
(or uses the existing one), and publishes a batch of messages on one
connection, in order, answering one
:class:`~desktop_app.core.relay.messages.PublishResult` per message. Events
old enough to have left the stream's duplicate window are first looked up
(:mod:`desktop_app.core.relay.lookup`). Everything else of the relay is plain
blocking code.

Promises: every NATS error becomes an :class:`EventStreamError` or a FAILED
result here; a message is STORED or DUPLICATE only once the server
acknowledged it; a message over the server's max payload (headers counted)
is REFUSED without costing the connection; a broken connection is dropped
and made again at the next :meth:`JetStreamPublisher.open`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from desktop_app.core.model.errors import EventStreamError
from desktop_app.core.relay.lookup import DUPLICATE_WINDOW_SECONDS, StreamLookup
from desktop_app.core.relay.messages import (
    OutgoingMessage,
    PublishOutcome,
    PublishResult,
    header_size,
    reason_of,
)
from desktop_app.core.settings.relay_options import RelayOptions, describe_nats_url

log = logging.getLogger(__name__)
T = TypeVar("T")

# JetStream's error code for a message over the stream's max message size.
_MESSAGE_TOO_LARGE = 10054


class JetStreamPublisher:
    """nats-py on a private event loop thread, offered as blocking calls.

    ``open`` connects and makes sure the stream exists (subjects
    ``PREFIX.>``, file storage, a duplicate window of at least two minutes),
    or uses the existing one. Every NATS error becomes an
    :class:`EventStreamError` here.

    Before a batch with an event written longer ago than the stream's
    duplicate window less ``LOOKUP_MARGIN_SECONDS`` and the publish timeout
    is sent (:class:`~desktop_app.core.relay.lookup.StreamLookup`), the
    stream's ``Nats-Msg-Id`` headers from just before
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
        self._lookup = StreamLookup(options, self.where)

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
                f"NATS at {self.where} cannot be reached ({reason_of(seen[-1] if seen else exc)}). "
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
                f"NATS at {self.where} did not tell about stream {name} ({reason_of(exc)})."
            ) from exc
        if info is not None:
            window = float(info.config.duplicate_window or 0)
            self._lookup.window = window
            if window < DUPLICATE_WINDOW_SECONDS:
                log.warning(
                    "Stream %s keeps message ids for %.0f s only; events older than that are "
                    "looked up in the stream before they are sent, which reads the stream. "
                    "Raise its duplicate window to 2 minutes or more.",
                    name,
                    window,
                )
            return
        self._lookup.window = DUPLICATE_WINDOW_SECONDS
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
        if self._lookup.needed(messages):
            try:
                stored = await self._lookup.stored_ids(self._client, self._jetstream, messages)
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
            self._lookup.forget()  # caught up
        for index, message in enumerate(outgoing):
            headers = {"Nats-Msg-Id": message.msg_id}
            # The server counts headers too (nats-py checks the body only, and
            # an oversized message would cost the connection).
            sent = {**headers, "Nats-Expected-Stream": self.options.stream}
            size = len(message.body) + header_size(sent)
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
                reason = f"NATS at {self.where} took no more messages ({reason_of(exc)})"
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
            reason = f"NATS at {self.where} refused it ({reason_of(error)})"
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
