"""A real HTTP receiver on 127.0.0.1 for delivery tests, programmable per request."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)
    method: str = "POST"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    # Writes the whole answer itself (raw bytes, at its own pace) instead of the above.
    raw: Callable[[BinaryIO], None] | None = None


class _Server(ThreadingHTTPServer):
    """A listen backlog like a real receiver's (nginx 511, gunicorn 2048), not socketserver's
    5: a worker with many deliveries in flight opens several connections at once, and this
    test process's accepting thread competes for the GIL with the test itself."""

    request_queue_size = 128
    daemon_threads = True


class Receiver:
    """Records every request (any method); `respond` decides each reply (default 200).

    `connections` counts the TCP connections accepted, to measure keep-alive reuse. With
    an `ssl_context` it serves HTTPS; `port` 0 picks a free one.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None, port: int = 0):
        self.requests: list[Received] = []
        self.connections = 0
        self.respond: Callable[[Received], Reply] = lambda request: Reply()
        self._lock = threading.Lock()
        self._scheme = "https" if ssl_context else "http"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # As nginx and gunicorn do: without it the body, written after the headers,
            # waits for the client's delayed ACK of them (40 ms on Linux) on a kept
            # connection.
            disable_nagle_algorithm = True

            def setup(self):
                super().setup()
                with receiver._lock:
                    receiver.connections += 1

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                request = Received(self.path, dict(self.headers.items()),
                                   self.rfile.read(length), method=self.command)
                with receiver._lock:
                    receiver.requests.append(request)
                reply = receiver.respond(request)
                if reply.raw is not None:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        reply.raw(self.wfile)
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_PUT = do_DELETE = do_POST

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", port), Handler)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    def hold(self, path: str, seconds: float = 30, reply: Reply | None = None
             ) -> threading.Event:
        """Requests to `path` get no answer (others 200) until the returned event is set,
        or `seconds` have passed: an attempt held in flight for as long as a test needs.
        Then they get `reply` (default 200)."""
        release = threading.Event()

        def respond(request: Received) -> Reply:
            if request.path == path:
                release.wait(seconds)
                return reply or Reply()
            return Reply()

        self.respond = respond
        return release

    def posts(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests
                    if r.method == "POST" and (path is None or r.path == path)]

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.connections = 0
        self.respond = lambda request: Reply()
