"""Verification rules that must hold on every server convention."""

from __future__ import annotations

from datetime import UTC, datetime

from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.transfers.etags import EtagMeaning

MULTIPART = "0123456789abcdef0123456789abcdef-3"
PLAIN = "fedcba9876543210fedcba9876543210"


def proven_md5() -> EtagMeaning:
    """An endpoint that has answered a plain write with the MD5 of its bytes."""
    meaning = EtagMeaning()
    meaning.learn(None, PLAIN, PLAIN)
    return meaning


def test_a_multipart_etag_must_be_ours() -> None:
    etags = proven_md5()
    assert not etags.contradicts(MULTIPART, MULTIPART, None)
    assert etags.contradicts("0" * 32 + "-3", MULTIPART, None)
    assert etags.contradicts(MULTIPART, PLAIN, None), "a single PUT never gets a multipart ETag"


def test_a_plain_etag_is_compared_with_a_single_puts_md5() -> None:
    etags = proven_md5()
    assert not etags.contradicts(PLAIN, PLAIN, None)
    assert etags.contradicts("0" * 32, PLAIN, None)


def test_a_whole_object_md5_on_a_multipart_object_is_the_other_convention() -> None:
    # rclone's serve s3 answers the whole object's MD5 for a multipart upload.
    etags = proven_md5()
    assert not etags.contradicts(PLAIN, MULTIPART, None)
    assert not etags.contradicts("opaque-server-tag", MULTIPART, None)


def test_an_etag_is_an_md5_only_where_the_endpoint_showed_it() -> None:
    unknown = EtagMeaning()
    # 32 hex digits that are not the MD5 (SSE-KMS, some gateways): no evidence either way.
    assert not unknown.is_md5(None)
    assert not unknown.contradicts("0" * 32, PLAIN, None)
    unknown.learn(None, "0" * 32, PLAIN)  # not equal: nothing learnt
    assert not unknown.is_md5(None)
    # Shown for unencrypted objects and SSE-S3 separately; never for KMS or SSE-C.
    unknown.learn("AES256", PLAIN, PLAIN)
    assert unknown.is_md5("AES256")
    assert not unknown.is_md5(None)
    for opaque in ("aws:kms", "aws:kms:dsse", "SSE-C"):
        unknown.learn(opaque, PLAIN, PLAIN)
        assert not unknown.is_md5(opaque)
        assert not unknown.contradicts("0" * 32, PLAIN, opaque)


def test_metadata_names_are_read_in_any_case() -> None:
    sha = "AB" * 32
    for name in ("sha256", "Sha256", "SHA256"):
        info = ObjectInfo("k", 1, PLAIN, datetime.now(UTC), {name: sha})
        assert info.sha256 == sha.lower()
    assert ObjectInfo("k", 1, PLAIN, datetime.now(UTC), {}).sha256 is None
