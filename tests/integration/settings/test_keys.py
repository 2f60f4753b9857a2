"""Credentials from the AWS configuration, as a company laptop has them.

`ferry` runs as a user runs it (a subprocess) with an AWS config file of the
test's own: a `credential_process` profile (a tiny script printing keys), an
assume-role profile whose STS is moto's server, and an SSO profile whose
sign-in has expired. Uploads go to moto's S3 on loopback and are checked by
SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from moto.sts.models import sts_backends

from tests.conftest import S3Endpoint
from tests.integration.cli.test_cli import run_ferry
from tests.sso_stub import SsoStub

ROLE_ARN = "arn:aws:iam::123456789012:role/ferry-uploader"


def aws_config(tmp_path: Path, moto_s3: S3Endpoint) -> dict[str, str]:
    """An AWS config with the three kinds of profile, and the variables that point at it."""
    calls = tmp_path / "process-calls.log"
    script = tmp_path / "issue-keys.py"
    script.write_text(
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write('called\\n')\n"
        "json.dump({'Version': 1, 'AccessKeyId': 'AKIDFROMPROCESS',"
        " 'SecretAccessKey': 'process-secret-4f1e', 'SessionToken': 'process-token'},"
        " sys.stdout)\n"
    )
    config = tmp_path / "aws-config"
    config.write_text(
        f"[profile from-process]\ncredential_process = {sys.executable} {script}\n\n"
        "[profile base]\naws_access_key_id = AKIDBASE\n"
        "aws_secret_access_key = base-secret-77aa\n\n"
        f"[profile work]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n"
        "role_session_name = ferry-test\n\n"
        "[profile company-sso]\nsso_start_url = https://example.awsapps.com/start\n"
        "sso_region = us-east-1\nsso_account_id = 123456789012\nsso_role_name = Uploader\n"
    )
    home = tmp_path / "user-home"
    home.mkdir()
    return {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_ENDPOINT_URL_STS": moto_s3.endpoint_url,
        "HOME": str(home),
    }


def add_profile(home: Path, name: str, moto_s3: S3Endpoint, aws_profile: str) -> None:
    added = run_ferry(
        home, "profile", "add", name, "--bucket", moto_s3.bucket,
        "--endpoint-url", moto_s3.endpoint_url, "--prefix", name, "--aws-profile", aws_profile,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert f"AWS profile {aws_profile!r}" in added.stderr


def upload_and_prove(
    home: Path, name: str, moto_s3: S3Endpoint, env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / f"{name}.bin"
    data.write_bytes(os.urandom(200_000))
    result = run_ferry(home, "upload", str(data), "--profile", name, "--json", env=env)
    assert result.returncode == 0, result.stderr
    [transfer] = json.loads(result.stdout)["transfers"]
    assert transfer["state"] == "done"
    body = moto_s3.client().get_object(Bucket=moto_s3.bucket, Key=f"{name}/{data.name}")
    assert hashlib.sha256(body["Body"].read()).hexdigest() == transfer["sha256"]
    tested = run_ferry(home, "profile", "test", name, "--json", env=env)
    checks = {c["name"]: c for c in json.loads(tested.stdout)["checks"]}
    assert "AWS configuration profile" in checks["credentials"]["detail"], checks


def roles_assumed() -> list[Any]:
    """Every AssumeRole of the test role that moto's STS answered, oldest first."""
    return [
        role
        for account in sts_backends.values()
        for backend in account.values()
        for role in backend.assumed_roles
        if role.role_arn == ROLE_ARN
    ]


def test_credential_process_profile_uploads(tmp_path: Path, moto_s3: S3Endpoint) -> None:
    env = aws_config(tmp_path, moto_s3)
    home = tmp_path / "ferry"
    add_profile(home, "proc", moto_s3, "from-process")
    upload_and_prove(home, "proc", moto_s3, env, tmp_path)
    assert (tmp_path / "process-calls.log").read_text().count("called") >= 1
    # The keys it printed are nowhere in Ferry's files or output.
    written = "".join(p.read_text(errors="replace") for p in home.rglob("*") if p.is_file())
    assert "process-secret-4f1e" not in written


def test_assume_role_profile_uploads_with_the_role_s_keys(
    tmp_path: Path, moto_s3: S3Endpoint
) -> None:
    env = aws_config(tmp_path, moto_s3)
    home = tmp_path / "ferry"
    add_profile(home, "team", moto_s3, "work")
    before = len(roles_assumed())
    upload_and_prove(home, "team", moto_s3, env, tmp_path)
    assumed = roles_assumed()
    assert len(assumed) > before, "Ferry never asked STS for the role"
    assert assumed[-1].session_name == "ferry-test"


