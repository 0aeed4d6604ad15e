"""A real HTTP CONNECT proxy on 127.0.0.1 for the egress proxy tests.

It records every request it is sent (a CONNECT's target, or the request line of anything
else, which it refuses with 405) and relays tunnels to 127.0.0.0/8 only: a CONNECT to any
other address gets 403, so nothing leaves the machine. It can demand credentials (407
without them) or take CONNECTs and never answer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import socketserver
import threading
from dataclasses import dataclass


@dataclass
class Asked:
    method: str
    target: str  # a CONNECT's host:port, or another request's target as sent
    headers: dict[str, str]


class ConnectProxy:
    def __init__(self, authorization: str | None = None, answers: bool = True):
        self.asked: list[Asked] = []
        self.connections = 0
        self._authorization = authorization
        self._answers = answers
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sockets: set[socket.socket] = set()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            rbufsize = 0  # nothing of the tunnel may be left behind in a read buffer

            def handle(self):
                with proxy._lock:
                    proxy.connections += 1
                    proxy._sockets.add(self.connection)
                method, target, _ = (self.rfile.readline(65537).decode("latin-1").split()
                                     + ["", "", ""])[:3]
                headers = {}
                while (line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip()] = value.strip()
                if not method:  # connected and hung up
                    return
                with proxy._lock:
                    proxy.asked.append(Asked(method, target, headers))
                with contextlib.suppress(OSError):  # the client hung up first
                    proxy._serve(self.connection, method, target, headers)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def targets(self) -> list[str]:
        with self._lock:
            return [asked.target for asked in self.asked]

    def _serve(self, client: socket.socket, method: str, target: str,
               headers: dict[str, str]) -> None:
        if method != "CONNECT":
            return _reply(client, "405 Method Not Allowed")
        if not self._answers:
            self._stopped.wait(30)
            return
        if self._authorization and headers.get("Proxy-Authorization") != self._authorization:
            return _reply(client, "407 Proxy Authentication Required")
        host, _, port = target.rpartition(":")
        try:
            local = ipaddress.ip_address(host.strip("[]")) in ipaddress.ip_network("127.0.0.0/8")
        except ValueError:  # a name: this proxy never resolves one
            local = False
        if not local:
            return _reply(client, "403 Forbidden")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            return _reply(client, "502 Bad Gateway")
        with self._lock:
            self._sockets.add(upstream)
        _reply(client, "200 Connection established")
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join(10)
        upstream.close()

    def __enter__(self) -> ConnectProxy:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:  # tunnels a client still keeps alive end with the proxy
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _reply(client: socket.socket, status: str) -> None:
    client.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        source.settimeout(None)
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
