"""A fault-injecting HTTP proxy between Ferry and a real S3 server.

Rules decide, per request, to pass it on, answer with an HTTP error (500,
503, SlowDown...), reset the connection, or delay it. ``go_down`` makes the
whole endpoint vanish (open connections cut, new ones refused at the TCP
level, as when the network drops) until ``come_up``. Requests are counted so
tests can assert what Ferry sent. Bounded: it serves only loopback and stops
with the test.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


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
    # "truncate" (the answer's body cut in half, its length saying so: a page cut short)
    action: str
    times: int = 1
    status: int = 503
    code: str = "ServiceUnavailable"
    delay: float = 0.0


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    down: bool = False
    in_flight: dict[int, Request] = field(default_factory=dict)
    connections: set[socket.socket] = field(default_factory=set)
    port: int = 0

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
                body = self.rfile.read(length) if length else b""
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
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
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
            for fault in self.faults:
                if fault.times > 0 and fault.match(request):
                    fault.times -= 1
                    return fault
        return None

    def stop(self) -> None:
        if not self.down:
            self.server.shutdown()
            self.server.server_close()

    def bytes_put(self) -> int:
        """Body bytes of every PUT (whole objects and parts) that reached the proxy."""
        with self.lock:
            return sum(r.length for r in self.seen if r.method == "PUT")


def is_put(request: Request) -> bool:
    return request.method == "PUT"


def is_part_upload(request: Request) -> bool:
    return request.method == "PUT" and "partNumber=" in request.query


def is_complete(request: Request) -> bool:
    return request.method == "POST" and "uploadId=" in request.query