def test_an_expired_sso_sign_in_says_how_to_sign_in(tmp_path: Path, moto_s3: S3Endpoint) -> None:
    env = aws_config(tmp_path, moto_s3)
    start_url = "https://example.awsapps.com/start"
    cache = Path(env["HOME"]) / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True)
    name = hashlib.sha1(start_url.encode()).hexdigest()  # botocore's cache file name
    (cache / f"{name}.json").write_text(
        json.dumps(
            {
                "startUrl": start_url,
                "region": "us-east-1",
                "accessToken": "expired-token-0b7c",
                "expiresAt": "2020-01-01T00:00:00Z",
            }
        )
    )
    home = tmp_path / "ferry"
    add_profile(home, "sso", moto_s3, "company-sso")
    data = tmp_path / "a.txt"
    data.write_text("alpha")
    result = run_ferry(home, "upload", str(data), "--profile", "sso", env=env)
    assert result.returncode == 2, result.stderr
    assert "Sign-in needed" in result.stderr
    assert "has expired or was never made" in result.stderr
    assert "ferry profile login sso" in result.stderr
    assert "aws sso login --profile company-sso" in result.stderr
    assert "expired-token-0b7c" not in result.stderr + result.stdout


def test_profile_login_runs_the_device_flow_and_the_upload_then_works(
    tmp_path: Path, moto_s3: S3Endpoint, sso_stub: SsoStub
) -> None:
    env = aws_config(tmp_path, moto_s3)
    env["AWS_ENDPOINT_URL_SSO_OIDC"] = sso_stub.url
    env["AWS_ENDPOINT_URL_SSO"] = sso_stub.url
    # The "browser" opens the verification page, which approves, as a person would.
    browser = tmp_path / "browser.py"
    browser.write_text("import sys, urllib.request\nurllib.request.urlopen(sys.argv[1]).read()\n")
    env["BROWSER"] = f"{sys.executable} {browser} %s"
    home = tmp_path / "ferry"
    add_profile(home, "sso", moto_s3, "company-sso")
    data = tmp_path / "a.txt"
    data.write_text("alpha")
    before = run_ferry(home, "upload", str(data), "--profile", "sso", env=env)
    assert before.returncode == 2
    assert "Sign-in needed" in before.stderr

    login = run_ferry(home, "profile", "login", "sso", env=env)
    assert login.returncode == 0, login.stderr
    assert f"confirm the code {sso_stub.user_code}" in login.stderr
    assert "Signed in" in login.stderr
    assert sso_stub.approved.is_set()
    assert sso_stub.token_polls >= 1
    # The token went where aws-cli and botocore read it, readable by the user only.
    start_url = "https://example.awsapps.com/start"
    cache_name = f"{hashlib.sha1(start_url.encode()).hexdigest()}.json"
    cache = Path(env["HOME"]) / ".aws/sso/cache" / cache_name
    assert json.loads(cache.read_text())["accessToken"] == sso_stub.access_token
    assert cache.stat().st_mode & 0o077 == 0
    written = "".join(p.read_text(errors="replace") for p in home.rglob("*") if p.is_file())
    assert sso_stub.access_token not in written + login.stderr + login.stdout

    upload_and_prove(home, "sso", moto_s3, env, tmp_path)
    assert sso_stub.role_requests[-1] == {"role_name": "Uploader", "account_id": "123456789012"}


def test_an_empty_keyring_backend_variable_is_unset_and_a_wrong_one_one_clear_line(
    tmp_path: Path,
) -> None:
    """`PYTHON_KEYRING_BACKEND=` (a shell's empty assignment) was a traceback in every command."""
    home = tmp_path / "home"
    # In a home of the test's own, with no session bus: no keyring outside it is read.
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "FERRY_", "PYTHON_KEYRING", "DBUS_", "XDG_"))
    }
    environ.update(FERRY_HOME=str(home), HOME=str(tmp_path))

    def ferry(backend: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "desktop_app", *args],
            capture_output=True, text=True, timeout=180, input=stdin,
            env={**environ, "PYTHON_KEYRING_BACKEND": backend},
        )  # fmt: skip

    for empty in ("", " "):
        listed = ferry(empty, "profile", "list")
        assert (listed.returncode, listed.stderr) == (0, ""), listed.stderr
        assert "No profiles." in listed.stdout
        ghost = ferry(empty, "--profile", "ghost", "status")
        assert ghost.returncode == 2, ghost.stderr
        assert "Traceback" not in ghost.stderr, ghost.stderr
        assert len(ghost.stderr.strip().splitlines()) == 1, ghost.stderr

    broken = "keyring.backends.NoSuch.Keyring"
    # A command that reads no secret does not need the keyring, so a broken one does not stop it.
    listed = ferry(broken, "profile", "list", "--json")
    assert (listed.returncode, listed.stderr) == (0, ""), listed.stderr
    # One that keeps a secret says, in one line, what is wrong and what to do.
    wrong = ferry(
        broken, "profile", "add", "work", "--bucket", "team-files", "--access-key-id", "AKID",
        "--secret-stdin", stdin="not-a-real-secret\n",
    )  # fmt: skip
    assert wrong.returncode == 2, wrong.stderr
    assert "Traceback" not in wrong.stderr, wrong.stderr
    assert wrong.stderr == (
        "ferry: Keyring problem: PYTHON_KEYRING_BACKEND names the keyring backend "
        "'keyring.backends.NoSuch.Keyring', which cannot be loaded here "
        "(ModuleNotFoundError). Fix the name (e.g. keyring.backends.SecretService.Keyring) "
        "or unset PYTHON_KEYRING_BACKEND, then try again.\n"
    )
    assert "not-a-real-secret" not in wrong.stdout + wrong.stderr
