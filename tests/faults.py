"""A fault-injecting HTTP proxy between Ferry and a real S3 server.

Rules decide, per request, to pass it on, answer with an HTTP error (500,
503, SlowDown...), reset the connection, or delay it. Requests are counted so
tests can assert what Ferry sent. Bounded: it serves only loopback and stops
with the test.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


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
    action: str  # "status" | "reset" | "delay"
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

    def start(self) -> str:
        proxy = self
        target = urlsplit(self.upstream)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", 0) or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                request = Request(self.command, path, query, length)
                fault = proxy._take(request)
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
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                skip = {"transfer-encoding", "connection"}
                if self.command != "HEAD":  # HEAD keeps the upstream's Content-Length
                    skip.add("content-length")
                    self.send_header("Content-Length", str(len(data)))
                for name, value in response.getheaders():
                    if name.lower() not in skip:
                        self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()

            def _guarded(self) -> None:
                try:
                    self._handle()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client was killed: expected

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _guarded

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _take(self, request: Request) -> Fault | None:
        with self.lock:
            self.seen.append(request)
            for fault in self.faults:
                if fault.times > 0 and fault.match(request):
                    fault.times -= 1
                    return fault
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def is_part_upload(request: Request) -> bool:
    return request.method == "PUT" and "partNumber=" in request.query


def is_complete(request: Request) -> bool:
    return request.method == "POST" and "uploadId=" in request.query
