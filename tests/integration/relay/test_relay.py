"""`ferry relay`: the catalog's outbox into a real NATS JetStream stream.

Against the session's nats-server (JetStream, free loopback port), weed mini
and PostgreSQL. What is checked is what a subscriber sees: the messages in
the stream, their ids and order, and what the outbox says afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from desktop_app.core.catalog.records import UploadIntent
from desktop_app.core.catalog.schema import OutboxEventType
from desktop_app.core.catalog.service import CatalogService, open_catalog
from desktop_app.core.model.errors import RelayLockTaken
from desktop_app.core.relay.loop import Relay
from desktop_app.core.relay.publisher import JetStreamPublisher
from desktop_app.core.settings.paths import FerryPaths
from desktop_app.core.settings.relay_options import RelayOptions
from tests.conftest import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    NatsStream,
    PgLogins,
    WeedServer,
    _free_port,
    start_nats_server,
    stop_nats_server,
)
from tests.integration.cli.test_cli import run_ferry


def file_key(body: dict[str, object]) -> str:
    """The key of the file an event message is about."""
    file = body["file"]
    assert isinstance(file, dict)
    key = file["key"]
    assert isinstance(key, str)
    return key


def event_type(body: dict[str, object]) -> str:
    kind = body["type"]
    assert isinstance(kind, str)
    return kind


CREDS = {"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}


def relay_args(stream: NatsStream, *extra: str) -> list[str]:
    return [
        "relay",
        "--nats",
        stream.url,
        "--stream",
        stream.name,
        "--subject-prefix",
        stream.prefix,
        *extra,
    ]


def make_events(catalog: CatalogService, keys: list[str], bucket: str = "files") -> None:
    """file.uploaded for each key, through the catalog as an upload makes them."""
    for key in keys:
        token = uuid.uuid4().hex
        reserved = catalog.reserve(
            UploadIntent(
                bucket=bucket,
                key=key,
                original_name=key.rsplit("/", 1)[-1],
                size=3,
                sha256=uuid.uuid4().hex * 2,
                token=token,
            )
        )
        catalog.activate(reserved.record.id, etag="e", token=token)


def test_relay_once_publishes_every_event_once_in_order_per_file(
    tmp_path: Path, weed: WeedServer, bucket: str, nats_stream: NatsStream
) -> None:
    home = tmp_path / "home"
    added = run_ferry(
        home, "profile", "add", "team", "--bucket", bucket, "--endpoint-url", weed.endpoint_url
    )
    assert added.returncode == 0, added.stderr
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / name).write_text(f"content of {name}")
    assert run_ferry(home, "upload", str(folder), env=CREDS).returncode == 0
    assert run_ferry(home, "delete", "docs/b.txt", env=CREDS).returncode == 0
    (folder / "b.txt").write_text("b, written again")
    assert run_ferry(home, "upload", str(folder), env=CREDS).returncode == 0
    # An object another program put there: the check adopts it (file.repaired).
    weed.client().put_object(Bucket=bucket, Key="orphan.bin", Body=b"from aws-cli")
    repaired = run_ferry(home, "check", "--repair", "--yes", "--grace", "0", env=CREDS)
    assert repaired.returncode in (0, 1), repaired.stderr

    paths = FerryPaths.from_environment({"FERRY_HOME": str(home)})
    catalog = open_catalog(paths.default_catalog_url("team"), owner="x")
    outbox = catalog.unpublished_events(limit=100)
    catalog.close()
    types = [e.event_type for e in outbox]
    assert types.count(OutboxEventType.FILE_UPLOADED) == 4
    assert OutboxEventType.FILE_DELETED in types
    assert OutboxEventType.FILE_REPAIRED in types

    status = run_ferry(home, "status", "--json", env=CREDS)
    assert json.loads(status.stdout)["events"]["waiting"] == len(outbox)

    result = run_ferry(home, *relay_args(nats_stream, "--once", "--json"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["published"] == len(outbox)
    assert summary["ok"] is True
    assert summary["outbox"]["waiting"] == 0

    messages = nats_stream.messages()
    # Exactly the outbox's events, in its order, each with its id as Nats-Msg-Id.
    assert [m.msg_id for m in messages] == [e.event_uid for e in outbox]
    assert all(m.body["event_id"] == m.msg_id for m in messages)
    for message, event in zip(messages, outbox, strict=True):
        assert message.subject == f"{nats_stream.prefix}.{bucket}.{event.event_type.value}"
        assert message.body["type"] == event.event_type.value
        assert message.body["file"] == event.payload
    per_file: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        per_file[file_key(message.body)].append(event_type(message.body))
    assert per_file["docs/b.txt"] == ["file.uploaded", "file.deleted", "file.uploaded"]
    assert per_file["orphan.bin"] == ["file.repaired"]

    again = run_ferry(home, *relay_args(nats_stream, "--once", "--json"))
    assert json.loads(again.stdout)["published"] == 0
    assert len(nats_stream.messages()) == len(outbox)
    status = run_ferry(home, "status", "--json", env=CREDS)
    assert json.loads(status.stdout)["events"] == {
        "waiting": 0,
        "skipped": 0,
        "oldest_waiting": None,
    }


def test_unreachable_nats_keeps_events_waiting_and_says_so_in_one_line(
    tmp_path: Path, nats_stream: NatsStream
) -> None:
    home = tmp_path / "home"
    catalog_url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    added = run_ferry(
        home, "profile", "add", "team", "--bucket", "files", "--catalog-url", catalog_url
    )
    assert added.returncode == 0, added.stderr
    catalog = open_catalog(catalog_url, owner="alice")
    make_events(catalog, ["one.txt", "two.txt"])
    dead = f"nats://127.0.0.1:{_free_port()}"

    result = run_ferry(home, "relay", "--once", "--nats", dead, "--stream", nats_stream.name)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "NATS unreachable" in lines[0]
    assert dead in lines[0]
    assert catalog.outbox_backlog().waiting == 2  # nothing marked published without an ack

    as_json = run_ferry(home, "relay", "--once", "--json", "--nats", dead)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"]["title"] == "NATS unreachable"
    catalog.close()


def test_an_event_too_large_for_the_server_is_set_aside_and_blocks_nothing(
    tmp_path: Path,
) -> None:
    server = start_nats_server(tmp_path, max_payload=1024)
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}", owner="alice")
    long_key = "deep/" + "x" * 900 + ".txt"
    make_events(catalog, ["first.txt", long_key, "last.txt"])
    options = RelayOptions(nats_url=server.url, stream="BIG", subject_prefix="big")
    try:
        relay = Relay(catalog.outbox(), JetStreamPublisher(options), options)
        report = relay.publish_waiting()
        [skipped] = report.skipped
        assert report.published == 2
        assert report.ok
        assert "max payload of 1024 bytes" in skipped.reason
        backlog = catalog.outbox_backlog()
        assert (backlog.waiting, backlog.skipped) == (0, 1)
        stream = NatsStream(server.url, "BIG", "big")
        keys = [m.body["file"]["key"] for m in stream.messages()]  # type: ignore[index]
        assert keys == ["first.txt", "last.txt"]
        # Not tried again: it stays aside, with its reason, for a person to look at.
        assert relay.publish_waiting().published == 0
        [(event, reason)] = catalog.outbox().skipped_events()
        assert event.payload["key"] == long_key
        assert "max payload" in reason
        relay.close()
    finally:
        catalog.close()
        stop_nats_server(server)


def test_one_relay_at_a_time_on_an_sqlite_catalog(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}", owner="alice")
    first, second = catalog.outbox(), catalog.outbox()
    first.take_relay_lock()
    with pytest.raises(RelayLockTaken, match=r"Another relay .*pid"):
        second.take_relay_lock()
    first.close()
    second.take_relay_lock()  # the lock goes with its holder
    second.close()
    catalog.close()


def test_the_relay_role_reads_and_marks_events_and_nothing_else(pg_roles: PgLogins) -> None:
    alice = open_catalog(pg_roles.url(pg_roles.alice), owner="x")
    make_events(alice, ["a.txt", "b.txt"])
    # Any user sees how many events wait (a count only): ferry status shows it.
    assert alice.outbox_backlog().waiting == 2
    login = pg_roles.relay
    try:
        with psycopg.connect(pg_roles.dsn(login), autocommit=True) as connection:
            assert connection.execute("SELECT count(*) FROM outbox").fetchone() == (2,)
            connection.execute("UPDATE outbox SET published_at = now() WHERE id = -1")
            for forbidden in (
                "UPDATE outbox SET payload = '{}' WHERE id = -1",
                "DELETE FROM outbox WHERE id = -1",
                "INSERT INTO outbox (event_type, payload, created_at, event_uid) "
                "VALUES ('file.uploaded', '{}', now(), 'forged')",
                "UPDATE files SET size = 0 WHERE id = -1",
                "SELECT count(*) FROM files",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    connection.execute(forbidden)
        # And a user may not read the outbox or mark events (only the relay).
        with (
            psycopg.connect(pg_roles.dsn(pg_roles.alice), autocommit=True) as connection,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            connection.execute("UPDATE outbox SET published_at = now()")
    finally:
        alice.close()


def start_relay(home: Path, stream: NatsStream, log: Path) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_"))}
    environ.update(
        {"FERRY_HOME": str(home), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    )
    return subprocess.Popen(
        [sys.executable, "-m", "desktop_app", *relay_args(stream, "--batch", "20", "--json")],
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
        env=environ,
    )


def test_two_relays_one_killed_twice_put_every_event_in_the_stream_once(
    tmp_path: Path, pg_roles: PgLogins, nats_stream: NatsStream
) -> None:
    login = pg_roles.relay
    homes = [tmp_path / "relay-a", tmp_path / "relay-b"]
    for home in homes:
        added = run_ferry(
            home, "profile", "add", "relay", "--bucket", "files",
            "--catalog-url", pg_roles.url(login),
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    alice = open_catalog(pg_roles.url(pg_roles.alice), owner="x")
    files = 1000  # an upload and a delete each: 2,000 events
    keys = [f"load/{n:04d}.bin" for n in range(files)]
    produced = threading.Event()

    def produce() -> None:
        for key in keys:
            make_events(alice, [key])
            alice.mark_deleted("files", key)
        produced.set()

    relays = [start_relay(home, nats_stream, tmp_path / "relays.log") for home in homes]
    producer = threading.Thread(target=produce)
    producer.start()
    kills: list[int] = []
    try:
        for share in (0.3, 0.6):
            while alice.outbox_backlog().waiting + nats_stream.count() < share * 2 * files:
                time.sleep(0.05)
            relays[0].send_signal(signal.SIGKILL)
            relays[0].wait(10)
            kills.append(nats_stream.count())
            relays[0] = start_relay(homes[0], nats_stream, tmp_path / "relays.log")
        producer.join(300)
        assert produced.is_set()
        deadline = time.monotonic() + 60
        while alice.outbox_backlog().waiting and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for relay in relays:
            relay.send_signal(signal.SIGTERM)
        reports = [json.loads(relay.communicate(timeout=30)[0] or "{}") for relay in relays]
        producer.join(300)
        alice.close()
    log = (tmp_path / "relays.log").read_text()
    print(f"stream held {kills} messages at the kills; survivors: {reports}")
    assert all(relay.returncode == 0 for relay in relays), log
    # Both killed while the stream was still filling, the relays sharing the work.
    assert all(0 < seen < 2 * files for seen in kills), kills
    assert all(r["published"] > 0 for r in reports), reports

    messages = nats_stream.messages()
    assert len(messages) == 2 * files
    assert len({m.msg_id for m in messages}) == 2 * files
    backlog = open_catalog(pg_roles.url(pg_roles.admin), owner="x")
    try:
        assert backlog.outbox_backlog().waiting == 0
        assert backlog.unpublished_events() == []
    finally:
        backlog.close()
    with psycopg.connect(pg_roles.dsn(pg_roles.admin)) as connection:
        uids = {r[0] for r in connection.execute("SELECT event_uid FROM outbox")}
        unpublished = connection.execute(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        ).fetchone()
    assert uids == {m.msg_id for m in messages}
    assert unpublished == (0,)
    order: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        order[file_key(message.body)].append(event_type(message.body))
    assert all(order[key] == ["file.uploaded", "file.deleted"] for key in keys)


CRASH_AFTER_ACK = """
import os, signal, sys
from desktop_app.core.catalog.service import open_catalog
from desktop_app.core.relay.loop import Relay
from desktop_app.core.relay.publisher import JetStreamPublisher
from desktop_app.core.settings.relay_options import RelayOptions

