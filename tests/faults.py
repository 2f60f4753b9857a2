"""A fault-injecting HTTP proxy between Ferry and a real S3 server.

Rules decide, per request, to pass it on, answer with an HTTP error (500,
503, SlowDown...), reset the connection, delay it (its answer held while the
server has its bytes), or stall it (its body no longer taken after a few
bytes, as from a server stopped with SIGSTOP). ``go_down`` makes the
whole endpoint vanish (open connections cut, new ones refused at the TCP
level, as when the network drops) until ``come_up``. Requests are counted so
tests can assert what Ferry sent, and those the server answered are kept, so
a test can wait until a held request has reached the server. Bounded: it
serves only loopback and stops with the test.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_XML_ETAG = re.compile(r"<ETag>(&quot;|&#34;|\")?([^<&\"]*)(&quot;|&#34;|\")?</ETag>")
_SIGNATURE_HEADERS = {"authorization", "x-amz-date", "x-amz-content-sha256", "content-length"}


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # Connections cut by an outage or a killed client are expected here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class Request:
    method: str
    path: str
    query: str
    length: int


@dataclass
class Fault:
    """Applies to requests for which ``match`` is true, ``times`` times."""

    match: Callable[[Request], bool]
    # "status" | "reset" | "delay" | "opaque_etag" (answer with a non-MD5 ETag) |
    # "corrupt" (one byte of the body flipped on the way, as a bad link would) |
    # "truncate" (the answer's body cut in half, its length saying so: a page cut short) |
    # "stall" (the body's first ``after`` bytes taken, then nothing for ``delay``
    # seconds: the sender's writes block once the socket buffers are full)
    action: str
    times: int = 1
    status: int = 503
    code: str = "ServiceUnavailable"
    delay: float = 0.0
    after: int = 64 * 1024


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Request] = field(default_factory=list)
    # Those the server answered (forwarded, its answer read), whether or not
    # the client was still there to take the answer.
    answered: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    down: bool = False
    in_flight: dict[int, Request] = field(default_factory=dict)
    most_in_flight: int = 0  # the most requests it held at once
    connections: set[socket.socket] = field(default_factory=set)
    port: int = 0
    # Set (access key, secret key): every ETag the server answers, in headers and
    # XML, is replaced by a stable random 32-hex one (as SSE-KMS answers), and
    # requests naming such ETags are translated back and signed again.
    mask_etags_for: tuple[str, str] | None = None
    masks: dict[str, str] = field(default_factory=dict)  # the server's ETag -> the one shown

    def start(self) -> str:
        self._serve()
        return self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        proxy = self
        target = urlsplit(self.upstream)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", 0) or 0)
                stall = proxy._take_stall(Request(self.command, *_split(self.path), length))
                if stall is None:
                    body = self.rfile.read(length) if length else b""
                else:
                    body = self.rfile.read(min(stall.after, length))
                    time.sleep(stall.delay)
                    body += self.rfile.read(length - len(body))
                if len(body) != length or proxy.down:
                    self.close_connection = True
                    return
                path, _, query = self.path.partition("?")
                request = Request(self.command, path, query, length)
                fault = proxy._take(request, self)
                if fault is not None and fault.action == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault is not None and fault.action == "status":
                    payload = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault.code}</Code>"
                        f"<Message>injected</Message></Error>"
                    ).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault is not None and fault.action == "delay":
                    time.sleep(fault.delay)
                if fault is not None and fault.action == "corrupt" and body:
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
                assert target.hostname is not None
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                if proxy.mask_etags_for is not None:
                    body, headers = proxy._unmasked(self.command, self.path, body, headers)
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                with proxy.lock:
                    proxy.answered.append(request)
                xml = "xml" in (response.getheader("Content-Type") or "")
                if proxy.mask_etags_for is not None and xml:
                    data = _XML_ETAG.sub(
                        lambda m: f"<ETag>&quot;{proxy._mask(m.group(2))}&quot;</ETag>",
                        data.decode("utf-8", "replace"),
                    ).encode()
                if fault is not None and fault.action == "truncate":
                    data = data[: len(data) // 2]
                self.send_response(response.status)
                skip = {"transfer-encoding", "connection"}
                if self.command != "HEAD":  # HEAD keeps the upstream's Content-Length
                    skip.add("content-length")
                    self.send_header("Content-Length", str(len(data)))
                for name, value in response.getheaders():
                    opaque = fault is not None and fault.action == "opaque_etag"
                    if name.lower() == "etag" and opaque:  # as encryption at rest answers
                        value = '"opaque-not-an-md5"'
                    elif name.lower() == "etag" and proxy.mask_etags_for is not None:
                        value = f'"{proxy._mask(value.strip(chr(34)))}"'
                    if name.lower() not in skip:
                        self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()

            def setup(self) -> None:
                super().setup()
                with proxy.lock:
                    proxy.connections.add(self.connection)

            def finish(self) -> None:
                with proxy.lock:
                    proxy.connections.discard(self.connection)
                    proxy.in_flight.pop(id(self), None)
                super().finish()

            def _guarded(self) -> None:
                try:
                    self._handle()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True  # the client was killed or cut: expected
                finally:
                    with proxy.lock:
                        proxy.in_flight.pop(id(self), None)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _guarded

        self.server = _QuietServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _mask(self, etag: str) -> str:
        with self.lock:
            return self.masks.setdefault(etag, uuid.uuid4().hex)

    def _unmasked(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        """The request as the server must see it: its ETags the server's own, signed again."""
        assert self.mask_etags_for is not None
        with self.lock:
            real = {shown: etag for etag, shown in self.masks.items()}
        text = body.decode("utf-8", "replace") if b"<ETag>" in body else None
        if text is not None:
            body = _XML_ETAG.sub(
                lambda m: f'<ETag>"{real.get(m.group(2), m.group(2))}"</ETag>', text
            ).encode()
        for name in list(headers):
            if name.lower() in ("if-match", "x-amz-copy-source-if-match"):
                shown = headers[name].strip('"')
                headers[name] = f'"{real.get(shown, shown)}"'
        request = AWSRequest(
            method=method,
            url=f"http://{headers.get('Host') or headers.get('host')}{path}",
            data=body,
            headers={k: v for k, v in headers.items() if k.lower() not in _SIGNATURE_HEADERS},
        )
        access, secret = self.mask_etags_for
        S3SigV4Auth(Credentials(access, secret), "s3", "us-east-1").add_auth(request)
        signed = dict(request.headers.items())
        signed["Content-Length"] = str(len(body))
        return body, signed

    def go_down(self) -> list[Request]:
        """The endpoint vanishes; returns the requests that were in flight."""
        with self.lock:
            self.down = True
            cut = list(self.in_flight.values())
            open_connections = list(self.connections)
        self.server.shutdown()
        self.server.server_close()
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        return cut

    def come_up(self) -> None:
        with self.lock:
            self.down = False
        self._serve()

    def _take(self, request: Request, handler: object = None) -> Fault | None:
        with self.lock:
            self.seen.append(request)
            if handler is not None:
                self.in_flight[id(handler)] = request
                self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
            for fault in self.faults:
                if fault.action != "stall" and fault.times > 0 and fault.match(request):
                    fault.times -= 1
                    return fault
        return None

    def _take_stall(self, request: Request) -> Fault | None:
        """A stall for this request, decided before its body is read (not counted as seen)."""
        with self.lock:
            for fault in self.faults:
                if fault.action == "stall" and fault.times > 0 and fault.match(request):
                    fault.times -= 1
                    return fault
        return None

    def stop(self) -> None:
        if not self.down:
            self.server.shutdown()
            self.server.server_close()

    def has_seen(self, match: Callable[[Request], bool]) -> bool:
        """Whether a request for which ``match`` is true has come (its body read)."""
        with self.lock:
            return any(match(request) for request in self.seen)

    def has_answered(self, match: Callable[[Request], bool]) -> bool:
        """Whether the server has answered a request for which ``match`` is true."""
        with self.lock:
            return any(match(request) for request in self.answered)

    def bytes_put(self) -> int:
        """Body bytes of every PUT (whole objects and parts) that reached the proxy,
        the write probe's own small object (once per endpoint) left out."""
        with self.lock:
            return sum(
                r.length for r in self.seen if r.method == "PUT" and ".ferry-probe-" not in r.path
            )


def _split(target: str) -> tuple[str, str]:
    path, _, query = target.partition("?")
    return path, query


def is_put(request: Request) -> bool:
    return request.method == "PUT"


def is_probe(request: Request) -> bool:
    """A request of the write probe (once per endpoint), on its own tiny object."""
    return ".ferry-probe-" in request.path


def is_part_upload(request: Request) -> bool:
    """A part of one of Ferry's uploads (the write probe's one part left out)."""
    return request.method == "PUT" and "partNumber=" in request.query and not is_probe(request)


def is_complete(request: Request) -> bool:
    """A Complete of one of Ferry's uploads (the write probe's left out)."""
    return request.method == "POST" and "uploadId=" in request.query and not is_probe(request)
