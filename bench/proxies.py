"""Counting TCP proxies: how many SQL statements and Redis commands a delivery costs.

A worker started with DATABASE_URL and CELERY_BROKER_URL pointing here talks to the real
servers through these proxies, which parse what the client sends — PostgreSQL's frontend
messages (psycopg2 sends each statement as one simple `Q` query) and Redis' RESP arrays —
and count statements, commands and new connections. Everything the worker process does is
counted: the ORM's statements, `pool_pre_ping`'s `SELECT 1`, kombu's polling and acks, and
Celery's event messages. Only the cost phase goes through them: they add a hop.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from collections.abc import Callable

_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def statement_shape(sql: str) -> str:
    """A statement with its literals replaced, whitespace collapsed: one key per query."""
    return " ".join(_LITERALS.sub("?", sql).split())[:120]


class PostgresCounter:
    """Counts the frontend messages of one client connection (protocol 3.0)."""

    def __init__(self, counts: Counter, statements: Counter):
        self.counts, self.statements = counts, statements  # statement shape → count
        self.buffer = bytearray()
        self.in_startup = True

    def feed(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            if self.in_startup:  # untyped messages: SSL/GSS requests, then the startup
                if len(buffer) < 8 or len(buffer) < int.from_bytes(buffer[:4], "big"):
                    return
                code = int.from_bytes(buffer[4:8], "big")
                del buffer[:int.from_bytes(buffer[:4], "big")]
                self.in_startup = code in (_SSL_REQUEST, _GSSENC_REQUEST)
                continue
            if len(buffer) < 5:
                return
            length = int.from_bytes(buffer[1:5], "big")
            if len(buffer) < 1 + length:
                return
            kind, payload = chr(buffer[0]), bytes(buffer[5:1 + length])
            del buffer[:1 + length]
            if kind == "Q":
                sql = payload.rstrip(b"\0").decode("utf-8", "replace")
                self.counts["statements"] += 1
                self.statements[statement_shape(sql)] += 1
            elif kind == "P":  # extended protocol (not psycopg2's), counted all the same
                self.counts["statements"] += 1
            else:
                self.counts[f"message_{kind}"] += 1


class RedisCounter:
    """Counts the RESP commands of one client connection, by command name."""

    def __init__(self, counts: Counter, commands: Counter):
        self.counts, self.commands = counts, commands
        self.buffer = bytearray()

    def _line(self, start: int) -> tuple[bytes, int] | None:
        end = self.buffer.find(b"\r\n", start)
        return None if end < 0 else (bytes(self.buffer[start:end]), end + 2)

    def _command(self) -> tuple[str, int] | None:
        line = self._line(0)
        if line is None:
            return None
        header, position = line
        if not header.startswith(b"*"):  # inline command
            return header.split(b" ", 1)[0].decode().upper(), position
        name = None
        for _ in range(int(header[1:])):
            size_line = self._line(position)
            if size_line is None:
                return None
            size, position = int(size_line[0][1:]), size_line[1]
            if len(self.buffer) < position + size + 2:
                return None
            if name is None:
                name = bytes(self.buffer[position:position + size]).decode().upper()
            position += size + 2
        return name or "", position

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while (command := self._command()) is not None:
            name, consumed = command
            del self.buffer[:consumed]
            self.counts["commands"] += 1
            self.commands[name] += 1


class CountingProxy:
    """Forwards 127.0.0.1:`port` to the real server and feeds the client's bytes to a counter."""

    def __init__(self, target_port: int,
                 make_counter: Callable[[Counter, Counter], object]):
        self.target_port = target_port
        self.make_counter = make_counter
        self.counts: Counter = Counter()  # connections, statements or commands, ...
        self.details: Counter = Counter()  # per statement shape or command name
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_reader, client_writer) -> None:
        self.counts["connections"] += 1
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1",
                                                                     self.target_port)
        counter = self.make_counter(self.counts, self.details)
        await asyncio.gather(self._pump(client_reader, server_writer, counter.feed),
                             self._pump(server_reader, client_writer, None),
                             return_exceptions=True)

    @staticmethod
    async def _pump(reader, writer, observe) -> None:
        try:
            while data := await reader.read(65536):
                if observe is not None:
                    observe(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def snapshot(self) -> tuple[Counter, Counter]:
        """Copies of the counters, taken on the proxy's own thread (no torn reads)."""
        async def copy():
            return Counter(self.counts), Counter(self.details)
        return asyncio.run_coroutine_threadsafe(copy(), self._loop).result(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def postgres_proxy(target_port: int) -> CountingProxy:
    return CountingProxy(target_port, PostgresCounter).start()


def redis_proxy(target_port: int) -> CountingProxy:
    return CountingProxy(target_port, RedisCounter).start()
