"""What the bucket says about its objects, and reading a listing page of them.

botocore turns every key of a listing into a dictionary, parses every
timestamp with dateutil, and parses each page once more to look for an
error inside a 200 answer: for a check of 100,000 objects that was two thirds
of its time (docs/BENCHMARKS.md). :func:`read_listings_lean` keeps botocore
for the request (signing, retries, errors, proxies) and lets
:func:`parse_listing_page` read a ListObjectsV2 page, once: by pattern when
the page is in the plain shape servers write, else with ElementTree.

Promises: the keys, sizes, ETags (without quotes) and times botocore would
give, keys URL-decoded when the server encoded them (botocore asks for
``encoding-type=url``); an error inside a 200 answer, or a page cut short, is
turned into a 500 for botocore to retry and report, as its own check did; a
page this parser cannot read is left to botocore's parser.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus
from xml.etree import ElementTree

import botocore.handlers
from botocore.hooks import BaseEventHooks
from botocore.utils import parse_timestamp

SHA256_METADATA = "sha256"


def unquoted_etag(etag: str) -> str:
    """An ETag as Ferry compares it: S3 sends it in double quotes."""
    return etag.strip('"')


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # without quotes
    last_modified: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)
    encryption: str | None = None  # as the server names it ("aws:kms", "AES256", "SSE-C")
    # The version a HEAD found, in a bucket that keeps versions (None: no versions).
    version_id: str | None = None
    # Object Lock, as a HEAD shows it: kept until this time, or by a legal hold.
    locked_until: datetime | None = None
    legal_hold: bool = False
    # The server's full-object CRC64NVME (base64, as S3 writes it), where a HEAD
    # asked for checksums and the object has one.
    crc64nvme: str | None = None

    @property
    def sha256(self) -> str | None:
        # Metadata names arrive in any case (`X-Amz-Meta-Sha256` from some servers).
        for name, value in self.metadata.items():
            if name.lower() == SHA256_METADATA:
                return value.lower()
        return None


@dataclass(frozen=True)
class WriteAnswer:
    """What a server said on storing bytes: the ETag, and the encryption applied."""

    etag: str  # without quotes
    encryption: str | None = None
    # The version the write made, in a bucket that keeps versions (None: it keeps none).
    version_id: str | None = None
    # The CRC64NVME the server answered for what it stored (base64), where one was sent.
    crc64nvme: str | None = None


def version_of(value: object) -> str | None:
    """A version id as Ferry records it: None where the bucket keeps no versions.

    "null" is S3's name for the one version of a key written while versioning
    was off or suspended; deleting it by that name would delete the object
    itself, whoever wrote over it, so Ferry treats it as no version at all.
    """
    text = str(value) if value else ""
    return text if text and text != "null" else None


@dataclass(frozen=True)
class ObjectVersion:
    """One version of a key in a bucket that keeps versions (ListObjectVersions)."""

    key: str
    version_id: str
    size: int
    etag: str  # without quotes
    last_modified: datetime
    latest: bool  # the key's current version


@dataclass(frozen=True)
class WriteCondition:
    """What the key must hold for a write to land: no object (``replacing`` None),
    or the object with that ETag (Ferry's own, which an overwrite replaces)."""

    replacing: str | None = None

    def met_by(self, found: ObjectInfo | None) -> bool:
        """Does the key, holding ``found`` (None: nothing), hold what this says?"""
        return (found.etag if found is not None else None) == self.replacing

    def describe(self) -> str:
        if self.replacing is None:
            return "no object"
        return f"Ferry's object with ETag {self.replacing}"


class WriteProtection(enum.Enum):
    """How far an endpoint lets Ferry keep from writing over another program's object."""

    CONDITIONS_HONOURED = "conditions_honoured"
    # Honoured on PUT, ignored (or refused) on CompleteMultipartUpload, as Ceph
    # RGW 16.2 does: a HEAD before and after each Complete.
    COMPLETE_UNGUARDED = "complete_unguarded"
    LOOK_BEFORE_WRITE = "look_before_write"  # condition headers refused (501): a HEAD first
    CONDITIONS_IGNORED = "conditions_ignored"

    def honoured(self, *, multipart: bool = False) -> bool:
        """Does the server itself refuse such a write (a multipart upload's Complete
        with ``multipart``) over an object the condition does not name?"""
        if self is WriteProtection.COMPLETE_UNGUARDED:
            return not multipart
        return self is WriteProtection.CONDITIONS_HONOURED

    @property
    def description(self) -> str:
        if self is WriteProtection.CONDITIONS_HONOURED:
            return (
                "the server refuses a write over an object Ferry did not expect (conditional "
                "writes): another program's object is never overwritten"
            )
        if self is WriteProtection.COMPLETE_UNGUARDED:
            return (
                "the server refuses a single upload over an object Ferry did not expect, but "
                "not the completion of a multipart upload (large files): Ferry looks at the "
                "key just before and just after completing one, so only a write by another "
                "program in that same instant could be overwritten"
            )
        if self is WriteProtection.LOOK_BEFORE_WRITE:
            return (
                "the server takes no conditional writes; Ferry looks at the key just before "
                "and just after each write, so only a write by another program in that same "
                "instant could be overwritten"
            )
        return (
            "the server ignores conditional writes: Ferry looks at the key just before and "
            "just after each write, so another program's object there is kept, but one "
            "written in that same instant could be overwritten; keep other programs off "
            "this profile's prefix to be sure"
        )


@dataclass(frozen=True)
class ListingPage:
    objects: list[ObjectInfo]
    truncated: bool
    next_token: str | None


def _timestamp(text: str) -> datetime:
    try:
        # S3 writes ISO 8601 ("2026-11-24T05:21:00.000Z"), which the C parser reads.
        return datetime.fromisoformat(text)
    except ValueError:
        return parse_timestamp(text)


def _object(item: ElementTree.Element, ns: str, url_encoded: bool) -> ObjectInfo:
    fields = {child.tag[len(ns) :]: child.text or "" for child in item}
    try:
        key = fields["Key"]
        return ObjectInfo(
            key=unquote_plus(key) if url_encoded else key,
            size=int(fields.get("Size") or 0),
            etag=unquoted_etag(fields.get("ETag", "")),
            last_modified=_timestamp(fields["LastModified"]),
        )
    except KeyError as exc:
        raise ValueError(f"a listed object without {exc.args[0]}") from exc


class NotAListing(ValueError):
    """The answer is S3's error document, or XML cut short: not a page at all."""


def parse_listing_page(body: bytes) -> ListingPage:
    """The objects of one ListObjectsV2 answer, and where the next page starts.

    Raises :class:`NotAListing` for an error or broken XML, ValueError for a
    listing with an object this parser cannot read.
    """
    page = _read_plain_page(body)
    return page if page is not None else _read_page_tree(body)


def _read_page_tree(body: bytes) -> ListingPage:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise NotAListing(f"the listing is not well-formed XML ({exc})") from exc
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != f"{ns}ListBucketResult":
        raise NotAListing(f"the answer is {root.tag!r}, not a listing")
    url_encoded = root.findtext(f"{ns}EncodingType") == "url"
    return ListingPage(
        objects=[_object(item, ns, url_encoded) for item in root.iterfind(f"{ns}Contents")],
        truncated=(root.findtext(f"{ns}IsTruncated") or "").lower() == "true",
        next_token=root.findtext(f"{ns}NextContinuationToken") or None,
    )


# The plain shape every S3 server we know writes: an optional UTF-8 prolog, a
# ListBucketResult without a namespace prefix, one Contents per object whose
# fields are text without markup. Building the element tree was half of a
# page's cost (docs/BENCHMARKS.md); these patterns read the same fields in a
# quarter of the time.
_PLAIN_START = re.compile(
    rb'(?:<\?xml version="1\.0" encoding="UTF-8"\?>)?\s*<ListBucketResult(?: xmlns="[^"<>]*")?>'
)
_OBJECT_FIELDS = (b"Key", b"Size", b"ETag", b"LastModified")
_PAGE_FIELDS = (b"IsTruncated", b"NextContinuationToken", b"EncodingType")
_FIELD_TEXT = {
    tag: re.compile(b"<" + tag + b">([^<]*)</" + tag + b">")
    for tag in _OBJECT_FIELDS + _PAGE_FIELDS
}
# Characters an XML parser refuses (controls) or rewrites (carriage returns).
_CONTROLS = bytes(range(0x00, 0x09)) + bytes(range(0x0B, 0x20))
_ENTITY = re.compile(r"&(?:#([0-9]+)|#x([0-9a-fA-F]+)|(amp|lt|gt|quot|apos));")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_QUOTE = "&#34;"  # how Go's XML encoder writes the ETag's quotes (SeaweedFS, MinIO)


class _NotPlain(Exception):
    """The page is not in the plain shape: the XML parser reads it."""


def _entity(match: re.Match[str]) -> str:
    decimal, hexadecimal, named = match.groups()
    if named:
        return _NAMED[named]
    code = int(decimal) if decimal else int(hexadecimal, 16)
    if (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ):
        return chr(code)
    raise _NotPlain("a character XML does not allow")


def _text(text: str) -> str:
    """An element's text as an XML parser gives it (XML's five entities, character references)."""
    if "&" not in text:
        return text
    unescaped = _ENTITY.sub(_entity, text)
    if "&" in _ENTITY.sub("", text):
        raise _NotPlain("an entity XML does not define")
    return unescaped


def _has_markup_or_controls(body: bytes) -> bool:
    """Declarations, comments or CDATA (``<!``), CDATA's end, or characters the
    plain reading would not treat as an XML parser does."""
    # A one-byte search first: a search for "<!" is slow in a page full of "<".
    if (b"!" in body and b"<!" in body) or (b"]" in body and b"]]>" in body):
        return True
    return len(body.translate(None, _CONTROLS)) != len(body)


def _texts(body: bytes, tag: bytes, count: int | None) -> list[str]:
    """Every text of the tag, if the body holds exactly ``count`` such elements
    (None: at most one), each plain text without markup."""
    found: list[bytes] = _FIELD_TEXT[tag].findall(body)
    expected = count if count is not None else min(len(found), 1)
    # An element with attributes or markup inside is not found, but closed.
    if len(found) != expected or body.count(b"</" + tag + b">") != expected:
        raise _NotPlain(f"{count} {tag!r} expected")
    if not found:
        return []
    # One decode for all: no text holds "<".
    joined = b"<".join(found).decode("utf-8")
    if "&" in joined:
        joined = joined.replace(_QUOTE, '"')  # the one entity of every page: the ETags' quotes
    texts = joined.split("<")
    return [_text(text) for text in texts] if "&" in joined else texts


def _read_plain_page(body: bytes) -> ListingPage | None:
    """The page read by pattern, or None where it is not in the plain shape.

    In that shape each field occurs once per object and nowhere else in the
    page, so the n-th Key, Size, ETag and LastModified belong to the n-th
    object. Anything else (namespace prefixes, CDATA, comments, a DOCTYPE,
    carriage returns that XML would normalise, characters it refuses, a missing
    or repeated field) is left to the XML parser, which also tells errors from
    listings.
    """
    if (
        not _PLAIN_START.match(body)
        or not body.rstrip().endswith(b"</ListBucketResult>")
        or _has_markup_or_controls(body)
    ):
        return None
    try:
        count = body.count(b"<Contents>")
        if body.count(b"<Contents") != count or body.count(b"</Contents>") != count:
            return None
        keys, sizes, etags, times = (_texts(body, tag, count) for tag in _OBJECT_FIELDS)
        truncated, token, encoding = (_texts(body, tag, None) for tag in _PAGE_FIELDS)
        if encoding == ["url"]:
            keys = [unquote_plus(key) for key in keys]
        objects = list(
            map(
                ObjectInfo,
                keys,
                [int(size or 0) for size in sizes],
                [unquoted_etag(etag) for etag in etags],
                [_timestamp(text) for text in times],
            )
        )
        return ListingPage(
            objects=objects,
            truncated=truncated != [] and truncated[0].lower() == "true",
            next_token=token[0] or None if token else None,
        )
    except (_NotPlain, ValueError):
        return None  # the XML parser reads it, and says what is wrong with it


# Where a parsed page travels from the hook to the caller of list_objects_v2.
LISTING_PAGE = "FerryListingPage"
_LISTING = "ListObjectsV2"
_BOTOCORE_200_CHECK = getattr(botocore.handlers, "_handle_200_error", None)


def _read_page(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any] | None = None, **_: Any
) -> None:
    if customized_response_dict is None or response_dict.get("status_code") != 200:
        return  # errors are botocore's; so is everything when it offers no place for the page
    try:
        page = parse_listing_page(response_dict["body"])
    except NotAListing:
        response_dict["status_code"] = 500  # what botocore's check does: retried, then reported
        return
    except ValueError:
        return  # botocore's parser reads it instead
    customized_response_dict[LISTING_PAGE] = page
    response_dict["body"] = b""  # botocore's own parse of it is then empty


def _check_200_except_listings(operation_model: Any, **kwargs: Any) -> None:
    if operation_model.name != _LISTING and _BOTOCORE_200_CHECK is not None:
        _BOTOCORE_200_CHECK(operation_model=operation_model, **kwargs)


def read_listings_lean(events: BaseEventHooks) -> None:
    """Make a client's ListObjectsV2 answers carry a :class:`ListingPage` under
    :data:`LISTING_PAGE` (absent when botocore parsed the page itself).

    botocore's check for errors inside a 200 answer is kept for every other
    operation (a CompleteMultipartUpload can fail that way); for listings the
    page's one parse does that check.
    """
    if _BOTOCORE_200_CHECK is not None:
        events.unregister("before-parse.s3.*", _BOTOCORE_200_CHECK)
        events.register_first(
            "before-parse.s3.*", _check_200_except_listings, unique_id="ferry-200-check"
        )
    events.register(f"before-parse.s3.{_LISTING}", _read_page, unique_id="ferry-listing-page")
