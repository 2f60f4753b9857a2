import os

import pytest

from desktop_app.core.model.errors import InvalidKeyError
from desktop_app.core.model.object_keys import PathFlavour, is_ambiguous, join_key, validate_key


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


@pytest.mark.parametrize(
    ("relative", "key"),
    [("\\x.txt", "\\x.txt"), ("a\\b.txt", "a\\b.txt"), ("dir/c\\d.txt", "dir/c\\d.txt")],
)
def test_a_backslash_is_part_of_the_name_on_posix(relative: str, key: str) -> None:
    assert join_key("", relative, PathFlavour.POSIX) == key
    assert join_key("inbox", relative, PathFlavour.POSIX) == f"inbox/{key}"
    assert join_key("", relative, PathFlavour.POSIX) != join_key("", "x.txt", PathFlavour.POSIX)
    assert is_ambiguous(key)


def test_a_backslash_separates_folders_on_windows() -> None:
    assert join_key("", "a\\b.txt", PathFlavour.WINDOWS) == "a/b.txt"
    assert join_key("inbox", "dir\\sub/c.txt", PathFlavour.WINDOWS) == "inbox/dir/sub/c.txt"
    assert not is_ambiguous(join_key("", "a\\b.txt", PathFlavour.WINDOWS))


def test_the_running_system_decides_by_default() -> None:
    expected = "a/b.txt" if os.name == "nt" else "a\\b.txt"
    assert join_key("", "a\\b.txt") == expected
