"""`ferry relay`: publish the catalog's outbox events to NATS JetStream.

Until interrupted, or with ``--once`` what waits now. Exit 0 when every event
went out and none was set aside, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import threading

from desktop_app.cli.rendering import EXIT_FAILED, EXIT_OK, backlog_json, emit, say
from desktop_app.cli.session import environment
from desktop_app.core.settings.relay_options import describe_nats_url


def cmd_relay(args: argparse.Namespace) -> int:
    from desktop_app.core.runtime.relay_wiring import open_relay

    relay = open_relay(
        environment(),
        args.profile,
        nats_url=args.nats,
        stream=args.stream,
        subject_prefix=args.subject_prefix,
        batch_size=args.batch,
    )
    where = f"stream {relay.options.stream} at {describe_nats_url(relay.options.nats_url)}"
    try:
        if args.once:
            report = relay.publish_waiting()
        else:
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda _s, _f: stop.set())
            say(f"Relay: publishing catalog events to {where}. Ctrl+C stops it.")
            report = relay.run(stop)
    finally:
        relay.close()
    ok = report.ok and not report.skipped
    if args.json:
        emit(
            {
                "stream": relay.options.stream,
                "nats": describe_nats_url(relay.options.nats_url),
                "published": report.published,
                "duplicates": report.duplicates,
                "found_in_stream": report.found_in_stream,
                "skipped": [dataclasses.asdict(s) for s in report.skipped],
                "held_back": report.held_back,
                "outbox": backlog_json(report.backlog) if report.backlog else None,
                "error": (
                    {"title": report.error.title, "message": report.error.message}
                    if report.error
                    else None
                ),
                "ok": ok,
            }
        )
    else:
        waiting = report.backlog.waiting if report.backlog else "?"
        print(f"Published {report.published} event(s) to {where}; {waiting} wait.")
        if report.duplicates:
            print(f"{report.duplicates} of them the stream had already (dropped as duplicates).")
        for skipped in report.skipped:
            print(f"Set aside event {skipped.event_id} ({skipped.subject}): {skipped.reason}")
        if report.error is not None:
            say(f"ferry: {report.error.title}: {report.error.message}")
    return EXIT_OK if ok else EXIT_FAILED
