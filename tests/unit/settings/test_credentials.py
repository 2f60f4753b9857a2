"""Where a profile's S3 credentials come from, in the order the docs give."""

from __future__ import annotations

from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import (
    CredentialSource,
    SecretKind,
    SecretStore,
    catalog_password,
    resolve_s3_credentials,
)
from tests.conftest import MemoryKeyring, failing_keyring


def test_a_secret_alone_in_the_environment_goes_with_the_profiles_access_key_id() -> None:
    # No keyring can keep the secret (a server, a container): the advice is to
    # set AWS_SECRET_ACCESS_KEY, and the profile already names its key id.
    profile = Profile(name="work", bucket="b", catalog_url="sqlite://", access_key_id="AKIAWORK")
    secrets = SecretStore(MemoryKeyring())
    found = resolve_s3_credentials(profile, secrets, {"AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    assert found.source is CredentialSource.ENVIRONMENT
    assert (found.access_key_id, found.secret_access_key) == ("AKIAWORK", "s3cr3t")
    # A key id in the environment still goes with the environment's secret.
    both = {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_ACCESS_KEY_ID": "AKIAENV"}
    assert resolve_s3_credentials(profile, secrets, both).access_key_id == "AKIAENV"


def test_an_sqlite_catalog_needs_no_password_and_the_keyring_is_not_asked() -> None:
    # A keyring that fails at every call: asking it would raise.
    profile = Profile(name="p", bucket="b", catalog_url="sqlite:////tmp/catalog.sqlite3")
    assert catalog_password(profile, SecretStore(failing_keyring()), {"PGPASSWORD": "x"}) is None


def test_a_postgresql_catalogs_password_comes_from_the_keyring_first() -> None:
    keyring = MemoryKeyring()
    secrets = SecretStore(keyring)
    secrets.set("p", SecretKind.CATALOG_PASSWORD, "from-keyring")
    profile = Profile(name="p", bucket="b", catalog_url="postgresql+psycopg://ferry@db/ferry")
    assert catalog_password(profile, secrets, {"PGPASSWORD": "from-env"}) == "from-keyring"
