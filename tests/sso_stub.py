"""A stand-in for AWS IAM Identity Center on loopback: SSO OIDC's three calls
(RegisterClient, StartDeviceAuthorization, CreateToken) and the portal's
GetRoleCredentials, enough for botocore's clients and Ferry's sign-in.

``/approve?user_code=...`` is the verification page: a "browser" that opens it
approves the sign-in, as a person would. Until then CreateToken answers
AuthorizationPendingException.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class SsoStub:
    def __init__(self) -> None:
        self.approved = threading.Event()
        self.user_code = "FERY-TEST"
        self.device_code = secrets.token_hex(8)
        self.access_token = "sso-access-" + secrets.token_hex(8)
        self.token_polls = 0
        self.role_requests: list[dict[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any], error: str = "") -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.handle_post(self, urlsplit(self.path).path, body)

            def do_GET(self) -> None:
                stub.handle_get(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle_post(self, handler: Any, path: str, body: dict[str, Any]) -> None:
        if path == "/client/register":
            handler._reply(
                200,
                {
                    "clientId": "client-1",
                    "clientSecret": "client-secret-1",
                    "clientIdIssuedAt": 1_700_000_000,
                    "clientSecretExpiresAt": 4_000_000_000,
                },
            )
        elif path == "/device_authorization":
            handler._reply(
                200,
                {
                    "deviceCode": self.device_code,
                    "userCode": self.user_code,
                    "verificationUri": f"{self.url}/approve",
                    "verificationUriComplete": f"{self.url}/approve?user_code={self.user_code}",
                    "expiresIn": 600,
                    "interval": 1,
                },
            )
        elif path == "/token":
            self.token_polls += 1
            if body.get("deviceCode") != self.device_code:
                handler._reply(400, {"error": "invalid_grant"}, "InvalidGrantException")
            elif not self.approved.is_set():
                handler._reply(
                    400, {"error": "authorization_pending"}, "AuthorizationPendingException"
                )
            else:
                handler._reply(
                    200,
                    {
                        "accessToken": self.access_token,
                        "tokenType": "Bearer",
                        "expiresIn": 3600,
                        "refreshToken": "refresh-1",
                    },
                )
        else:
            handler._reply(404, {"message": f"no {path}"}, "ResourceNotFoundException")

    def handle_get(self, handler: Any) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/approve" and query.get("user_code") == self.user_code:
            self.approved.set()
            handler._reply(200, {"approved": True})
        elif parts.path == "/federation/credentials":
            if handler.headers.get("x-amz-sso_bearer_token") != self.access_token:
                handler._reply(401, {"message": "bad token"}, "UnauthorizedException")
                return
            self.role_requests.append(query)
            handler._reply(
                200,
                {
                    "roleCredentials": {
                        "accessKeyId": "ASIASSOSTUB",
                        "secretAccessKey": "sso-role-secret-5d2a",
                        "sessionToken": "sso-session-token",
                        "expiration": 4_000_000_000_000,
                    }
                },
            )
        else:
            handler._reply(404, {"message": "not found"}, "ResourceNotFoundException")
