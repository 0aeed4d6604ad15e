"""Public identifiers: a type prefix and 24 random URL-safe characters, as Stripe does."""

import re
import secrets

ID_PATTERN = re.compile(r"^[a-z]{3,4}_[A-Za-z0-9]{1,64}$")
EVENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LENGTH = 24
# Random bytes below 248 (4 × 62) map to the alphabet uniformly; the others are dropped.
# One `translate` in C instead of a system call per character (every event gets an id).
_UNIFORM_BELOW = 256 - 256 % len(_ALPHABET)
_TO_ALPHABET = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(256))
_DROPPED = bytes(range(_UNIFORM_BELOW, 256))


def new_id(prefix: str) -> str:
    chars = b""
    while len(chars) < _LENGTH:  # 32 bytes keep 24 but about once in 100,000 draws
        chars += secrets.token_bytes(32).translate(_TO_ALPHABET, _DROPPED)
    return prefix + "_" + chars[:_LENGTH].decode("ascii")
