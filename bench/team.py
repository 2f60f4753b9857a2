#!/usr/bin/env python3
"""A team on one bucket: N Ferry clients, one PostgreSQL catalog, two relays.

One weed mini, one PostgreSQL database made for the run (roles from
postgres_roles.sql, one login per client, one relay login), one nats-server
with JetStream. Each client is a real ``ferry upload`` process with its own
data dir, uploading at the same moment as the others:

- ``cNN/u-*``: files only it has (unique content);
- ``cNN/s-*``: content every client has too (the same bytes under each
  client's own keys);
- ``contested/k-*``: keys every client uploads, each with its own content:
  exactly one client may win each key, every other must get "Key already
  taken".

Two ``ferry relay`` processes publish the outbox meanwhile. Afterwards the
table says: files/s, duplicate live rows, lost files (reported stored, but
not in the bucket with those bytes and an active row), orphans after a
check, wrong conflict errors, peak PostgreSQL connections, and events in the
outbox vs messages in the stream (and distinct ids).

``make bench-team`` or ``.venv/bin/python bench/team.py --clients 20 --files 150``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import boto3
import psycopg
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from desktop_app.core.catalog.service import open_catalog  # noqa: E402
from desktop_app.core.runtime.sandbox import SandboxServer, find_weed  # noqa: E402

BIN = Path(sys.executable).parent
KEY, SECRET = "bench", "bench-not-a-secret"
PG_ADMIN = os.environ.get("FERRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CONTESTED_SHARE = 0.15  # of each client's files: keys every client uploads
SHARED_SHARE = 0.20  # content every client has


@dataclass
class ClientResult:
    name: str
    seconds: float
    stored: dict[str, str] = field(default_factory=dict)  # key -> sha256 reported done
    conflicts: set[str] = field(default_factory=set)
    other_failures: list[str] = field(default_factory=list)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_nats(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    binary = BIN / "nats-server"
    config = folder / "nats.conf"
    config.write_text(f'listen: 127.0.0.1:{port}\njetstream {{ store_dir: "{folder / "js"}" }}\n')
    process = subprocess.Popen(
        [str(binary), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"nats://127.0.0.1:{port}"
        time.sleep(0.1)
    raise SystemExit("nats-server did not start")


def make_files(root: Path, clients: int, per_client: int) -> dict[str, list[Path]]:
    contested = max(1, int(per_client * CONTESTED_SHARE))
    shared = int(per_client * SHARED_SHARE)
    unique = per_client - contested - shared
    shared_bodies = [os.urandom(16 * 1024) for _ in range(shared)]
    layout: dict[str, list[Path]] = {}
    for n in range(clients):
        name = f"c{n:02d}"
        base = root / name
        own, fight = base / name, base / "contested"
        own.mkdir(parents=True)
        fight.mkdir()
        for i in range(unique):
            (own / f"u-{i:04d}.bin").write_bytes(os.urandom(16 * 1024))
        for i, body in enumerate(shared_bodies):
            (own / f"s-{i:04d}.bin").write_bytes(body)
        for i in range(contested):
            (fight / f"k-{i:04d}.txt").write_bytes(f"{name} wants key {i} {uuid.uuid4()}".encode())
        layout[name] = [own, fight]
    return layout


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_"))}
    env.update(
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        FERRY_HOME=str(home),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    return env


def ferry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ferry"), *args], env=env, capture_output=True, text=True, timeout=1800
    )


def catalog_url(database: str, login: str) -> str:
    return f"postgresql+psycopg://{login}@127.0.0.1:5432/{database}"


def set_up_catalog(database: str, clients: int) -> tuple[list[str], str, str]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
    open_catalog(catalog_url(database, "postgres"), owner="x").close()
    script = resources.files("desktop_app.core").joinpath("sql/postgres_roles.sql").read_text()
    suffix = uuid.uuid4().hex[:6]
    users = [f"team_{suffix}_c{n:02d}" for n in range(clients)]
    relay, admin = f"team_{suffix}_relay", f"team_{suffix}_admin"
    admin_dsn = catalog_url(database, "postgres").replace("+psycopg", "")
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(script.replace(':"schema"', '"public"'))  # type: ignore[arg-type]
        for user in users:
            connection.execute(f'CREATE ROLE "{user}" LOGIN IN ROLE ferry_user')  # type: ignore[arg-type]
        connection.execute(f'CREATE ROLE "{relay}" LOGIN IN ROLE ferry_relay')  # type: ignore[arg-type]
        connection.execute(f'CREATE ROLE "{admin}" LOGIN IN ROLE ferry_admin')  # type: ignore[arg-type]
    return users, relay, admin


def tear_down_catalog(database: str, logins: list[str]) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # type: ignore[arg-type]
        for login in logins:
            connection.execute(f'DROP ROLE IF EXISTS "{login}"')  # type: ignore[arg-type]


class ConnectionSampler(threading.Thread):
    """The most server connections to the bench database seen at once."""

    def __init__(self, database: str) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            while not self.stop.is_set():
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
                ).fetchone()
                self.peak = max(self.peak, int(row[0]) - 1 if row else 0)  # minus ourselves
                time.sleep(0.1)


def run_client(name: str, env: dict[str, str], paths: list[Path]) -> ClientResult:
    started = time.monotonic()
    done = ferry(env, "upload", *map(str, paths), "--json")
    result = ClientResult(name, time.monotonic() - started)
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        result.other_failures.append(f"no JSON (exit {done.returncode}): {done.stderr[-300:]}")
        return result
    for transfer in document.get("transfers", []):
        if transfer["state"] in ("done", "duplicate"):
            result.stored[transfer["key"]] = transfer["sha256"]
        elif (transfer.get("error") or {}).get("title") == "Key already taken":
            result.conflicts.add(transfer["key"])
        else:
            error = transfer.get("error") or {}
            result.other_failures.append(f"{transfer['key']}: {error.get('message')}")
    return result


async def stream_ids(url: str, stream: str) -> list[str]:
    import nats

    client = await nats.connect(url)
    try:
        jetstream = client.jetstream()
        info = await jetstream.stream_info(stream)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await jetstream.get_msg(stream, seq)
            ids.append((message.headers or {}).get("Nats-Msg-Id", ""))
        return ids
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--files", type=int, default=150, help="files per client")
    args = parser.parse_args()
    database = f"ferry_team_{uuid.uuid4().hex[:8]}"
    logins: list[str] = []
    relays: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="ferry-team-") as tmp:
        root = Path(tmp)
        server = SandboxServer(root / "weed", find_weed(os.environ))
        endpoint = server.start().endpoint_url
        nats_process, nats_url = start_nats(root)
        try:
            s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=KEY,
                aws_secret_access_key=SECRET,
                region_name="us-east-1",
                config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
            )
            bucket = f"team-{uuid.uuid4().hex[:8]}"
            s3.create_bucket(Bucket=bucket)
            users, relay_login, admin = set_up_catalog(database, args.clients)
            logins = [*users, relay_login, admin]
            layout = make_files(root / "data", args.clients, args.files)
            envs: dict[str, dict[str, str]] = {}
            for (name, _paths), user in zip(layout.items(), users, strict=True):
                env = base_env(root / "homes" / name)
                added = ferry(
                    env, "profile", "add", "team", "--bucket", bucket, "--endpoint-url", endpoint,
                    "--catalog-url", catalog_url(database, user), "--default",
                )  # fmt: skip
                if added.returncode:
                    raise SystemExit(added.stderr)
                envs[name] = env
            relay_env = base_env(root / "homes" / "relay")
            ferry(
                relay_env, "profile", "add", "relay", "--bucket", bucket,
                "--catalog-url", catalog_url(database, relay_login), "--default",
            )  # fmt: skip
            relay_command = [str(BIN / "ferry"), "relay", "--nats", nats_url, "--json"]
            relays = [
                subprocess.Popen(
                    relay_command,
                    env=relay_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            sampler = ConnectionSampler(database)
            sampler.start()
            results: list[ClientResult] = []
            lock = threading.Lock()

            def client(name: str) -> None:
                outcome = run_client(name, envs[name], layout[name])
                with lock:
                    results.append(outcome)

            started = time.monotonic()
            threads = [threading.Thread(target=client, args=(n,)) for n in layout]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.monotonic() - started
            admin_env = base_env(root / "homes" / "admin")
            ferry(
                admin_env, "profile", "add", "admin", "--bucket", bucket, "--endpoint-url",
                endpoint, "--catalog-url", catalog_url(database, admin), "--default",
            )  # fmt: skip
            check = ferry(admin_env, "check", "--json", "--grace", "0")
            catalog = open_catalog(catalog_url(database, admin), owner="x")
            deadline = time.monotonic() + 120
            while catalog.outbox_backlog().waiting and time.monotonic() < deadline:
                time.sleep(0.5)
            backlog = catalog.outbox_backlog()
            catalog.close()
            sampler.stop.set()
            for relay in relays:
                relay.send_signal(signal.SIGTERM)
            relay_reports = [json.loads(r.communicate(timeout=60)[0] or "{}") for r in relays]
            figures = measure(
                results, s3, bucket, database, admin, check, nats_url, layout, args.files
            )
            figures.update(
                wall=wall,
                peak_connections=sampler.peak,
                waiting=backlog.waiting,
                relay_published=[r.get("published") for r in relay_reports],
            )
        finally:
            for relay in relays:
                if relay.poll() is None:
                    relay.kill()
            nats_process.terminate()
            nats_process.wait(10)
            server.stop()
            tear_down_catalog(database, logins)
    report = render(figures, args.clients, args.files)
    print(report)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "team.md").write_text(report)
    (out / "team.json").write_text(json.dumps(figures, indent=2, default=str))
    healthy = (
        figures["duplicate_live_rows"] == 0
        and figures["lost"] == 0
        and figures["orphans"] == 0
        and figures["wrong_conflicts"] == 0
        and figures["stream_messages"] == figures["outbox_events"] == figures["distinct_ids"]
    )
    return 0 if healthy else 1


def measure(
    results: list[ClientResult],
    s3: object,
    bucket: str,
    database: str,
    admin: str,
    check: subprocess.CompletedProcess[str],
    nats_url: str,
    layout: dict[str, list[Path]],
    per_client: int,
) -> dict[str, object]:
    admin_dsn = catalog_url(database, admin).replace("+psycopg", "")
    with psycopg.connect(admin_dsn) as connection:
        duplicate_live = connection.execute(
            "SELECT count(*) FROM (SELECT bucket, key FROM files WHERE status <> 'deleted' "
            "GROUP BY 1, 2 HAVING count(*) > 1) d"
        ).fetchone()
        live = {
            key: (sha, status)
            for key, sha, status in connection.execute(
                "SELECT key, sha256, status FROM files WHERE status <> 'deleted'"
            )
        }
        outbox_events = connection.execute("SELECT count(*) FROM outbox").fetchone()
    lost = 0
    stored_total = 0
    for result in results:
        for key, sha in result.stored.items():
            stored_total += 1
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]
            if hashlib.sha256(body).hexdigest() != sha or live.get(key) != (sha, "active"):
                lost += 1
    winners: dict[str, int] = {}
    for result in results:
        for key in result.stored:
            if key.startswith("contested/"):
                winners[key] = winners.get(key, 0) + 1
    contested_keys = {
        f"contested/{p.name}" for paths in layout.values() for p in paths[1].iterdir()
    }
    wrong = sum(1 for key in contested_keys if winners.get(key, 0) != 1)
    for result in results:
        wrong += sum(1 for key in result.conflicts if key not in contested_keys)
        # A loser of a contested key must be told so, not fail otherwise or succeed.
        lost_keys = contested_keys - set(result.stored)
        wrong += len(lost_keys - result.conflicts)
    try:
        findings = json.loads(check.stdout).get("counts", {})
    except json.JSONDecodeError:
        findings = {"error": check.stderr[-300:]}
    ids = asyncio.run(stream_ids(nats_url, "FERRY"))
    return {
        "files": len(results) * per_client,
        "stored": stored_total,
        "other_failures": [f for r in results for f in r.other_failures][:10],
        "duplicate_live_rows": int(duplicate_live[0]) if duplicate_live else -1,
        "lost": lost,
        "orphans": int(findings.get("orphan_object", 0)) if "error" not in findings else -1,
        "check_findings": findings,
        "wrong_conflicts": wrong,
        "conflicts": sum(len(r.conflicts) for r in results),
        "outbox_events": int(outbox_events[0]) if outbox_events else -1,
        "stream_messages": len(ids),
        "distinct_ids": len(set(ids)),
        "slowest_client_s": max(r.seconds for r in results),
    }


def render(figures: dict[str, object], clients: int, per_client: int) -> str:
    wall = float(figures["wall"])  # type: ignore[arg-type]
    rows = [
        ("clients x files", f"{clients} x {per_client} = {figures['files']}"),
        ("stored (done or duplicate)", figures["stored"]),
        ("'Key already taken' (expected on contested keys)", figures["conflicts"]),
        ("wall time", f"{wall:.1f} s"),
        ("files/s", f"{int(figures['files']) / wall:.1f}"),  # type: ignore[call-overload]
        ("duplicate live rows", figures["duplicate_live_rows"]),
        ("lost files", figures["lost"]),
        ("orphans after a check", figures["orphans"]),
        ("wrong conflict errors", figures["wrong_conflicts"]),
        ("other failures", len(figures["other_failures"])),  # type: ignore[arg-type]
        ("peak PostgreSQL connections", figures["peak_connections"]),
        ("events in the outbox", figures["outbox_events"]),
        ("messages in the stream (distinct ids)", f"{figures['stream_messages']} "
         f"({figures['distinct_ids']})"),
        ("events still waiting", figures["waiting"]),
        ("published by relay 1 / relay 2", " / ".join(map(str, figures["relay_published"]))),  # type: ignore[call-overload]
    ]  # fmt: skip
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [f"Team benchmark, {when}, {machine}", "", "| measure | value |", "| --- | ---: |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    if figures["other_failures"]:
        lines += ["", "Other failures (first 10):", *map(str, figures["other_failures"])]  # type: ignore[call-overload]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
