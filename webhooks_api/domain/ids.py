"""Public identifiers: a type prefix and 24 random URL-safe characters, as Stripe does."""

import hashlib
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


def derived_id(prefix: str, seed: str) -> str:
    """An id of `new_id`'s shape that is the same whenever `seed` is: a task's id survives
    the redelivery of its message, so an event id derived from it does too. The characters
    come from SHAKE-256 of the seed, mapped as `new_id` maps random bytes; the digest is
    lengthened (its prefix stays the same) in the rare case 32 bytes keep fewer than 24."""
    size = 32
    while True:
        chars = hashlib.shake_256(seed.encode()).digest(size).translate(_TO_ALPHABET, _DROPPED)
        if len(chars) >= _LENGTH:
            return prefix + "_" + chars[:_LENGTH].decode("ascii")
        size *= 2
