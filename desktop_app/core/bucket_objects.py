"""What the bucket says about its objects, and reading a listing page of them.

botocore turns every key of a listing into a dictionary, parses every
timestamp with dateutil, and parses each page once more to look for an
error inside a 200 answer: for a check of 100,000 objects that was two thirds
of its time (docs/BENCHMARKS.md). :func:`read_listings_lean` keeps botocore
for the request (signing, retries, errors, proxies) and lets
:func:`parse_listing_page` read a ListObjectsV2 page, once.

Promises: the keys, sizes, ETags (without quotes) and times botocore would
give, keys URL-decoded when the server encoded them (botocore asks for
``encoding-type=url``); an error inside a 200 answer, or a page cut short, is
turned into a 500 for botocore to retry and report, as its own check did; a
page this parser cannot read is left to botocore's parser.
"""

from __future__ import annotations

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

    @property
    def sha256(self) -> str | None:
        # Metadata names arrive in any case (`X-Amz-Meta-Sha256` from some servers).
        for name, value in self.metadata.items():
            if name.lower() == SHA256_METADATA:
                return value.lower()
        return None


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
        raise ValueError(f"a listed object without {exc.args[0]}") from None


class NotAListing(ValueError):
    """The answer is S3's error document, or XML cut short: not a page at all."""


def parse_listing_page(body: bytes) -> ListingPage:
    """The objects of one ListObjectsV2 answer, and where the next page starts.

    Raises :class:`NotAListing` for an error or broken XML, ValueError for a
    listing with an object this parser cannot read.
    """
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise NotAListing(f"the listing is not well-formed XML ({exc})") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != f"{ns}ListBucketResult":
        raise NotAListing(f"the answer is {root.tag!r}, not a listing")
    url_encoded = root.findtext(f"{ns}EncodingType") == "url"
    return ListingPage(
        objects=[_object(item, ns, url_encoded) for item in root.iterfind(f"{ns}Contents")],
        truncated=(root.findtext(f"{ns}IsTruncated") or "").lower() == "true",
        next_token=root.findtext(f"{ns}NextContinuationToken") or None,
    )


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
