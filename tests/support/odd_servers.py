"""Servers that misbehave on purpose, all on 127.0.0.1: dripping and endless replies
(writers for `Reply.raw`), a slow TCP relay, DNS servers that know no name or never
answer, and a certificate nobody trusts."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import socket
import threading
import time
from pathlib import Path


def drip(data: bytes, seconds_per_byte: float = 1.0, limit_seconds: float = 30.0):
    """A writer that sends `data` one byte at a time, then stops (bounded in time)."""
    def write(wfile) -> None:
        end = time.monotonic() + limit_seconds
        for byte in data:
            if time.monotonic() > end:
                return
            wfile.write(bytes([byte]))
            wfile.flush()
            time.sleep(seconds_per_byte)
    return write


def endless_body(written: list[int], limit_bytes: int = 256 * 1024 * 1024,
                 limit_seconds: float = 30.0):
    """A writer that streams a 200 whose body never ends; counts what it managed to write."""
    def write(wfile) -> None:
        wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        chunk = b"x" * 65536
        end = time.monotonic() + limit_seconds
        written.append(0)
        while written[-1] < limit_bytes and time.monotonic() < end:
            wfile.write(chunk)
            written[-1] += len(chunk)
    return write


class LocalResolver:
    """A DNS server on a random 127.x.y.z:53 that records every name it is asked for and
    answers what `_answer` returns (nothing, for None).

    Run a worker under `wrapper()` and its /etc/resolv.conf names only this server: no
    query leaves the machine, and the test sees every name the worker looked up.
    """

    # resolv.conf options: how long the system resolver waits, and how often it asks.
    options = "timeout:2 attempts:1"

    def __init__(self, folder: Path):
        self.address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.53"
        self.names: list[str] = []
        self.resolv_conf = folder / "resolv.conf"
        self.resolv_conf.write_text(f"nameserver {self.address}\noptions {self.options}\n")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((self.address, 53))
        self._sock.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def wrapper(self) -> list[str]:
        return ["unshare", "--mount", "sh", "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(self.resolv_conf)]

    def _answer(self, query: bytes, question: bytes) -> bytes | None:
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, client = self._sock.recvfrom(2048)
            except TimeoutError:
                continue
            end, labels = 12, []
            while query[end]:
                labels.append(query[end + 1:end + 1 + query[end]].decode())
                end += 1 + query[end]
            self.names.append(".".join(labels))
            reply = self._answer(query, query[12:end + 5])
            if reply is not None:
                self._sock.sendto(reply, client)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


class NxdomainResolver(LocalResolver):
    """Answers NXDOMAIN to every question."""

    def _answer(self, query: bytes, question: bytes) -> bytes:
        flags = 0x8183 | (query[2] & 0x01) << 8  # response, RD copied, RA, NXDOMAIN
        header = query[:2] + flags.to_bytes(2, "big") + b"\x00\x01" + b"\x00" * 6
        return header + question


class SilentResolver(LocalResolver):
    """Takes every question and never answers: the system resolver waits its longest
    (30 s a try, 5 tries: 150 s and more) before it gives up."""

    options = "timeout:30 attempts:5"

    def _answer(self, query: bytes, question: bytes) -> None:
        return None


class PartlySilentResolver(LocalResolver):
    """Answers the names in `answered` with 127.0.0.1 and never answers any other: one
    receiver whose name servers are down, beside receivers whose names resolve. The system
    resolver waits 150 s and more for the silent ones, as SilentResolver."""

    options = SilentResolver.options

    def __init__(self, folder: Path, answered: set[str]):
        super().__init__(folder)
        self.answered = answered
        self.unanswered_lookups = 0  # A questions left without an answer: one per lookup

    def _answer(self, query: bytes, question: bytes) -> bytes | None:
        is_a = question[-4:-2] == b"\x00\x01"  # an AAAA question gets no record
        if self.names[-1] not in self.answered:
            self.unanswered_lookups += is_a
            return None
        flags = 0x8180 | (query[2] & 0x01) << 8  # response, RD copied, RA, no error
        header = (query[:2] + flags.to_bytes(2, "big") + b"\x00\x01"
                  + (b"\x00\x01" if is_a else b"\x00\x00") + b"\x00" * 4)
        # The question's name (a pointer to offset 12), A, IN, a 60 s TTL, 4 bytes.
        record = b"\xc0\x0c\x00\x01\x00\x01" + (60).to_bytes(4, "big") + b"\x00\x04"
        return header + question + (record + bytes([127, 0, 0, 1]) if is_a else b"")


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by nobody a client trusts; (cert, key) paths."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhooks test receiver")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "receiver.crt", folder / "receiver.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class SlowRelay:
    """A TCP relay on 127.0.0.1 to `target_port` that passes the server's bytes to the
    client one at a time (`seconds_per_byte` apart), e.g. to drip a TLS handshake."""

    def __init__(self, target_port: int, seconds_per_byte: float = 0.2,
                 limit_seconds: float = 20.0):
        self._target_port = target_port
        self._pace = seconds_per_byte
        self._limit = limit_seconds
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self._target_port))
                threading.Thread(target=self._pump, args=(client, server, 0), daemon=True).start()
                threading.Thread(target=self._pump, args=(server, client, self._pace),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, pace: float) -> None:
        end = time.monotonic() + self._limit
        with contextlib.suppress(OSError):
            while time.monotonic() < end and (data := source.recv(1 if pace else 65536)):
                sink.sendall(data)
                time.sleep(pace)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
