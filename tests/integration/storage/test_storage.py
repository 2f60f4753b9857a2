"""S3 traffic through a real HTTP proxy (tinyproxy on loopback), as behind a company proxy."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import quote

from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, HttpProxy, WeedServer
from tests.integration.cli.test_cli import run_ferry

CREDENTIALS = {"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}


def add_profile(home: Path, weed: WeedServer, bucket: str, *extra: str) -> None:
    added = run_ferry(
        home, "profile", "add", "office", "--bucket", bucket,
        "--endpoint-url", weed.endpoint_url, *extra,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def upload(home: Path, tmp_path: Path, env: dict[str, str], name: str = "report.bin") -> str:
    """Upload a 7 MiB file (in parts), prove its bytes, return its key."""
    size = 7 * 1024 * 1024
    data = tmp_path / name
    data.write_bytes(os.urandom(size))
    result = run_ferry(home, "upload", str(data), "--json", env=env)
    assert result.returncode == 0, result.stderr
    [transfer] = json.loads(result.stdout)["transfers"]
    assert transfer["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    return str(transfer["key"])


def test_uploads_go_through_the_proxy_named_by_https_proxy(
    tmp_path: Path, weed: WeedServer, bucket: str, http_proxy: HttpProxy
) -> None:
    home = tmp_path / "home"
    add_profile(home, weed, bucket)
    env = {**CREDENTIALS, "HTTP_PROXY": http_proxy.url, "HTTPS_PROXY": http_proxy.url}
    key = upload(home, tmp_path, env)
    body = weed.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert (
        hashlib.sha256(body).hexdigest()
        == hashlib.sha256((tmp_path / "report.bin").read_bytes()).hexdigest()
    )
    puts = http_proxy.forwarded("PUT")
    assert any(f"/{bucket}/{key}" in line for line in puts), puts
    # NO_PROXY is honoured too: nothing more reaches the proxy.
    before = len(http_proxy.log.read_text().splitlines())
    upload(home, tmp_path, {**env, "NO_PROXY": "127.0.0.1"}, name="direct.bin")
    assert len(http_proxy.log.read_text().splitlines()) == before


def test_a_profile_s_own_proxy_carries_its_uploads(
    tmp_path: Path, weed: WeedServer, bucket: str, http_proxy: HttpProxy
) -> None:
    home = tmp_path / "home"
    add_profile(home, weed, bucket, "--proxy-url", http_proxy.url)
    key = upload(home, tmp_path, CREDENTIALS)
    assert any(f"/{bucket}/{key}" in line for line in http_proxy.forwarded("PUT"))


def test_small_files_after_the_first_go_through_the_profile_s_proxy_too(
    tmp_path: Path, weed: WeedServer, bucket: str, http_proxy: HttpProxy
) -> None:
    # The first small files' PUTs are botocore's; the next ones are cut from them
    # (storage/quick_put.py) and must take the same way out, once each.
    home = tmp_path / "home"
    add_profile(home, weed, bucket, "--proxy-url", http_proxy.url)
    folder = tmp_path / "notes"
    folder.mkdir()
    for n in range(40):
        (folder / f"note {n}+ü.txt").write_bytes(os.urandom(1000 + n))
    result = run_ferry(home, "-v", "upload", str(folder), "--json", env=CREDENTIALS)
    assert result.returncode == 0, result.stderr
    log = (home / "logs" / "ferry.log").read_text()
    assert "Small files' PUTs follow botocore's PUT" in log
    transfers = json.loads(result.stdout)["transfers"]
    assert len(transfers) == 40
    puts = http_proxy.forwarded("PUT")
    for transfer in transfers:
        body = weed.client().get_object(Bucket=bucket, Key=transfer["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == transfer["sha256"]
        path = "/" + bucket + "/" + quote(transfer["key"], safe="/~")
        assert sum(f"{path} " in line for line in puts) == 1, (path, puts)


def test_a_proxy_asking_for_a_sign_in_gets_a_clear_error(
    tmp_path: Path, weed: WeedServer, bucket: str, http_proxy_with_sign_in: HttpProxy
) -> None:
    home = tmp_path / "home"
    add_profile(home, weed, bucket, "--proxy-url", http_proxy_with_sign_in.url)
    data = tmp_path / "a.txt"
    data.write_text("alpha")
    result = run_ferry(home, "upload", str(data), "--json", env=CREDENTIALS)
    assert result.returncode == 1, result.stderr
    [transfer] = json.loads(result.stdout)["transfers"]
    assert transfer["error"]["title"] == "Proxy sign-in needed", transfer["error"]
    assert "asks for a user name and password" in transfer["error"]["message"]
    assert not transfer["error"]["retries_on_its_own"]
    refused = run_ferry(
        home, "profile", "add", "x", "--bucket", bucket,
        "--proxy-url", "http://staff:secret@127.0.0.1:3128",
    )  # fmt: skip
    assert refused.returncode == 2
    assert "keeps no proxy password" in refused.stderr
    assert "secret" not in refused.stderr.replace("keeps no proxy password", "")
