"""HTTP plumbing of the stub server: the response it sends, a threading HTTP server and a
request handler that hands every request to the stub."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


def json_response(status: int, payload: Any, **headers: str) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=dict(headers))


def error_payload(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


class Stub(Protocol):
    """What the handler calls back into (a `StubServer`)."""

    def _serve(self, handler: Handler, method: str) -> None: ...

    def _track(self, conn: socket.socket, *, open_: bool) -> None: ...


class StubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], stub: Stub) -> None:
        self.stub = stub
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-reply is normal here (timeouts, dropped tests)."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubHTTPServer
    server_version = "swarmgate-stub"

    def setup(self) -> None:
        super().setup()
        self.server.stub._track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.stub._track(self.connection, open_=False)
        super().finish()

    def do_GET(self) -> None:
        self.server.stub._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.stub._serve(self, "POST")

    def do_PUT(self) -> None:
        self.server.stub._serve(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.stub._serve(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep stderr quiet: the request log is `StubServer.requests`."""

    def read_body(self, headers: Mapping[str, str]) -> bytes | None:
        """The request body, or None when Content-Length is not a number."""
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def answer(self, response: Response) -> None:
        """Send `response`, or close the connection without one when it is a drop."""
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the peer may already be gone: dropping is the point
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)
        self.wfile.flush()
