"""Print Ferry's file events as they arrive: a consumer in a dozen lines of nats-py.

python print_events.py [NATS_URL] [SUBJECTS]   # nats://127.0.0.1:4222 ferry.>
"""

import asyncio
import json
import sys

import nats


async def main(url: str = "nats://127.0.0.1:4222", subjects: str = "ferry.>") -> None:
    client = await nats.connect(url)
    seen: set[str] = set()  # a redelivered event keeps its event_id: act on it once

    async def handle(message: nats.aio.msg.Msg) -> None:
        event = json.loads(message.data)
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            file = event["file"]
            print(event["type"], file["bucket"], file["key"], file["sha256"], flush=True)
        await message.ack()

    await client.jetstream().subscribe(subjects, cb=handle, manual_ack=True)
    await asyncio.Event().wait()  # until interrupted


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
