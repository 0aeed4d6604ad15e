"""A fast webhook receiver in a process of its own, and the handle the benchmark drives it by.

One asyncio process, HTTP/1.1 keep-alive, no framework: it answers `200 ok` to every POST on
its main port and records when each request arrived (`time.monotonic()`, CLOCK_MONOTONIC,
which every process of the machine shares) with its `X-Webhook-Event-Id`. A POST under
`/slow/` is answered after `SLOW_SECONDS`, as a receiver across the internet that does some
work answers. A second port accepts requests and never answers: an endpoint that hangs
until the sender's timeout. `RECEIVER_PORTS` more ports answer like the main one, so that a
scenario can address that many receivers (a sender keeps a connection pool per port).

Control requests on the main port (GET, so they never count as deliveries):
`/_stats` (counters), `/_records` (arrivals since the last reset), `/_reset`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
SLOW_SECONDS = 0.2
RECEIVER_PORTS = 100


class _Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.connections = 0
        self.hung_requests = 0
        self.hung_connections = 0
        self.records: list[tuple[float, str]] = []

    def as_dict(self) -> dict:
        return {"requests": self.requests, "connections": self.connections,
                "hung_requests": self.hung_requests, "hung_connections": self.hung_connections}


def _parse_head(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    request_line, *lines = head.split(b"\r\n")
    method, path, _ = request_line.split(b" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return method, path, headers


class _HttpProtocol(asyncio.Protocol):
    """Parses pipelined or keep-alive requests; `answer` decides the reply."""

    hang = False

    def __init__(self, stats: _Stats):
        self.stats = stats
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.hang:
            self.stats.hung_connections += 1
        else:
            self.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            method, path, headers = _parse_head(bytes(self.buffer[:end]))
            total = end + 4 + int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            self.answer(method, path, headers)

    def answer(self, method: bytes, path: bytes, headers: dict[bytes, bytes]) -> None:
        if self.hang:
            self.stats.hung_requests += 1  # never answered: the sender's deadline ends it
            return
        if method == b"GET":
            self._control(path)
            return
        arrived = time.monotonic()
        self.stats.requests += 1
        self.stats.records.append(
            (arrived, headers.get(b"x-webhook-event-id", b"").decode("ascii", "replace")))
        if path.startswith(b"/slow/"):
            asyncio.get_running_loop().call_later(SLOW_SECONDS, self._reply_ok)
        else:
            self.transport.write(_OK)

    def _reply_ok(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_OK)

    def _control(self, path: bytes) -> None:
        if path == b"/_records":
            payload = self.stats.records
        else:
            if path == b"/_reset":
                self.stats.reset()
            payload = self.stats.as_dict()
        body = json.dumps(payload).encode()
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)


class _HangingProtocol(_HttpProtocol):
    hang = True


async def _serve(port: int, hang_port: int) -> None:
    loop = asyncio.get_running_loop()
    stats = _Stats()
    fast = await loop.create_server(lambda: _HttpProtocol(stats), "127.0.0.1", port,
                                    backlog=1024)
    hanging = await loop.create_server(lambda: _HangingProtocol(stats), "127.0.0.1",
                                       hang_port, backlog=1024)
    more = [await loop.create_server(lambda: _HttpProtocol(stats), "127.0.0.1", 0,
                                     backlog=1024) for _ in range(RECEIVER_PORTS)]
    ports = {"port": fast.sockets[0].getsockname()[1],
             "hang_port": hanging.sockets[0].getsockname()[1],
             "receiver_ports": [server.sockets[0].getsockname()[1] for server in more]}
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


class ReceiverProcess:
    """Starts the receiver as a child process and reads its counters over HTTP."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver"], cwd=ROOT, stdout=subprocess.PIPE,
            text=True)
        ports = json.loads(self.process.stdout.readline())
        self.port, self.hang_port = ports["port"], ports["hang_port"]
        self.receiver_ports = ports["receiver_ports"]
        self.control = requests.Session()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/hook/{name}"

    def slow_url(self, name: str) -> str:
        return f"{self.base_url}/slow/{name}"

    def port_url(self, name: str, index: int) -> str:
        """A URL on the `index`-th of the receiver ports: another receiver, to a sender."""
        return f"http://127.0.0.1:{self.receiver_ports[index]}/hook/{name}"

    def hanging_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.hang_port}/hook/{name}"

    def stats(self) -> dict:
        return self.control.get(f"{self.base_url}/_stats", timeout=30).json()

    def reset(self) -> dict:
        return self.control.get(f"{self.base_url}/_reset", timeout=30).json()

    def records(self) -> list[tuple[float, str]]:
        return [tuple(row) for row in
                self.control.get(f"{self.base_url}/_records", timeout=60).json()]

    def stop(self) -> None:
        self.control.close()
        self.process.terminate()
        self.process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hang-port", type=int, default=0)
    arguments = parser.parse_args()
    asyncio.run(_serve(arguments.port, arguments.hang_port))


if __name__ == "__main__":
    main()