class AckThenDie(JetStreamPublisher):
    def publish(self, messages):
        results = super().publish(messages)
        sys.stdout.write(f"{len(results)} acknowledged\\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # before anything is marked published

url, nats_url, stream, prefix = sys.argv[1:]
options = RelayOptions(nats_url=nats_url, stream=stream, subject_prefix=prefix, batch_size=500)
Relay(open_catalog(url, owner="x").outbox(), AckThenDie(options), options).publish_waiting()
"""


def kill_relay_after_ack(pg_roles: PgLogins, stream: NatsStream, events: int) -> None:
    """A relay (another process) publishes what waits and is SIGKILLed before marking it."""
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASH_AFTER_ACK,
            pg_roles.url(pg_roles.relay),
            stream.url,
            stream.name,
            stream.prefix,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert crashed.stdout.strip() == f"{events} acknowledged"
    assert stream.count() == events


def relay_home(tmp_path: Path, pg_roles: PgLogins) -> Path:
    home = tmp_path / "relay"
    added = run_ferry(
        home, "profile", "add", "relay", "--bucket", "files",
        "--catalog-url", pg_roles.url(pg_roles.relay),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return home


def test_a_relay_killed_between_ack_and_mark_is_followed_by_no_duplicate_in_the_stream(
    tmp_path: Path, pg_roles: PgLogins, nats_stream: NatsStream
) -> None:
    alice = open_catalog(pg_roles.url(pg_roles.alice), owner="x")
    make_events(alice, [f"crash/{n}.txt" for n in range(50)])
    kill_relay_after_ack(pg_roles, nats_stream, 50)
    assert alice.outbox_backlog().waiting == 50  # the claim died with its connection

    result = run_ferry(relay_home(tmp_path, pg_roles), *relay_args(nats_stream, "--once", "--json"))
    summary = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert summary["published"] == 50, result.stderr
    assert summary["duplicates"] == 50  # the stream dropped every re-publish by its id
    assert nats_stream.count() == 50
    assert alice.outbox_backlog().waiting == 0
    alice.close()


def test_a_relay_restarted_after_the_duplicate_window_adds_no_duplicate(
    tmp_path: Path, pg_roles: PgLogins, nats_stream: NatsStream
) -> None:
    # The admin's stream forgets message ids after 1 s: the relay's restart
    # below comes long after it, as a restart hours later would with 2 minutes.
    nats_stream.create(duplicate_window=1.0)
    alice = open_catalog(pg_roles.url(pg_roles.alice), owner="x")
    make_events(alice, [f"late/{n}.txt" for n in range(20)])
    kill_relay_after_ack(pg_roles, nats_stream, 20)
    assert alice.outbox_backlog().waiting == 20
    # JetStream forgets ids on a timer of the window's length: three windows.
    # A fixed wait on purpose: the time passing is the scenario, and nothing a
    # client can read says the ids were forgotten (a publish to find out would
    # add to the stream).
    time.sleep(3.5)
    make_events(alice, ["late/new.txt"])  # written after the crash, never sent
    admin = open_catalog(pg_roles.url(pg_roles.admin), owner="x")
    outbox = admin.unpublished_events(limit=100)
    admin.close()

    result = run_ferry(relay_home(tmp_path, pg_roles), *relay_args(nats_stream, "--once", "--json"))
    summary = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert summary["ok"], result.stderr
    # Every waiting event is marked; the 20 the stream held are not sent again.
    assert summary["published"] == 21
    assert summary["outbox"]["waiting"] == 0
    assert summary["duplicates"] == 20
    assert summary["found_in_stream"] == 20
    messages = nats_stream.messages()
    assert [m.msg_id for m in messages] == [e.event_uid for e in outbox]
    alice.close()


def test_the_example_consumer_in_the_docs_prints_each_event(
    tmp_path: Path, nats_stream: NatsStream
) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}", owner="alice")
    make_events(catalog, ["x/one.txt", "x/two.txt"])
    catalog.mark_deleted("files", "x/one.txt")
    options = RelayOptions(nats_url=nats_stream.url, stream=nats_stream.name,
                           subject_prefix=nats_stream.prefix)  # fmt: skip
    relay = Relay(catalog.outbox(), JetStreamPublisher(options), options)
    assert relay.publish_waiting().published == 3
    relay.close()
    example = Path(__file__).parents[3] / "docs" / "examples" / "print_events.py"
    consumer = subprocess.Popen(
        [sys.executable, str(example), nats_stream.url, f"{nats_stream.prefix}.>"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert consumer.stdout is not None
        lines = [consumer.stdout.readline().split()[:3] for _ in range(3)]
    finally:
        consumer.kill()
        consumer.wait(10)
        catalog.close()
    assert lines == [
        ["file.uploaded", "files", "x/one.txt"],
        ["file.uploaded", "files", "x/two.txt"],
        ["file.deleted", "files", "x/one.txt"],
    ]


def test_a_running_relay_waits_out_a_nats_outage_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="desktop_app.core.relay.loop")  # each try is logged
    server = start_nats_server(tmp_path)
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}", owner="alice")
    options = RelayOptions(
        nats_url=server.url, stream="OUT", subject_prefix="out", poll_seconds=0.3, max_backoff=1
    )
    relay = Relay(catalog.outbox(), JetStreamPublisher(options), options)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()

    def wait_for(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert condition()

    try:
        make_events(catalog, ["before.txt"])
        wait_for(lambda: catalog.outbox_backlog().waiting == 0)
        stop_nats_server(server)
        make_events(catalog, ["during-1.txt", "during-2.txt"])

        def tries() -> int:  # the first is a warning, the others "still failing"
            said = [r.getMessage() for r in caplog.records]
            return sum("retrying with backoff" in m or "still failing" in m for m in said)

        wait_for(lambda: tries() >= 3)  # several tries, all refused
        assert catalog.outbox_backlog().waiting == 2  # nothing marked without an ack
        trouble = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(trouble) == 1
        assert "none lost" in trouble[0].getMessage()
        server = start_nats_server(tmp_path, port=int(server.url.rsplit(":", 1)[1]))
        wait_for(lambda: catalog.outbox_backlog().waiting == 0)
        stream = NatsStream(server.url, "OUT", "out")
        keys = [m.body["file"]["key"] for m in stream.messages()]  # type: ignore[index]
    finally:
        stop.set()
        thread.join(30)
        relay.close()
        catalog.close()
        stop_nats_server(server)
    assert keys == ["before.txt", "during-1.txt", "during-2.txt"]
    assert any("publishing again" in r.getMessage() for r in caplog.records)
