"""The receiver's own capacity: many keep-alive connections posting as fast as it answers.

Runs in a process of its own (`python -m bench.loadgen`), so the figure is what the
receiver serves on this machine while something else competes for the CPU — a lower bound.
The receiver is not the bottleneck when this is several times the throughput measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from bench.receiver import _OK, ROOT

_BODY = b'{"padding":"' + b"x" * 1000 + b'"}'
_REQUEST = (b"POST /hook/loadgen HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Webhook-Event-Id: loadgen\r\nContent-Length: %d\r\n\r\n" % len(_BODY) + _BODY)


async def _connection(port: int, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        writer.write(_REQUEST)
        await reader.readexactly(len(_OK))
    writer.close()
    await writer.wait_closed()


async def _run(port: int, connections: int, requests_per_connection: int) -> dict:
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, requests_per_connection)
                           for _ in range(connections)))
    elapsed = time.perf_counter() - start
    total = connections * requests_per_connection
    return {"requests": total, "seconds": round(elapsed, 3),
            "per_s": round(total / elapsed, 1), "connections": connections}


def measure_receiver(port: int, total_requests: int, connections: int = 16) -> dict:
    """Run the load generator against the receiver on `port`; returns its figures."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", "--port", str(port),
         "--connections", str(connections),
         "--requests", str(max(1, total_requests // connections))],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    ).stdout
    return json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1000, help="per connection")
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(_run(arguments.port, arguments.connections,
                                      arguments.requests))))


if __name__ == "__main__":
    main()
