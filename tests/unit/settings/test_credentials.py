"""Where a profile's S3 credentials come from, in the order the docs give."""

from __future__ import annotations

from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import CredentialSource, SecretStore, resolve_s3_credentials
from tests.conftest import MemoryKeyring


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
