from pathlib import Path

import pytest

from desktop_app.core.model.errors import ConfigError, ProfileNotFoundError
from desktop_app.core.settings.paths import FerryPaths
from desktop_app.core.settings.profiles import Profile, ProfileStore
from desktop_app.core.settings.secrets import (
    CredentialSource,
    SecretKind,
    SecretStore,
    resolve_s3_credentials,
)
from tests.conftest import MemoryKeyring, failing_keyring


def _profile(**changes: object) -> Profile:
    values: dict[str, object] = {
        "name": "work",
        "bucket": "team-files",
        "catalog_url": "sqlite:////tmp/catalog.sqlite3",
        "endpoint_url": "https://s3.example.test",
        "access_key_id": "AKIDEXAMPLE",
        "prefix": "scans",
    }
    values.update(changes)
    return Profile(**values)  # type: ignore[arg-type]


def test_profile_round_trip_keeps_secret_out_of_toml(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles.toml")
    backend = MemoryKeyring()
    secrets = SecretStore(backend)
    profile = _profile(part_size=32 * 1024 * 1024, concurrency=4)
    store.save(profile)
    secrets.set(profile.name, SecretKind.S3_SECRET_KEY, "s3cr3t-value-xyz")

    loaded = store.get("work")
    assert loaded == profile
    assert "s3cr3t-value-xyz" not in (tmp_path / "profiles.toml").read_text()
    assert backend.store[("ferry", "work/s3-secret-key")] == "s3cr3t-value-xyz"
    creds = resolve_s3_credentials(loaded, secrets, {})
    assert creds.source is CredentialSource.KEYRING
    assert creds.secret_access_key == "s3cr3t-value-xyz"
    assert "s3cr3t" not in repr(creds)


def test_single_profile_is_the_default_and_remove_forgets_it(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles.toml")
    store.save(_profile())
    assert store.get().name == "work"
    store.remove("work")
    with pytest.raises(ProfileNotFoundError, match="No profile is configured"):
        store.get()


def test_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles.toml")
    store.save(_profile())
    with pytest.raises(ProfileNotFoundError, match=r"no profile named 'nope' \(known: work\)"):
        store.get("nope")


def test_malformed_file_is_a_clear_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.work\nbucket = 'x'\n")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="not a valid profiles file"):
        ProfileStore(path).profiles()
    assert path.read_bytes() == before


def test_wrong_type_and_unknown_setting_are_named(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    head = "[profiles.work]\nbucket = 'team-files'\ncatalog_url = 'sqlite:///x'\n"
    path.write_text(head + "concurrency = 'four'\n")
    with pytest.raises(ConfigError, match="concurrency has the wrong type"):
        ProfileStore(path).profiles()
    path.write_text(head + "colour = 'red'\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*colour"):
        ProfileStore(path).profiles()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bucket": "No_Such"}, "not a valid bucket name"),
        ({"endpoint_url": "ftp://host"}, "must look like"),
        ({"catalog_url": "postgresql://u:pw@h/db"}, "contains a password"),
        ({"prefix": "../up"}, "may not start with '/' or contain '..'"),
        ({"part_size": 1024}, "part size"),
    ],
)
def test_invalid_profiles_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _profile(**changes).validate()


def test_env_overrides_apply_without_being_saved(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles.toml")
    store.save(_profile())
    overridden = store.get().with_env_overrides(
        {
            "FERRY_ENDPOINT_URL": "http://127.0.0.1:9000",
            "FERRY_BUCKET": "other-bucket",
            "FERRY_PREFIX": "inbox",
            "FERRY_CATALOG_URL": "sqlite:////tmp/other.sqlite3",
        }
    )
    assert overridden.endpoint_url == "http://127.0.0.1:9000"
    assert overridden.bucket == "other-bucket"
    assert overridden.prefix == "inbox"
    assert overridden.catalog_url == "sqlite:////tmp/other.sqlite3"
    assert store.get().bucket == "team-files"


def test_ferry_home_moves_everything(tmp_path: Path) -> None:
    paths = FerryPaths.from_environment({"FERRY_HOME": str(tmp_path)})
    assert paths.config_dir == tmp_path / "config"
    assert paths.data_dir == tmp_path / "data"
    assert paths.log_dir == tmp_path / "logs"
    assert paths.journal_file.parent == tmp_path / "data"


def test_without_usable_keyring_env_credentials_are_used_and_named() -> None:
    secrets = SecretStore(failing_keyring())
    assert not secrets.usable
    creds = resolve_s3_credentials(
        _profile(),
        secrets,
        {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"},
    )
    assert creds.source is CredentialSource.ENVIRONMENT
    assert creds.access_key_id == "AKIDENV"
    with pytest.raises(Exception, match="No usable keyring"):
        secrets.set("work", SecretKind.S3_SECRET_KEY, "x")


def test_aws_credentials_file_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = f\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    creds = resolve_s3_credentials(_profile(access_key_id=None), SecretStore(MemoryKeyring()), {})
    assert creds.source is CredentialSource.AWS_FILES
    assert creds.access_key_id == "AKIDFILE"
