"""The lean listing parser against botocore's own, on a real weed mini, with faults between."""

from __future__ import annotations

from datetime import datetime

from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import CredentialSource, S3Credentials
from desktop_app.core.storage.listing import iter_object_pages, iter_objects
from desktop_app.core.storage.s3 import S3Storage
from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, WeedServer
from tests.faults import Fault, FaultProxy, Request

# Keys a listing must give back exactly: spaces, '+' (the url encoding's
# space), XML's special characters, non-ASCII, a literal percent sign.
TRICKY = ["a b.txt", "a+b.txt", "x&y<z>.txt", "ünï/çødé.txt", "q%41.txt", 'it\'s "quoted".txt']
PREFIX = "listed/"


def connect(endpoint_url: str, bucket: str) -> S3Storage:
    profile = Profile(name="t", bucket=bucket, catalog_url="sqlite://", endpoint_url=endpoint_url)
    keys = S3Credentials(TEST_ACCESS_KEY, TEST_SECRET_KEY, CredentialSource.ENVIRONMENT)
    return S3Storage.connect(profile, keys)


def fill(weed: WeedServer, bucket: str, count: int) -> list[tuple[str, int, str, datetime]]:
    """Objects under PREFIX; what botocore's own parser lists for them."""
    client = weed.client()
    names = [f"{PREFIX}{name}" for name in TRICKY] + [f"{PREFIX}n{n:04d}" for n in range(count)]
    for size, key in enumerate(names):
        client.put_object(Bucket=bucket, Key=key, Body=b"x" * size)
    listed = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for item in page.get("Contents", []):
            listed.append(
                (item["Key"], item["Size"], item["ETag"].strip('"'), item["LastModified"])
            )
    assert {key for key, *_ in listed} == set(names)
    return listed


def test_a_page_read_by_ferry_says_what_botocore_reads_in_it(weed: WeedServer, bucket: str) -> None:
    expected = fill(weed, bucket, 130)
    storage = connect(weed.endpoint_url, bucket)
    pages = list(iter_object_pages(storage, PREFIX, page_size=50))
    assert len(pages) == 3
    got = [(o.key, o.size, o.etag, o.last_modified) for page in pages for o in page]
    assert got == expected  # same keys (decoded), sizes, ETags, times, in the same order


def is_listing(request: Request) -> bool:
    return request.method == "GET" and "list-type=2" in request.query


def test_an_error_inside_a_200_and_a_page_cut_short_are_asked_for_again(
    weed: WeedServer, bucket: str, proxy: FaultProxy
) -> None:
    expected = fill(weed, bucket, 90)
    storage = connect(proxy.url, bucket)
    # S3 may answer 200 and put an error in the body; a link may cut a page short.
    proxy.faults = [
        Fault(is_listing, "status", status=200, code="InternalError"),
        Fault(is_listing, "truncate"),
    ]
    got = [(o.key, o.size, o.etag, o.last_modified) for o in iter_objects(storage, PREFIX)]
    assert got == expected
    assert sum(1 for r in proxy.seen if is_listing(r)) == 1 + 2  # one page, asked three times
