"""Webhook receivers in a process of their own, and the handle the benchmark drives them by.

One asyncio process, HTTP/1.1 keep-alive, no framework: it answers `200 ok` to every POST and
records when each request arrived (`time.monotonic()`, CLOCK_MONOTONIC, which every process
of the machine shares) with its `X-Webhook-Event-Id`. The path says how a receiver behaves,
on every listening socket alike:

- `/hook/<name>`: answered at once (a fast receiver next door);
- `/delay/<ms>/<name>`: answered after that many milliseconds, as a receiver across the
  internet that does some work answers;
- `/hang/<name>`: never answered (not counted as an arrival): an endpoint that hangs until
  the sender's timeout.

Where they listen: the main port on 127.0.0.1 (which also serves the control requests); a
second port where every request hangs, whatever its path; `RECEIVER_PORTS` more ports on
127.0.0.1; and `RECEIVER_HOSTS` sockets on addresses of their own (127.0.1.1, 127.0.1.2,
...; Linux routes all of 127/8 to the loopback), so that a scenario can address that many
receivers on distinct hosts, as a sender keeps its connections and its limits per host.

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
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
SLOW_SECONDS = 0.2
RECEIVER_PORTS = 100
RECEIVER_HOSTS = 1000
_HOSTS_PER_BLOCK = 250  # 127.0.1.1 ... 127.0.1.250, then 127.0.2.1 ...


def host_address(index: int) -> str:
    """The loopback address of the `index`-th host receiver (never 127.0.0.x)."""
    return f"127.0.{1 + index // _HOSTS_PER_BLOCK}.{1 + index % _HOSTS_PER_BLOCK}"


def receiver_path(name: str, delay_ms: int = 0) -> str:
    return f"/delay/{delay_ms}/{name}" if delay_ms else f"/hook/{name}"


def _reply_delay(path: bytes) -> float | None:
    """Seconds before the answer to a POST on `path`; None: never answered."""
    parts = path.split(b"/", 3)
    if len(parts) > 1 and parts[1] == b"hang":
        return None
    if len(parts) > 2 and parts[1] == b"delay" and parts[2].isdigit():
        return int(parts[2]) / 1000
    return 0.0


class _Stats:
    def __init__(self) -> None:
        self.hung_open = 0  # a gauge, not reset: connections holding an unanswered request
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.connections = 0
        self.hung_requests = 0
        self.hung_connections = 0
        self.records: list[tuple[float, str]] = []

    def as_dict(self) -> dict:
        return {"requests": self.requests, "connections": self.connections,
                "hung_requests": self.hung_requests, "hung_connections": self.hung_connections,
                "hung_open": self.hung_open}


def _parse_head(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    request_line, *lines = head.split(b"\r\n")
    method, path, _ = request_line.split(b" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return method, path, headers


class _HttpProtocol(asyncio.Protocol):
    """Parses pipelined or keep-alive requests; `answer` decides the reply. Replies leave in
    request order, as HTTP/1.1 requires: a delayed one holds back those behind it, and once
    a request hangs, so does everything after it on that connection."""

    hang = False  # every request of the socket hangs (the hanging port)

    def __init__(self, stats: _Stats):
        self.stats = stats
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.holding = False  # an unanswered request that will never be answered
        self.next_reply_at = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.hang:
            self.stats.hung_connections += 1
        else:
            self.stats.connections += 1

    def connection_lost(self, exc) -> None:
        if self.holding:
            self.stats.hung_open -= 1

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
        if method == b"GET" and not self.hang:
            self._control(path)
            return
        delay = None if self.hang or self.holding else _reply_delay(path)
        if delay is None:
            self._hold()
            return
        self.stats.requests += 1
        self.stats.records.append(
            (time.monotonic(), headers.get(b"x-webhook-event-id", b"").decode("ascii",
                                                                                "replace")))
        self._reply_after(delay)

    def _hold(self) -> None:
        """Never answered: the sender's deadline ends it."""
        self.stats.hung_requests += 1
        if not self.holding:
            self.holding = True
            self.stats.hung_open += 1

    def _reply_after(self, delay: float) -> None:
        now = time.monotonic()
        if not delay and self.next_reply_at <= now:
            self.transport.write(_OK)
            return
        self.next_reply_at = max(now + delay, self.next_reply_at)
        asyncio.get_running_loop().call_at(self.next_reply_at, self._reply_ok)

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


async def _listen(protocol: type[_HttpProtocol], stats: _Stats, host: str = "127.0.0.1",
                  port: int = 0) -> list:
    """Start one listening socket; returns its (address, port)."""
    server = await asyncio.get_running_loop().create_server(lambda: protocol(stats), host,
                                                            port, backlog=1024)
    return list(server.sockets[0].getsockname()[:2])


async def _serve(port: int, hang_port: int) -> None:
    stats = _Stats()
    ports = {"port": (await _listen(_HttpProtocol, stats, port=port))[1],
             "hang_port": (await _listen(_HangingProtocol, stats, port=hang_port))[1],
             "receiver_ports": [(await _listen(_HttpProtocol, stats))[1]
                                for _ in range(RECEIVER_PORTS)],
             "hosts": [await _listen(_HttpProtocol, stats, host_address(index))
                       for index in range(RECEIVER_HOSTS)]}
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
        self.hosts = [tuple(host) for host in ports["hosts"]]
        self.control = requests.Session()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str, delay_ms: int = 0) -> str:
        """On the main port: answered at once, or after `delay_ms`."""
        return f"{self.base_url}{receiver_path(name, delay_ms)}"

    def slow_url(self, name: str) -> str:
        return self.url(name, round(SLOW_SECONDS * 1000))

    def port_url(self, name: str, index: int) -> str:
        """A URL on the `index`-th of the receiver ports: another receiver, to a sender."""
        return f"http://127.0.0.1:{self.receiver_ports[index]}/hook/{name}"

    def host_url(self, name: str, index: int, delay_ms: int = 0) -> str:
        """A URL on the `index`-th host address: a receiver on a host of its own."""
        address, port = self.hosts[index]
        return f"http://{address}:{port}{receiver_path(name, delay_ms)}"

    def hanging_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.hang_port}/hook/{name}"

    def hanging_host_url(self, name: str, index: int) -> str:
        """An endpoint that never answers, on the `index`-th host address."""
        address, port = self.hosts[index]
        return f"http://{address}:{port}/hang/{name}"

    def hangs(self, url: str) -> bool:
        """Whether a POST to `url` is never answered (so never arrives, never succeeds)."""
        parts = urlsplit(url)
        return parts.port == self.hang_port or parts.path.startswith("/hang/")

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
