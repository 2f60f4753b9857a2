"""Verification rules that must hold on every server convention."""

from __future__ import annotations

from datetime import UTC, datetime

from desktop_app.core.storage import ObjectInfo
from desktop_app.core.transfers.sender import etag_agrees

MULTIPART = "0123456789abcdef0123456789abcdef-3"
PLAIN = "fedcba9876543210fedcba9876543210"


def test_a_multipart_etag_must_be_ours() -> None:
    assert etag_agrees(MULTIPART, MULTIPART)
    assert not etag_agrees("0" * 32 + "-3", MULTIPART)
    assert not etag_agrees(MULTIPART, PLAIN), "a single PUT never gets a multipart ETag"


def test_a_plain_etag_is_compared_with_a_single_puts_md5() -> None:
    assert etag_agrees(PLAIN, PLAIN)
    assert not etag_agrees("0" * 32, PLAIN)


def test_a_whole_object_md5_on_a_multipart_object_is_the_other_convention() -> None:
    # rclone's serve s3 answers the whole object's MD5 for a multipart upload.
    assert etag_agrees(PLAIN, MULTIPART)
    assert etag_agrees("opaque-server-tag", MULTIPART)


def test_metadata_names_are_read_in_any_case() -> None:
    sha = "AB" * 32
    for name in ("sha256", "Sha256", "SHA256"):
        info = ObjectInfo("k", 1, PLAIN, datetime.now(UTC), {name: sha})
        assert info.sha256 == sha.lower()
    assert ObjectInfo("k", 1, PLAIN, datetime.now(UTC), {}).sha256 is None
