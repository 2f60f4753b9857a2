"""What a server's ETags say about the bytes it stored, learned per endpoint.

An ETag is the MD5 of the bytes only where the endpoint has shown that it is,
never by its shape: under SSE-KMS and SSE-C an ETag is 32 hex digits that are
not the MD5 (AWS documents this), and some gateways answer such tags too.
Promises:

- an ETag is held against Ferry's MD5 only under an encryption for which
  this endpoint has already answered a write of Ferry's with exactly the
  MD5 of the bytes sent; under ``aws:kms``, ``aws:kms:dsse`` and SSE-C never;
- where that is not shown, the proof of bytes rests on what the server
  checked itself (the Content-MD5 of each request, refused with BadDigest
  when the bytes differ) and on the size and the SHA-256 metadata read back
  (invariant 8); the ETag the server gave is then what Ferry records;
- what was learned is kept for the life of the process (one endpoint per
  :class:`EtagMeaning`); a restart learns again from its first write.
"""

from __future__ import annotations

import re
import threading

_MD5_LIKE = re.compile(r"^[0-9a-f]{32}(-\d+)?$")
# Encryptions whose ETags are never an MD5 of the plaintext (AWS S3 documentation).
OPAQUE_ENCRYPTIONS = frozenset({"aws:kms", "aws:kms:dsse", "SSE-C"})


class EtagMeaning:
    """One endpoint's ETags: MD5s of the bytes, or opaque; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._md5_under: set[str] = set()  # encryptions ("" for none) shown to give MD5s

    def learn(self, encryption: str | None, etag: str, md5_hex: str) -> None:
        """A write of bytes with MD5 ``md5_hex`` was answered with ``etag``."""
        if etag == md5_hex and encryption not in OPAQUE_ENCRYPTIONS:
            with self._lock:
                self._md5_under.add(encryption or "")

    def is_md5(self, encryption: str | None) -> bool:
        """Whether an ETag under this encryption is known to be the MD5 of the bytes."""
        if encryption in OPAQUE_ENCRYPTIONS:
            return False
        with self._lock:
            return (encryption or "") in self._md5_under

    def contradicts(self, server: str, expected: str, encryption: str | None) -> bool:
        """Does the server's ETag prove the object holds other bytes than Ferry's
        (whose ETag Ferry computed as ``expected``)?

        Only an ETag known to be an MD5 can. A multipart-form ETag
        (``md5-of-part-md5s-N``) must then equal ours; a plain MD5 on an object
        Ferry sent in parts is the other convention (the whole object's MD5,
        as rclone's ``serve s3`` gives) and says nothing against it.
        """
        if not self.is_md5(encryption) or not _MD5_LIKE.match(server):
            return False
        if "-" in server or "-" not in expected:
            return server != expected
        return False
