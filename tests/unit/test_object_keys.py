import pytest

from desktop_app.core.errors import InvalidKeyError
from desktop_app.core.object_keys import join_key, validate_key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("/abs", "starts with '/'"),
        ("a/../b", r"'\.\.' segment"),
        ("a/./b", r"'\.' or"),
        ("bad\x07bell", "control characters"),
        ("a//b", "empty path segment"),
        ("x" * 1025, "at most 1024"),
        ("é" * 513, "at most 1024"),
    ],
)
def test_keys_s3_would_refuse_or_that_escape_are_refused(key: str, reason: str) -> None:
    with pytest.raises(InvalidKeyError, match=reason):
        validate_key(key)


def test_good_keys_pass_and_join_under_the_prefix() -> None:
    assert validate_key("scans/2026/é.pdf") == "scans/2026/é.pdf"
    assert join_key("/inbox/", "a/b.txt") == "inbox/a/b.txt"
    assert join_key("", "b.txt") == "b.txt"
    assert validate_key("x" * 1024)
