"""The listing page read by pattern says what the XML parser reads, or declines.

Every page here is read both ways: the plain reading must give the same
objects, truncation and token as ElementTree, or leave the page to it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from desktop_app.core.model.bucket_objects import (
    ListingPage,
    NotAListing,
    _read_page_tree,
    _read_plain_page,
    parse_listing_page,
)

PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def contents(key: str, size: str = "7", etag: str = "&#34;abc&#34;", extra: str = "") -> str:
    return (
        f"<Contents><Key>{key}</Key><LastModified>2026-11-24T09:58:12.000Z</LastModified>"
        f"<ETag>{etag}</ETag><Size>{size}</Size>{extra}<StorageClass>STANDARD</StorageClass>"
        "</Contents>"
    )


def page(*items: str, head: str = "", tail: str = "", root: str = "ListBucketResult") -> bytes:
    return (
        f"{PROLOG}<{root} {NS}><Name>b</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys>{head}"
        f"{''.join(items)}{tail}<KeyCount>{len(items)}</KeyCount></{root}>"
    ).encode()


def outcome(reader: Callable[[bytes], ListingPage], body: bytes) -> ListingPage | type[Exception]:
    """What a reader makes of a page: the page, or the kind of error it raises."""
    try:
        return reader(body)
    except NotAListing:
        return NotAListing
    except ValueError:
        return ValueError


def read_by_tree(body: bytes) -> ListingPage | type[Exception]:
    return outcome(_read_page_tree, body)


def read(body: bytes) -> ListingPage | type[Exception]:
    return outcome(parse_listing_page, body)


TRUNCATED = "<IsTruncated>true</IsTruncated>"
TOKEN = "<NextContinuationToken>q&#34;uote&#39;&amp;</NextContinuationToken>"
URL = "<EncodingType>url</EncodingType>"

# Pages as servers write them: the plain reading takes them.
PLAIN = {
    "weed, url-encoded keys, token after the objects": page(
        contents("a%26b%3Cc%3E.txt"),
        contents("%C3%BCn%C3%AF/sp+ace%2Bplus", size="0"),
        head=TRUNCATED,
        tail=TOKEN + URL,
    ),
    "aws, &quot; ETags, keys not encoded": page(
        contents("x&amp;y&lt;z&gt;.txt", etag="&quot;d41d&quot;"),
        contents("it&apos;s &#x1F600; &#233;\ttab", etag="&quot;e-2&quot;"),
        contents("new\nline", etag='"plain-quotes"'),
        head="<IsTruncated>false</IsTruncated>",
    ),
    "an empty last page": page(head="<IsTruncated>false</IsTruncated>" + URL),
    "no prolog, whitespace between elements": page(
        "\n  " + contents("k1") + "\n  ", contents("k2") + "\n", head=TRUNCATED + TOKEN
    ).removeprefix(PROLOG.encode()),
    "fields in another order, an owner": page(
        "<Contents><Size>3</Size><Owner><ID>1</ID><DisplayName>me</DisplayName></Owner>"
        "<ETag>&#34;f&#34;</ETag><LastModified>2026-01-02T03:04:05Z</LastModified>"
        "<Key>k</Key></Contents>"
    ),
}

# Pages the plain reading leaves to the XML parser (which reads them or refuses them).
NOT_PLAIN = {
    "a namespace prefix": (
        b'<?xml version="1.0" encoding="UTF-8"?><s3:ListBucketResult '
        b'xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><s3:Contents><s3:Key>k</s3:Key>'
        b"<s3:Size>1</s3:Size><s3:ETag>e</s3:ETag><s3:LastModified>2026-11-24T09:58:12Z"
        b"</s3:LastModified></s3:Contents></s3:ListBucketResult>"
    ),
    "a key in CDATA": page(contents("<![CDATA[a<b]]>")),
    "a comment": page(contents("k<!-- x -->"), contents("j")),
    "a field with an attribute": page(contents("k").replace("<Size>", '<Size unit="B">')),
    "an object without its ETag": page(
        contents("k1"),
        "<Contents><Key>k2</Key><Size>1</Size><LastModified>"
        "2026-11-24T09:58:12Z</LastModified></Contents>",
    ),
    "an object with two keys": page(contents("k1", extra="<Key>k3</Key>")),
    "a carriage return XML would turn into a newline": page(contents("a\r\nb")),
    "an entity XML does not define": page(contents("caf&eacute;")),
    "a character XML refuses": page(contents("nul&#0;")),
    "a control character": page(contents("bell\x07")),
    "a truncation flag with an attribute": page(
        contents("k"), head='<IsTruncated a="1">true</IsTruncated>' + TOKEN
    ),
    "two tokens": page(contents("k"), head=TRUNCATED + TOKEN + TOKEN),
    "another encoding": page(contents("k")).replace(b"UTF-8", b"ISO-8859-1"),
    "an error inside a 200": (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
        b"<Message>We encountered an internal error.</Message></Error>"
    ),
    "a page cut short": page(contents("k1"), contents("k2"))[:-40],
    "a size that is not a number": page(contents("k", size="seven")),
}


@pytest.mark.parametrize("body", PLAIN.values(), ids=PLAIN.keys())
def test_a_plain_page_is_read_by_pattern_as_the_xml_parser_reads_it(body: bytes) -> None:
    expected = read_by_tree(body)
    assert isinstance(expected, ListingPage)
    assert _read_plain_page(body) == expected
    assert read(body) == expected


def test_the_plain_reading_decodes_what_a_user_named_their_files() -> None:
    got = _read_plain_page(PLAIN["weed, url-encoded keys, token after the objects"])
    assert got is not None
    assert [o.key for o in got.objects] == ["a&b<c>.txt", "ün\u00ef/sp ace+plus"]
    assert [o.etag for o in got.objects] == ["abc", "abc"]
    assert (got.truncated, got.next_token) == (True, "q\"uote'&")
    aws = _read_plain_page(PLAIN["aws, &quot; ETags, keys not encoded"])
    assert aws is not None
    assert [o.key for o in aws.objects] == [
        "x&y<z>.txt",
        "it's \U0001f600 \u00e9\ttab",
        "new\nline",
    ]
    assert [o.etag for o in aws.objects] == ["d41d", "e-2", "plain-quotes"]
    assert not aws.truncated


@pytest.mark.parametrize("body", NOT_PLAIN.values(), ids=NOT_PLAIN.keys())
def test_any_other_page_is_left_to_the_xml_parser(body: bytes) -> None:
    assert _read_plain_page(body) is None
    assert read(body) == read_by_tree(body)


def test_errors_and_cut_pages_are_not_listings() -> None:
    assert read(NOT_PLAIN["an error inside a 200"]) is NotAListing
    assert read(NOT_PLAIN["a page cut short"]) is NotAListing
    assert read(NOT_PLAIN["an entity XML does not define"]) is NotAListing
