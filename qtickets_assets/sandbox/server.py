"""The sandbox on a real local port (`qtickets-assets sandbox serve --port N`).

A threading HTTP/1.1 server that hands every request to `Sandbox.handle`, so the port and the
in-process transport answer byte for byte the same (faults included).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from .account import Sandbox

log = logging.getLogger(__name__)
API_PREFIX = "/api/rest/v1/"
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding", "server", "date"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like nginx in front of the real API
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: SandboxServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        content = self.rfile.read(length) if length else b""
        request = httpx.Request(self.command, f"http://{self.headers.get('Host', 'localhost')}{self.path}",
                                headers=list(self.headers.items()), content=content)
        try:
            response = self.server.sandbox.handle(request)
        except httpx.TimeoutException:  # a "slow" fault; over a socket the client times out by itself
            self.close_connection = True
            return
        body = response.read()
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) meanwhile
            self.close_connection = True

    def version_string(self) -> str:
        return "nginx/1.14.1"

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        log.info("%s %s", self.address_string(), format % args)


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0):
        self.sandbox = sandbox
        super().__init__((host, port), _Handler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{API_PREFIX}"


@contextmanager
def serving(sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> Iterator[SandboxServer]:
    """Serve `sandbox` from a background thread for the duration of the block."""
    server = SandboxServer(sandbox, host, port)
    thread = threading.Thread(target=server.serve_forever, name="qtickets-sandbox", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
